// The soak, short (npm run soak is the long one): a paid network of real processes under streaming load with app
// cancels at random moments, a worker SIGKILLed and restarted, the proxy SIGKILLed and restarted; then client, proxy,
// workers and chain must agree to the nanoTON.
import { test } from "node:test";
import assert from "node:assert/strict";
import { runSoak } from "../../bench/soak/soak.js";
import { nodeEntry } from "../helpers/entry.js";

test("short soak: cancels, worker kills and a proxy restart under load; every party's books agree to the nanoTON", { timeout: 240_000 }, async (t) => {
  const r = await runSoak({
    cli: nodeEntry(new URL("../../src/cli/main.ts", import.meta.url)).file,
    durationS: 24, concurrency: 40, workers: 2, backend: "fake", cancelRate: 0.3, nonStreamingRate: 0.2, faults: true,
    intervalS: 6, tokens: 10, tokenDelayMs: 15, workerCapacity: 100,
    log: (line) => t.diagnostic(line),
  });
  for (const c of r.checks) t.diagnostic(`${c.ok ? "ok" : "FAILED"}: ${c.name} (${c.detail})`);
  t.diagnostic(`errors: ${JSON.stringify(r.errorsByKind)}`);
  assert.ok(r.served > 50, `answers were served (${r.served})`);
  assert.ok(r.cancelled > 5, `the app cancelled streams (${r.cancelled})`);
  assert.equal(r.events.filter((e) => /SIGKILLed/.test(e)).length, 3, "two worker kills and a proxy kill happened");
  assert.deepEqual(r.checks.filter((c) => !c.ok), [], "every accounting check passes");
});
