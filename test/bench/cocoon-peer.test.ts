// The benchmark's Cocoon peer end to end, small: three CLI processes with sealing and billing on a devnet chain, a
// burst of concurrent requests through the load generator, and the counters the report reads (answer chunks per
// request, vouchers the proxy verified). Runs the CLI from source (tsx) so it never tests a stale dist/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startCocoon, startUpstream, stopPeer } from "../../bench/lib/peers.js";
import { runLoad } from "../../bench/lib/load.js";
import { requestBody } from "../../bench/overhead.js";
import { nodeEntry } from "../helpers/entry.js";

/** The CLI as the tests were built (compiled, or the source through tsx): never a stale dist/. */
const CLI_SOURCE = nodeEntry(new URL("../../src/cli/main.ts", import.meta.url)).file;

test("bench Cocoon peer: sealed, billed requests succeed; chunks batched; the counters the report reads are there", async () => {
  const up = await startUpstream(16);
  const peer = await startCocoon(up.url, [], { cli: CLI_SOURCE });
  try {
    const target = { baseUrl: peer.baseUrl, path: "/v1/chat/completions" };
    const r = await runLoad(target, { concurrency: 8, maxRequests: 120, maxMs: 20_000, body: requestBody(false, 16), stream: false });
    assert.equal(r.failed, 0, r.errors.join("; "));
    assert.equal(r.ok, 120);
    const s = await runLoad(target, { concurrency: 4, maxRequests: 20, maxMs: 20_000, body: requestBody(true, 16), stream: true });
    assert.equal(s.failed, 0, s.errors.join("; "));
    // Apps still get one SSE event per delta: the role event, 16 deltas and the finish event per answer.
    assert.equal(s.chunks, 20 * 18);
    const get = async (url: string) => (await fetch(url)).json() as Promise<Record<string, any>>;
    const worker = await get(peer.workerStatus!);
    const proxy = await get(peer.proxyStatus!);
    assert.equal(worker.requests.completed, 140);
    // 16 tokens from a fast engine arrive in few reads: far fewer sealed chunks than one per token.
    assert.ok(worker.requests.chunks / worker.requests.completed < 10, `${worker.requests.chunks} chunks for 140 answers`);
    assert.equal(proxy.requests.completed, 140);
    assert.ok(proxy.payments.vouchersVerified >= 1, "vouchers were verified");
    // Group commit: never more commits than writes, never more WAL syncs than commits.
    const l = proxy.payments.ledger as { writes: number; commits: number; syncs: number };
    assert.ok(l.writes >= 140 && l.commits >= 1 && l.commits <= l.writes && l.syncs <= l.commits, JSON.stringify(l));
    // At most one per request (how few depends on this machine's speed; the rule itself is tested in settlement.test.ts).
    assert.ok(proxy.payments.vouchersVerified <= 140, `${proxy.payments.vouchersVerified} voucher verifications for 140 requests`);
  } finally {
    await stopPeer(peer);
    await up.child.stop();
  }
});
