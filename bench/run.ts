// `npm run bench`: gateway overhead against real peers (direct, portkey, nginx, Cocoon), crypto costs, chain
// costs and embedded-model throughput, in one bounded run on loopback. Prints progress and tables, writes
// BENCHMARKS.md and docs/bench-overhead.svg.
//   npm run bench [-- --rounds N] [-- --model-file FILE.gguf] [-- --skip overhead,streaming,ceiling,profiles,crypto,chain,embedded]
//                 [-- --streams 100,1000] [-- --ceiling 250,500,1000,2500,5000,10000]
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { measureOverhead } from "./overhead.js";
import { measureCrypto } from "./crypto-costs.js";
import { gasRows, settleBatch } from "./chain-costs.js";
import { measureEmbedded } from "./embedded.js";
import { measureCeiling, measureStreaming } from "./streaming.js";
import { topFrames, trimProfile } from "./lib/profile-summary.js";
import { measureDurableWrite } from "./lib/durable.js";
import { directPeer, NGINX_BIN, ROOT, startCocoon, startNginx, startPortkey, startUpstream, stopPeer, type Peer, type Skipped } from "./lib/peers.js";
import { forkReady, stopAll, type Child } from "./lib/procs.js";
import { markdown, overheadSvg, verdicts, type BenchResults } from "./report.js";
import { DEFAULT_MODEL_FILE } from "../src/worker/backends/embedded.js";
import { CURVE25519_BACKEND } from "../src/crypto/curve25519.js";

const DEFAULT_ROUNDS = 5;
/** Completion tokens of each fake answer: 16 token chunks + the final chunk per stream. */
const FAKE_TOKENS = 16;
const CHUNKS_PER_ANSWER = FAKE_TOKENS + 1;
const CONCURRENCIES = [1, 32];
/** Per (peer, round) budget: enough requests for a stable p99, bounded in time. */
const BUDGET = { 1: { maxRequests: 400, maxMs: 2_000 }, 32: { maxRequests: 3_000, maxMs: 3_000 } } as Record<number, { maxRequests: number; maxMs: number }>;
const WARMUP_REQUESTS = 32;
/** Durable ledger writes timed for target 4's floor (bench/lib/durable.ts). */
const DURABLE_WRITES = 300;
/** Requests per simulated settlement batch. */
const BATCH_SIZES = [10, 100, 1000, 5000];
const EMBEDDED_MAX_TOKENS = 200;
/** Target 1: streams open at once, tokens per answer, time between two decoding steps of the fake engine. */
const STREAMS = [100, 1000];
const STREAM_TOKENS = 128;
const STREAM_STEP_MS = 20;
const STREAM_RAMP_MS = 2_000;
const STREAM_MEASURE_MS = 6_000;
/** Target 2: the ladder of open streams, one token per second each, through one client, one proxy, two workers. */
const CEILING_LADDER = [250, 500, 1000, 2500, 5000, 10000];
const CEILING_TOKENS = 10;
const CEILING_STEP_MS = 1_000;
const CEILING_CONNECTS_PER_SEC = 1_000;
const CEILING_MEASURE_MS = 6_000;
/** Streams the raised limits leave beyond the count measured (the bench's status calls, a reconnect). */
const STREAM_LIMIT_SLACK = 64;
const SECTIONS = ["overhead", "streaming", "ceiling", "profiles", "crypto", "chain", "embedded"] as const;

const { values: args } = parseArgs({
  options: { rounds: { type: "string" }, "model-file": { type: "string" }, skip: { type: "string" }, streams: { type: "string" }, ceiling: { type: "string" } },
  allowPositionals: false,
});
const rounds = Number(args.rounds ?? DEFAULT_ROUNDS);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error("--rounds must be an integer from 1 to 20");
const skip = new Set((args.skip ?? "").split(",").filter(Boolean));
/** Stream counts of the streaming section; the largest is target 1's. A smaller one stays readable on a busy machine. */
const streamCounts = args.streams ? args.streams.split(",").map(Number) : STREAMS;
if (!streamCounts.every((n) => Number.isInteger(n) && n >= 1 && n <= 20_000)) throw new Error("--streams takes a comma-separated list of stream counts (1..20000), e.g. 100,1000");
const streams = Math.max(...streamCounts);
const ladder = args.ceiling ? args.ceiling.split(",").map(Number) : CEILING_LADDER;
if (!ladder.every((n) => Number.isInteger(n) && n >= 1 && n <= 20_000)) throw new Error("--ceiling takes a comma-separated list of stream counts (1..20000), e.g. 1000,2500,5000,10000");
for (const s of skip) if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`--skip takes ${SECTIONS.join(",")}; got "${s}"`);

