import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { keyPairFromSeed } from "@ton/crypto";
import { WalletContractV5R1 } from "@ton/ton";
import { startChainServer } from "../../src/chain/server.js";
import { registerWalletCommand, parseTon } from "../../src/cli/wallet.js";
import { registerChainCommand } from "../../src/cli/chain.js";

function program(out: string[], secrets: string[]): Command {
  const p = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerWalletCommand(p, { print: (s) => out.push(s), printSecret: (s) => secrets.push(s), env: {} });
  registerChainCommand(p);
  return p;
}

test("parseTon", () => {
  assert.equal(parseTon("1.5"), 1_500_000_000n);
  assert.equal(parseTon("0.000000001"), 1n);
  for (const bad of ["-1", "1e9", "abc", "1.0000000001", ""]) assert.throws(() => parseTon(bad), /amount of TON/);
});

test("wallet new --fund, show, balance, send on the devnet; mainnet send needs --yes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-wcli-"));
  const srv = await startChainServer({ port: 0 });
  try {
    const pw = join(dir, "pw");
    writeFileSync(pw, "a-good-password\n");
    const key = join(dir, "w.json");
    const common = ["--endpoint", srv.url, "--key-file", key, "--password-file", pw];
    const out: string[] = [];
    const secrets: string[] = [];
    await program(out, secrets).parseAsync(["node", "cocoon", "wallet", "new", ...common, "--fund", "20"]);
    assert.equal(statSync(key).mode & 0o777, 0o600);
    assert.equal(secrets[1].split(" ").length, 24);
    assert.ok(out.some((l) => /funded with 20 TON/.test(l)), out.join("\n"));
    const addr = out.find((l) => l.startsWith("address (devnet): "))!.split(": ")[1];

    out.length = 0;
    await program(out, secrets).parseAsync(["node", "cocoon", "wallet", "show", "--key-file", key]);
    assert.ok(out.includes(`address (devnet): ${addr}`));

    const peer = WalletContractV5R1.create({ workchain: 0, publicKey: keyPairFromSeed(Buffer.alloc(32, 5)).publicKey });
    const peerAddr = peer.address.toString({ bounceable: false });
    out.length = 0;
    await program(out, secrets).parseAsync(["node", "cocoon", "wallet", "send", ...common, "--to", peerAddr, "--amount", "2.5", "--comment", "hi"]);
    assert.ok(out.some((l) => /seqno 0 -> 1/.test(l)), out.join("\n"));
    const peerBal = await srv.chain.accountInfo(peer.address);
    assert.equal(peerBal.balance, 2_500_000_000n);

    out.length = 0;
    await program(out, secrets).parseAsync(["node", "cocoon", "wallet", "balance", ...common]);
    assert.ok(out.some((l) => /^balance: 17\.4\d+ TON$/.test(l)), out.join("\n"));
    assert.ok(out.some((l) => /active, seqno 1/.test(l)));

    // Wrong password: clear error.
    writeFileSync(pw, "wrong-password\n");
    await assert.rejects(program(out, secrets).parseAsync(["node", "cocoon", "wallet", "send", ...common, "--to", peerAddr, "--amount", "1"]), /wrong wallet password/);
    // Mainnet without --yes and no terminal: refused before anything is signed.
    await assert.rejects(program(out, secrets).parseAsync(["node", "cocoon", "wallet", "send", ...common, "--network", "mainnet", "--to", peerAddr, "--amount", "1"]), /--yes/);
    // --fund only on devnet; existing key file is not overwritten.
    await assert.rejects(program(out, secrets).parseAsync(["node", "cocoon", "wallet", "new", ...common, "--network", "testnet", "--fund"]), /only on --network devnet/);
    writeFileSync(pw, "a-good-password\n");
    await assert.rejects(program(out, secrets).parseAsync(["node", "cocoon", "wallet", "new", ...common]), /already exists/);
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("wallet balance with no chain running says what to start; a bad --to names the flag", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-wallet-nochain-"));
  try {
    // A port nothing listens on: bind one, then free it.
    const { createServer } = await import("node:net");
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", () => r()));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const key = join(dir, "wallet.json");
    const pw = join(dir, "pw");
    writeFileSync(pw, "a-good-password\n");
    const common = ["--endpoint", `http://127.0.0.1:${port}/jsonRPC`, "--key-file", key, "--password-file", pw];
    const out: string[] = [];
    await program(out, []).parseAsync(["node", "cocoon", "wallet", "new", ...common, "--no-show-mnemonic"]);
    await assert.rejects(program(out, []).parseAsync(["node", "cocoon", "wallet", "balance", ...common]),
      (e: Error) => /no TON API answers at http:\/\/127\.0\.0\.1:\d+\/jsonRPC \(ECONNREFUSED\)/.test(e.message) &&
        /cocoon chain/.test(e.message));
    await assert.rejects(program(out, []).parseAsync(["node", "cocoon", "wallet", "send", ...common, "--to", "nope", "--amount", "1"]),
      /--to "nope" is not a TON address/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
