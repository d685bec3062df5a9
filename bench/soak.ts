// `npm run soak`: the network under steady load with faults, then every party's books checked to the nanoTON.
// Writes docs/reliability.md (unless --no-write) and exits non-zero if any check fails. Loopback only, bounded.
import { writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError } from "commander";
import { runSoak, soakMarkdown } from "./soak/soak.js";

const num = (min: number, max: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}`);
  return n;
};

const cmd = new Command("soak")
  .description("Runs a paid Cocoon network of real processes under steady load with app cancels and faults, then checks client, proxy, workers and chain agree to the nanoTON.")
  .option("--duration <s>", "seconds of load", num(5, 86_400), 240)
  .option("--concurrency <n>", "requests in flight", num(1, 5_000), 1_000)
  .option("--workers <n>", "worker processes", num(1, 8), 2)
  .option("--backend <kind>", "fake (fast stand-in engines) or embedded (the shipped model, slow)", "fake")
  .option("--cancel-rate <f>", "share of streams the app abandons at a random moment", num(0, 1), 0.1)
  .option("--non-streaming-rate <f>", "share of requests sent without streaming", num(0, 1), 0.2)
  .option("--no-faults", "no worker kills and no proxy restart (steady load only)")
  .option("--interval <s>", "seconds between result rows (60 for per-minute results)", num(1, 3_600), 15)
  .option("--tokens <n>", "tokens per answer", num(2, 512), 24)
  .option("--token-delay <ms>", "fake engine: delay between tokens", num(0, 1_000), 40)
  .option("--capacity <n>", "per-worker capacity", num(1, 100_000), 1_000)
  .option("--max-unsigned <nanoTON>", "the proxy's bound on what it serves a channel on credit (default: the proxy's)")
  .option("--out <file>", "where to write the report", fileURLToPath(new URL("../docs/reliability.md", import.meta.url)))
  .option("--no-write", "print only, do not write the report")
  .parse();
const o = cmd.opts<{ duration: number; concurrency: number; workers: number; backend: string; cancelRate: number; nonStreamingRate: number; faults: boolean; interval: number; tokens: number; tokenDelay: number; capacity: number; maxUnsigned?: string; out: string; write: boolean }>();
if (o.maxUnsigned !== undefined && !/^[1-9][0-9]*$/.test(o.maxUnsigned)) cmd.error(`--max-unsigned must be a positive whole number of nanoTON, not ${o.maxUnsigned}`);
if (o.backend !== "fake" && o.backend !== "embedded") cmd.error(`--backend must be fake or embedded, not ${o.backend}`);

const report = await runSoak({
  cli: fileURLToPath(new URL("../bin/cocoon.js", import.meta.url)),
  durationS: o.duration, concurrency: o.concurrency, workers: o.workers, backend: o.backend as "fake" | "embedded",
  cancelRate: o.cancelRate, nonStreamingRate: o.nonStreamingRate, faults: o.faults, intervalS: o.interval,
  tokens: o.tokens, tokenDelayMs: o.tokenDelay, workerCapacity: o.capacity, ...(o.maxUnsigned ? { maxUnsignedNano: o.maxUnsigned } : {}),
  log: (line) => console.log(line),
});
const md = soakMarkdown(report, new Date(), `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`);
console.log("\n" + md);
if (o.write) {
  writeFileSync(o.out, md);
  console.log(`report written to ${o.out}`);
}
if (!report.ok) {
  console.error("SOAK FAILED: the books do not agree (see the checks above).");
  process.exit(1);
}