/** What the Cocoon path really did per request in section 1 (undefined if it did not run). */
let measured: { chunksPerAnswer: number; voucherVerifyShare: number } | undefined;

const t0 = performance.now();
const stamp = () => `[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s]`;
const progress = (line: string) => console.log(line);
const section = (title: string) => console.log(`\n${stamp()} ${title}`);

/** stdout + stderr of a short command (nginx -v prints to stderr), or why it could not run. */
function tryRun(cmd: string, a: string[]): string {
  const r = spawnSync(cmd, a, { encoding: "utf8", timeout: 5_000 });
  if (r.error) return `unavailable (${r.error.message})`;
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
}
const pkgVersion = (name: string) => {
  try {
    return (JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "not installed";
  }
};

const results: BenchResults = {
  machine: {
    date: new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC",
    cpu: `${os.cpus()[0]?.model ?? "?"} × ${os.cpus().length}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
    "load average at start": os.loadavg().map((x) => x.toFixed(2)).join(" "),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    nginx: existsSync(NGINX_BIN) ? tryRun(NGINX_BIN, ["-v"]).replace("nginx version: ", "") : "not installed",
    "@portkey-ai/gateway": pkgVersion("@portkey-ai/gateway"),
    "node-llama-cpp": pkgVersion("node-llama-cpp"),
    "@ton/sandbox": pkgVersion("@ton/sandbox"),
    "Ed25519/X25519": CURVE25519_BACKEND === "libsodium" ? `libsodium (sodium-native ${pkgVersion("sodium-native")})` : "node:crypto (sodium-native did not load)",
    commit: tryRun("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]) + (tryRun("git", ["-C", ROOT, "status", "--porcelain"]).length ? " (with uncommitted changes)" : ""),
  },
  config: {
    rounds: String(rounds),
    "fake upstream": `${FAKE_TOKENS} completion tokens per answer, no delay, separate process`,
    "load generator": "node:http keep-alive Agent in the bench process, maxSockets = concurrency",
  },
  peers: [],
  skipped: [],
  errors: [],
  durationS: 0,
};

let stopping = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (stopping) process.exit(130);
    stopping = true;
    console.error(`\n${sig}: stopping every started peer`);
    void stopAll().finally(() => process.exit(130));
  });
}

async function overheadSection(): Promise<void> {
  section("gateway overhead: starting the fake upstream and the peers");
  const up = await startUpstream(FAKE_TOKENS);
  const peers: Peer[] = [directPeer(up.url)];
  const skipped: Skipped[] = [];
  const attempt = async (name: Peer["name"], start: () => Promise<Peer | Skipped>) => {
    try {
      const p = await start();
      if ("reason" in p) skipped.push(p);
      else peers.push(p);
      progress(`  ${name}: ${"reason" in p ? `skipped: ${p.reason.split("\n")[0]}` : `ready at ${p.baseUrl}`}`);
    } catch (err) {
      skipped.push({ name, reason: (err as Error).message });
      results.errors.push(`${name} did not start: ${(err as Error).message}`);
      progress(`  ${name}: FAILED to start: ${(err as Error).message.split("\n")[0]}`);
    }
  };
  await attempt("portkey", () => startPortkey(up.url));
  await attempt("nginx", () => startNginx(up.url));
  await attempt("cocoon", () => startCocoon(up.url));
  // The same path with billing off: the difference is what billing (ledgers, vouchers, receipts' pricing) costs.
  await attempt("cocoon-unbilled", () => startCocoon(up.url, [], { payments: false, name: "cocoon-unbilled" }));
  results.peers = peers;
  results.skipped = skipped;
  section(`gateway overhead: ${rounds} interleaved rounds per scenario`);
  results.overhead = await measureOverhead(
    peers,
    { rounds, concurrencies: CONCURRENCIES, budget: (c) => BUDGET[c] ?? BUDGET[32], tokens: FAKE_TOKENS, warmup: WARMUP_REQUESTS },
    progress,
  );
  // A peer that failed: keep the first error line of its own log, so the report says why.
  for (const p of peers) {
    if (!results.overhead.some((c) => c.peer === p.name && c.ok === 0)) continue;
    const line = p.children.flatMap((c) => c.output().split("\n")).find((l) => /Error|error/.test(l) && !/^\s+at /.test(l));
    if (line) p.notes.push(`its log on failure: \`${line.trim().slice(0, 200)}\``);
  }
  // How many sealed chunks the worker really sent per answer (it batches the deltas of one upstream read).
  const cocoon = peers.find((p) => p.name === "cocoon");
  if (cocoon?.workerStatus && cocoon.proxyStatus) {
    try {
      const get = async (url: string) => (await fetch(url, { signal: AbortSignal.timeout(2_000) })).json();
      const w = (await get(cocoon.workerStatus)) as { requests?: { completed?: number; chunks?: number } };
      const p = (await get(cocoon.proxyStatus)) as { requests?: { completed?: number }; payments?: { vouchersVerified?: number } };
      if (w.requests?.completed && w.requests.chunks && p.requests?.completed && p.payments?.vouchersVerified !== undefined) {
        measured = { chunksPerAnswer: w.requests.chunks / w.requests.completed, voucherVerifyShare: p.payments.vouchersVerified / p.requests.completed };
      }
    } catch {
      // Without it, the crypto section counts the conservative scenario only.
    }
  }
  await stopAll();
  // Target 4's floor with billing: what one durable ledger write costs on the disk the ledgers above lived on.
  results.durable = await measureDurableWrite(DURABLE_WRITES);
  progress(`  one durable ledger write: p50 ${results.durable.durableP50Ms.toFixed(2)} ms (bare fdatasync ${results.durable.fsyncP50Ms.toFixed(2)} ms); a billed request waits for two in sequence`);
}

