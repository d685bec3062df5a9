// Target 4's durable step in isolation: one receipt recorded and made durable (as the proxy's settle and the client's
// afterAnswer do, one after the other per request at concurrency 1), timed end to end and by part, with this disk's bare
// fdatasync beside it for scale. Prints medians and p90s and the load average.
//   node --import tsx bench/ledger-latency.ts [--n 300] [--dir DIR]
import { fdatasync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Ledger } from "../src/payments/ledger.js";
import { percentile } from "./lib/stats.js";

const { values: a } = parseArgs({ options: { n: { type: "string", default: "300" }, dir: { type: "string" } } });
const n = Number(a.n);
const dir = mkdtempSync(join(a.dir ?? os.tmpdir(), "cocoon-ledger-latency-"));
const show = (what: string, ms: number[]) => console.log(`${what.padEnd(44)} p50 ${percentile(ms, 50).toFixed(3)} ms  p90 ${percentile(ms, 90).toFixed(3)} ms`);
try {
  console.log(`load average ${os.loadavg()[0]!.toFixed(2)}; ${n} sequential writes in ${dir}`);
  const fd = openSync(join(dir, "bare"), "w");
  const page = Buffer.alloc(4096, 1);
  const bare: number[] = [];
  for (let i = 0; i < n; i++) {
    writeSync(fd, page, 0, page.length, (i % 16) * 4096);
    const t = performance.now();
    await new Promise<void>((r, j) => fdatasync(fd, (e) => (e ? j(e) : r())));
    bare.push(performance.now() - t);
  }
  show("bare write + fdatasync (thread pool)", bare);
  const ledger = Ledger.open(join(dir, "ledger.db"));
  const total: number[] = [];
  const record: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    ledger.recordReceipt({ requestId: `r-${i}`, model: "m", promptTokens: 20, completionTokens: 16, costNano: 1000n + BigInt(i), workerId: "w", channel: "c", receipt: Buffer.alloc(300, 7) });
    record.push(performance.now() - t0);
    await ledger.durable();
    total.push(performance.now() - t0);
  }
  show("ledger.recordReceipt (sync part)", record);
  show("ledger.recordReceipt + durable()", total);
  console.log(`ledger stats: ${JSON.stringify(ledger.stats)}; load average ${os.loadavg()[0]!.toFixed(2)}`);
  ledger.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
