// The root owner's admin commands: the messages they send, applied by the real root contract in @ton/sandbox, and
// the read-back that reports whether the change happened (a stranger's change is refused and reported as such).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Blockchain } from "@ton/sandbox";
import { ROOT_OP_VALUE, RootContract, ImageKind } from "../../src/chain/contracts/RootContract.js";
import { parseDigest32, parseImageKinds, rootAdminMessages, rootAdminState, type RootAdminAction } from "../../src/cli/root-admin.js";
import { GLOBAL_ID, T0, TON } from "../chain/contracts-helpers.js";

const PARAMS = { proxyFeeBps: 500, clientCloseDelay: 3600, proxyUnstakeDelay: 86400, minProxyStake: 100n * TON, minClientDeposit: 1n * TON };
const digest = (s: string) => createHash("sha256").update(s).digest();

async function setup() {
  const bc = await Blockchain.create({ config: "slim" });
  bc.now = T0;
  const owner = await bc.treasury("owner");
  const stranger = await bc.treasury("stranger");
  const root = bc.openContract(RootContract.createFromConfig({ owner: owner.address, params: PARAMS, globalId: GLOBAL_ID }));
  await root.sendDeploy(owner.getSender(), 1n * TON);
  const apply = async (from: typeof owner, a: RootAdminAction) => {
    for (const m of rootAdminMessages(a)) await from.send({ to: root.address, value: ROOT_OP_VALUE, body: m.body, bounce: true });
    return rootAdminState(root, a);
  };
  return { owner, stranger, root, apply };
}

test("allow-image / remove-image for both kinds, applied by the root and read back", async () => {
  const { owner, root, apply } = await setup();
  const img = digest("image");
  const allow = await apply(owner, { op: "allow-image", kinds: parseImageKinds("both"), digest: img });
  assert.equal(allow.done, true);
  assert.equal(await root.getImageAllowed(ImageKind.WORKER, img), true);
  assert.equal(await root.getImageAllowed(ImageKind.PROXY, img), true);
  assert.match(allow.lines.join("\n"), /worker image [0-9a-f]{64}: allowed\nproxy image [0-9a-f]{64}: allowed/);
  const remove = await apply(owner, { op: "remove-image", kinds: parseImageKinds("proxy"), digest: img });
  assert.equal(remove.done, true);
  assert.equal(await root.getImageAllowed(ImageKind.PROXY, img), false);
  assert.equal(await root.getImageAllowed(ImageKind.WORKER, img), true);
});

test("set-model and remove-model", async () => {
  const { owner, root, apply } = await setup();
  const m = digest("weights");
  assert.equal((await apply(owner, { op: "set-model", digest: m, promptPrice: 20n, completionPrice: 60n })).done, true);
  assert.deepEqual(await root.getModelPrice(m), { promptPrice: 20n, completionPrice: 60n });
  assert.equal((await apply(owner, { op: "remove-model", digest: m })).done, true);
  assert.equal(await root.getModelPrice(m), null);
});

test("a wallet that is not the owner changes nothing, and the read-back says so", async () => {
  const { stranger, root, apply } = await setup();
  const img = digest("evil image");
  const r = await apply(stranger, { op: "allow-image", kinds: parseImageKinds("worker"), digest: img });
  assert.equal(r.done, false);
  assert.equal(await root.getImageAllowed(ImageKind.WORKER, img), false);
  const m = await apply(stranger, { op: "set-model", digest: digest("w"), promptPrice: 0n, completionPrice: 0n });
  assert.equal(m.done, false);
});

test("bad arguments are refused with what to give", () => {
  assert.throws(() => parseDigest32("abcd"), /64 hex characters .*cocoon attest measure/);
  assert.throws(() => parseImageKinds("client"), /worker, proxy or both/);
  assert.equal(parseImageKinds(undefined)[0], ImageKind.WORKER);
});