/**
 * The proxy's bound on one channel's unsigned exposure for `n` concurrent streams: n requests in flight at the most
 * a benchmark request may cost (0.05 TON, above what the devnet prices make of 128 tokens), plus the default 2 TON.
 */
const streamsCredit = (n: number) => 2_000_000_000n + BigInt(n) * 50_000_000n;

/**
 * The Cocoon limits on open streams, raised for `n` concurrent streams from one client (with room for the bench's own
 * status calls): app connections at the client (default 2,048), requests in flight (2,048) and streams (1,024) per client
 * connection at the proxy. A worker takes max(1,024, 2 x --capacity) streams per proxy connection by itself.
 */
const streamLimits = (n: number) => {
  const limit = String(n + STREAM_LIMIT_SLACK);
  return { proxyArgs: ["--max-in-flight-per-client", limit, "--max-streams-per-client", limit], clientArgs: ["--max-connections", limit] };
};

/** The fake streaming engine as a child process (its CPU is its own); stopped with the run's other children. */
async function startStreamEngine(tokens: number, stepMs: number): Promise<{ url: string; child: Child }> {
  const { child, ready } = await forkReady("fake stream engine", join(ROOT, "bench/lib/stream-engine-process.ts"), [String(tokens), String(stepMs)]);
  return { url: String(ready.url), child };
}

