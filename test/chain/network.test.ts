import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import {
  assertNetworkAllowsSim, confirmFundsMovement, makeTonClient, parseNetwork, resolveEndpoint, walletIdFor,
} from "../../src/chain/network.js";

test("network names, endpoints and wallet ids", () => {
  assert.equal(parseNetwork(undefined), "devnet");
  assert.equal(parseNetwork("TestNet"), "testnet");
  assert.throws(() => parseNetwork("moon"), /devnet, testnet, mainnet/);
  assert.equal(resolveEndpoint("devnet", undefined, {}), "http://127.0.0.1:8081/jsonRPC");
  assert.equal(resolveEndpoint("testnet", undefined, {}), "https://testnet.toncenter.com/api/v2/jsonRPC");
  assert.equal(resolveEndpoint("mainnet", undefined, {}), "https://toncenter.com/api/v2/jsonRPC");
  assert.equal(resolveEndpoint("mainnet", undefined, { COCOON_TON_ENDPOINT: "http://x:1/jsonRPC" }), "http://x:1/jsonRPC");
  assert.equal(resolveEndpoint("mainnet", "http://y/jsonRPC", { COCOON_TON_ENDPOINT: "http://x:1/jsonRPC" }), "http://y/jsonRPC");
  assert.throws(() => resolveEndpoint("devnet", "not a url", {}), /not a URL/);
  assert.throws(() => resolveEndpoint("devnet", "ftp://x", {}), /http/);
  assert.deepEqual(walletIdFor("testnet"), { networkGlobalId: -3 });
  assert.deepEqual(walletIdFor("mainnet"), { networkGlobalId: -239 });
  assert.ok(makeTonClient("testnet", undefined, { COCOON_TON_API_KEY: "k" }));
});

test("mainnet refuses sim attestation; others allow it", () => {
  assert.throws(() => assertNetworkAllowsSim("mainnet", "sim"), /mainnet refuses the "sim"/);
  assert.doesNotThrow(() => assertNetworkAllowsSim("mainnet", "tdx"));
  assert.doesNotThrow(() => assertNetworkAllowsSim("testnet", "sim"));
  assert.doesNotThrow(() => assertNetworkAllowsSim("devnet", "sim"));
});

test("confirmFundsMovement: silent off mainnet, --yes passes, refuses without a terminal, asks on a terminal", async () => {
  const notTty = { input: new PassThrough(), output: new PassThrough() };
  await confirmFundsMovement("devnet", "send 1 TON", { io: notTty });
  await confirmFundsMovement("testnet", "send 1 TON", { io: notTty });
  await confirmFundsMovement("mainnet", "send 1 TON", { yes: true, io: notTty });
  await assert.rejects(confirmFundsMovement("mainnet", "send 1 TON", { io: notTty }), /--yes/);
  const tty = () => ({ input: Object.assign(new PassThrough(), { isTTY: true }), output: Object.assign(new PassThrough(), { isTTY: true }) });
  let io = tty();
  let p = confirmFundsMovement("mainnet", "send 1 TON", { io });
  io.input.write("yes\n");
  await p;
  io = tty();
  p = confirmFundsMovement("mainnet", "send 1 TON", { io });
  io.input.write("no\n");
  await assert.rejects(p, /cancelled/);
});
