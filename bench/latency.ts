// A short, focused measurement of target 4 (added latency at concurrency 1) and target 3 (CPU per request at
// concurrency 32), for before/after comparisons of one change on a shared machine: the fake upstream, the billed
// Cocoon path (three CLI processes on a local chain, as `npm run bench` starts it) and, alternating in small
// blocks so drift hits both alike, direct and Cocoon requests. Prints p50/p90/p99 and the load average.
//   node --import tsx bench/latency.ts [--requests 200] [--concurrency 1] [--stream] [--unbilled] [--src] [--repeat 3] [--profile DIR]
// --src runs the CLI from src/ through tsx (no build needed); the default is the compiled CLI as users run it.
import { join } from "node:path";
import os from "node:os";
import { parseArgs } from "node:util";
import { runLoad } from "./lib/load.js";
import { percentile } from "./lib/stats.js";
import { cpuMs } from "./lib/cpu.js";
import { directPeer, ROOT, startCocoon, startUpstream, stopPeer } from "./lib/peers.js";
import { stopAll } from "./lib/procs.js";
import { requestBody } from "./overhead.js";

const { values: a } = parseArgs({
  options: {
    requests: { type: "string", default: "200" },
    concurrency: { type: "string", default: "1" },
    repeat: { type: "string", default: "3" },
    stream: { type: "boolean", default: false },
    unbilled: { type: "boolean", default: false },
    src: { type: "boolean", default: false },
    profile: { type: "string" },
  },
});
const requests = Number(a.requests);
const concurrency = Number(a.concurrency);
const repeat = Number(a.repeat);
const BLOCK = Math.max(concurrency, 20);
const load = () => os.loadavg()[0]!.toFixed(2);

const up = await startUpstream(16);
// --profile DIR: V8 CPU profiles of the three Cocoon processes (the whole run, start-up included) land in DIR.
if (a.profile) process.env.BENCH_PROFILE_DIR = a.profile;
const cocoon = await startCocoon(up.url, [], { payments: !a.unbilled, ...(a.src ? { cli: join(ROOT, "src/cli/main.ts") } : {}) });
delete process.env.BENCH_PROFILE_DIR;
for (const ch of cocoon.children) console.log(`${ch.name}: pid ${ch.proc.pid}`);
const direct = directPeer(up.url);
const body = requestBody(a.stream, 16);
const run = (baseUrl: string, n: number) => runLoad({ baseUrl, path: "/v1/chat/completions" }, { concurrency, maxRequests: n, maxMs: 60_000, body, stream: a.stream });
let loadAt = performance.now();
try {
  await run(direct.baseUrl, 50);
  await run(cocoon.baseUrl, 100);
  loadAt = performance.now();
  const pids = cocoon.children.map((c) => c.proc.pid!);
  for (let r = 0; r < repeat; r++) {
    const d: number[] = [];
    const c: number[] = [];
    let cpu = 0;
    let ok = 0;
    let failed = 0;
    const load0 = load();
    for (let done = 0; done < requests; done += BLOCK) {
      d.push(...(await run(direct.baseUrl, BLOCK)).latenciesMs);
      const c0 = cpuMs(pids);
      const res = await run(cocoon.baseUrl, BLOCK);
      cpu += cpuMs(pids) - c0;
      ok += res.ok;
      failed += res.failed;
      c.push(...res.latenciesMs);
    }
    const p = (s: number[], q: number) => percentile(s, q).toFixed(2);
    console.log(
      `round ${r + 1}: load ${load0}->${load()}  direct p50 ${p(d, 50)} ms  cocoon p50 ${p(c, 50)} p90 ${p(c, 90)} p99 ${p(c, 99)} ms  ` +
        `added p50 ${(percentile(c, 50) - percentile(d, 50)).toFixed(2)} ms  cpu ${(cpu / ok).toFixed(2)} ms/request  ok ${ok} failed ${failed}`,
    );
  }
} finally {
  const stopAt = performance.now();
  await stopPeer(cocoon);
  if (a.profile) console.log(`profiles: the measured load is the window from ${((performance.now() - loadAt) / 1000).toFixed(1)} s to ${((performance.now() - stopAt) / 1000).toFixed(1)} s before each profile's end`);
  await stopAll();
}
process.exit(0);