async function streamingSection(): Promise<void> {
  section(`streaming: ${streamCounts.join(" and ")} streams open at once, ${STREAM_TOKENS} tokens per answer, one token every ${STREAM_STEP_MS} ms`);
  const engine = await startStreamEngine(STREAM_TOKENS, STREAM_STEP_MS);
  results.config["streaming engine"] = `bench/fake-stream-engine.ts: ${STREAM_TOKENS} tokens per answer, one decoding step for all open streams every ${STREAM_STEP_MS} ms, separate process`;
  const peers: Peer[] = [directPeer(engine.url)];
  const start = async (name: string, fn: () => Promise<Peer | Skipped>) => {
    try {
      const p = await fn();
      if ("reason" in p) progress(`  ${name}: skipped: ${p.reason.split("\n")[0]}`);
      else peers.push(p);
    } catch (err) {
      results.errors.push(`streaming: ${name} did not start: ${(err as Error).message.split("\n")[0]}`);
    }
  };
  await start("portkey", () => startPortkey(engine.url));
  await start("nginx", () => startNginx(engine.url));
  // Capacity above the stream count: the worker must not be what refuses streams here.
  await start("cocoon", () => startCocoon(engine.url, ["--capacity", String(streams * 2)], { maxUnsignedNano: streamsCredit(streams), ...streamLimits(streams) }));
  results.streamingPeers = peers.map((p) => ({ name: p.name, label: p.notes.length ? `${p.label}: ${p.notes.join("; ")}` : p.label }));
  results.streaming = [];
  for (const n of streamCounts) {
    results.streaming.push(
      ...(await measureStreaming(peers, { streams: n, tokens: STREAM_TOKENS, stepMs: STREAM_STEP_MS, rounds: Math.min(rounds, 3), rampMs: STREAM_RAMP_MS, measureMs: STREAM_MEASURE_MS }, progress)),
    );
  }
  await stopAll();
  for (const p of peers) await p.close?.();
}

async function ceilingSection(): Promise<void> {
  section(`ceiling: ${ladder.join(", ")} streams at one token per ${CEILING_STEP_MS} ms through one client, one proxy, two workers`);
  const engine = await startStreamEngine(CEILING_TOKENS, CEILING_STEP_MS);
  const biggest = Math.max(...ladder);
  results.ceiling = await measureCeiling(
    async () => {
      const cocoon = await startCocoon(engine.url, ["--capacity", String(biggest)], { workers: 2, maxUnsignedNano: streamsCredit(biggest), ...streamLimits(biggest) });
      return { direct: directPeer(engine.url), cocoon, stop: () => stopPeer(cocoon) };
    },
    { ladder, tokens: CEILING_TOKENS, stepMs: CEILING_STEP_MS, connectPerSec: CEILING_CONNECTS_PER_SEC, measureMs: CEILING_MEASURE_MS },
    progress,
  );
  await stopAll();
}

/** V8 CPU profiles of the client, proxy and worker under the streaming load, kept in docs/profiles/ with their top frames. */
async function profilesSection(): Promise<void> {
  const n = Math.min(streams, 1000);
  section(`profiles: V8 CPU profiles of the Cocoon processes under ${n} streams`);
  const engine = await startStreamEngine(STREAM_TOKENS, STREAM_STEP_MS);
  const dir = mkdtempSync(join(os.tmpdir(), "cocoon-bench-prof-"));
  process.env.BENCH_PROFILE_DIR = dir;
  let cocoon: Peer;
  try {
    cocoon = await startCocoon(engine.url, ["--capacity", String(n * 2)], { maxUnsignedNano: streamsCredit(n), ...streamLimits(n) });
  } finally {
    delete process.env.BENCH_PROFILE_DIR;
  }
  const roles = new Map(cocoon.children.map((c) => [c.proc.pid, c.name.replace(/^cocoon /, "")]));
  const loadStart = performance.now();
  await measureStreaming([cocoon], { streams: n, tokens: STREAM_TOKENS, stepMs: STREAM_STEP_MS, rounds: 1, rampMs: STREAM_RAMP_MS, measureMs: STREAM_MEASURE_MS }, progress);
  const loadEnd = performance.now();
  await stopPeer(cocoon);
  await stopAll();
  const stopped = performance.now();
  const out = join(ROOT, "docs/profiles");
  mkdirSync(out, { recursive: true });
  results.profiles = { streams: n, files: [] };
  for (const f of readdirSync(dir)) {
    const pid = Number(/\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(f)?.[1]);
    const role = roles.get(pid);
    if (!role) continue; // a worker thread's or helper's profile
    const dest = join(out, `${role.replace(/\s+/g, "-")}.cpuprofile`);
    copyFileSync(join(dir, f), dest);
    // Only the load: start-up (module loading, devnet set-up) and shutdown would otherwise fill the top frames.
    trimProfile(dest, stopped - loadStart, stopped - loadEnd);
    const t = topFrames(dest, 12);
    results.profiles.files.push({ role, file: dest.slice(ROOT.length), kib: statSync(dest).size / 1024, ...t });
    progress(`  ${role}: ${t.totalMs.toFixed(0)} ms sampled, ${(100 - t.idleShare * 100).toFixed(0)}% busy; top: ${t.frames.filter((x) => x.name !== "(idle)").slice(0, 3).map((x) => x.name).join(", ")}`);
  }
  rmSync(dir, { recursive: true, force: true });
}

