// Operator controls: refused without a configured token, with a missing or wrong token, for an unknown action, and
// over GET; run with the right token; the CLI command (`cocoon admin`) speaks the same protocol.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, statSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeObservability } from "../../src/observability/node.js";
import { loadOrCreateAdminToken } from "../../src/observability/admin.js";
import { startStatusServer } from "../../src/util/http.js";
import { runAdminAction } from "../../src/cli/admin.js";
import fc from "fast-check";

async function node(token?: string) {
  const obs = new NodeObservability("worker");
  const ran: string[] = [];
  obs.admin.register("drain", async () => (ran.push("drain"), "draining"));
  obs.admin.register("payout", async () => {
    throw new Error("the chain is unreachable");
  });
  if (token) obs.admin.setToken(token);
  const server = await startStatusServer("127.0.0.1", 0, () => ({ role: "worker" }), obs);
  const post = (path: string, auth?: string) => fetch(`${server.url}${path}`, { method: "POST", headers: auth ? { authorization: auth } : {} });
  return { obs, ran, server, post };
}

test("without a token file the controls are off: nothing runs", async () => {
  const n = await node();
  try {
    const r = await n.post("/admin/drain", "Bearer anything-at-all-here");
    assert.equal(r.status, 403);
    assert.match(((await r.json()) as { message: string }).message, /--admin-token-file/);
    assert.deepEqual(n.ran, []);
  } finally {
    await n.server.close();
  }
});

test("a missing, wrong or near-miss token is refused and runs nothing; the right one runs the action", async () => {
  const token = "a".repeat(20) + "0123456789abcdef";
  const n = await node(token);
  try {
    for (const auth of [undefined, "Bearer", `Bearer ${token}x`, `Bearer ${token.slice(0, -1)}`, `Basic ${token}`, token, `Bearer ${token.toUpperCase()}`]) {
      const r = await n.post("/admin/drain", auth);
      assert.equal(r.status, 401, String(auth));
    }
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 80 }), async (guess) => {
        fc.pre(guess.trim() !== token && /^[\x21-\x7e]*$/.test(guess));
        assert.equal((await n.post("/admin/drain", `Bearer ${guess}`)).status, 401);
      }),
      { numRuns: 40 },
    );
    assert.deepEqual(n.ran, [], "no refused call ran the action");
    assert.equal((await fetch(`${n.server.url}/admin/drain`)).status, 405, "GET never runs an action");
    const ok = await n.post("/admin/drain", `Bearer ${token}`);
    assert.equal(ok.status, 200);
    assert.deepEqual(n.ran, ["drain"]);
    const unknown = await n.post("/admin/selfdestruct", `Bearer ${token}`);
    assert.equal(unknown.status, 404);
    assert.match(((await unknown.json()) as { message: string }).message, /offers: drain, payout/);
    const failing = await n.post("/admin/payout", `Bearer ${token}`);
    assert.equal(failing.status, 409);
    assert.match(((await failing.json()) as { message: string }).message, /chain is unreachable/);
    const st = (await (await fetch(`${n.server.url}/status`)).json()) as { admin: { recent: { action: string; ok: boolean }[] } };
    assert.deepEqual(st.admin.recent.map((r) => [r.action, r.ok]), [["payout", false], ["drain", true]]);
  } finally {
    await n.server.close();
  }
});

test("the token file is made with 0600 and a random token; a short one is refused", () => {
  const dir = mkdtempSync(join(tmpdir(), "admin-"));
  const file = join(dir, "sub", "token");
  const t1 = loadOrCreateAdminToken(file);
  assert.match(t1, /^[0-9a-f]{64}$/);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(loadOrCreateAdminToken(file), t1, "read back, not replaced");
  writeFileSync(join(dir, "short"), "abc\n");
  assert.throws(() => loadOrCreateAdminToken(join(dir, "short")), /shorter than 16/);
});

test("cocoon admin: runs an action with the token file, and says clearly what went wrong", async () => {
  const dir = mkdtempSync(join(tmpdir(), "admin-cli-"));
  const file = join(dir, "token");
  const token = loadOrCreateAdminToken(file);
  const n = await node(token);
  try {
    assert.equal(await runAdminAction("drain", { status: `${n.server.url}/status`, tokenFile: file }), "draining");
    assert.equal(await runAdminAction("drain", { status: n.server.url.replace("http://", ""), tokenFile: file }), "draining");
    await assert.rejects(runAdminAction("reboot", { status: n.server.url, tokenFile: file }), /unknown action 'reboot'; use one of: drain/);
    await assert.rejects(runAdminAction("drain", { status: n.server.url, tokenFile: join(dir, "nope") }), /cannot read the admin token file .*ENOENT/);
    writeFileSync(join(dir, "wrong"), "f".repeat(64));
    await assert.rejects(runAdminAction("drain", { status: n.server.url, tokenFile: join(dir, "wrong") }), /drain refused \(401\): missing or wrong admin token/);
    await assert.rejects(runAdminAction("payout", { status: n.server.url, tokenFile: file }), /payout refused \(409\): the chain is unreachable/);
    assert.equal(readFileSync(file, "utf8").trim(), token);
  } finally {
    await n.server.close();
  }
  await assert.rejects(runAdminAction("drain", { status: n.server.url, tokenFile: file }), /cannot reach .*is the node running/);
});