async function cryptoSection(): Promise<void> {
  section("cryptography costs");
  const conservative = { chunks: CHUNKS_PER_ANSWER, voucherVerifyShare: 1, note: "conservative: one chunk per token (a slow engine), a voucher verified on every request" };
  results.crypto = await measureCrypto(
    progress,
    measured
      ? [
          {
            chunks: Math.ceil(measured.chunksPerAnswer),
            voucherVerifyShare: measured.voucherVerifyShare,
            note: `as the Cocoon path ran in section 1: ${measured.chunksPerAnswer.toFixed(2)} chunks per answer, a voucher verified on ${(measured.voucherVerifyShare * 100).toFixed(1)}% of requests`,
          },
          conservative,
        ]
      : [conservative],
  );
}

async function chainSection(): Promise<void> {
  section("chain costs (@ton/sandbox)");
  results.gas = await gasRows();
  for (const g of results.gas) progress(`  ${g.op.padEnd(26)} gas ${String(g.gas).padStart(6)}  fees ${(Number(g.total) / 1e9).toFixed(6)} TON`);
  results.batches = [];
  for (const n of BATCH_SIZES) {
    const b = await settleBatch(n);
    results.batches.push(b);
    progress(`  ${String(n).padStart(5)} requests: ${b.txsPerRequest * n} on-chain txs while they ran, settlement ${b.settlementTxs} txs = ${b.txsPer1000.toFixed(1)} per 1,000 requests`);
  }
}

async function embeddedSection(): Promise<void> {
  section("embedded model: tokens/s direct vs through the network");
  const file = args["model-file"] ?? DEFAULT_MODEL_FILE;
  if (!existsSync(file)) {
    results.embedded = { skipped: `model file ${file} not found; train it (models/README.md) or pass --model-file FILE.gguf` };
    progress(`  skipped: ${results.embedded.skipped}`);
    return;
  }
  results.config["embedded model file"] = file.startsWith(ROOT) ? file.slice(ROOT.length) : file;
  results.embedded = await measureEmbedded({ modelFile: file, maxTokens: EMBEDDED_MAX_TOKENS, rounds: Math.max(rounds, 3), threads: 1 }, progress);
}

try {
  const all = [["overhead", overheadSection], ["streaming", streamingSection], ["ceiling", ceilingSection], ["profiles", profilesSection], ["crypto", cryptoSection], ["chain", chainSection], ["embedded", embeddedSection]] as const;
  for (const [name, fn] of all) {
    if (skip.has(name)) continue;
    try {
      await fn();
    } catch (err) {
      results.errors.push(`${name}: ${(err as Error).message}`);
      console.error(`${stamp()} ${name} FAILED: ${(err as Error).message}`);
      await stopAll();
    }
  }
} finally {
  await stopAll();
}
results.durationS = (performance.now() - t0) / 1000;
results.machine["load average at end"] = os.loadavg().map((x) => x.toFixed(2)).join(" ");

section("targets");
for (const v of verdicts(results)) console.log(`  ${v.met === undefined ? "n/a " : v.met ? "MET " : "MISS"}  ${v.target}: ${v.measured}`);
const md = markdown(results);
writeFileSync(join(ROOT, "BENCHMARKS.md"), md);
if (results.overhead) {
  mkdirSync(join(ROOT, "docs"), { recursive: true });
  writeFileSync(join(ROOT, "docs/bench-overhead.svg"), overheadSvg(results));
}
console.log(`\n${stamp()} wrote BENCHMARKS.md${results.overhead ? " and docs/bench-overhead.svg" : ""}`);
process.exit(results.errors.length ? 1 : 0);
