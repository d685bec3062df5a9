// Target 4's durable step in isolation (bench/lib/durable.ts): one receipt recorded and made durable, as the proxy's
// settle and the client's afterAnswer each do per request, beside this disk's bare fdatasync. Prints p50/p90 and the
// load average; --dir /dev/shm shows the same code without a disk.
//   node --import tsx bench/ledger-latency.ts [--n 300] [--dir DIR]
import os from "node:os";
import { parseArgs } from "node:util";
import { measureDurableWrite } from "./lib/durable.js";

const { values: a } = parseArgs({ options: { n: { type: "string", default: "300" }, dir: { type: "string" } } });
const load0 = os.loadavg()[0]!.toFixed(2);
const r = await measureDurableWrite(Number(a.n), a.dir);
const ms = (x: number) => `${x.toFixed(3)} ms`;
console.log(`${r.writes} sequential writes in ${r.dir}; load average ${load0} -> ${os.loadavg()[0]!.toFixed(2)}`);
console.log(`bare write + fdatasync (thread pool)   p50 ${ms(r.fsyncP50Ms)}  p90 ${ms(r.fsyncP90Ms)}`);
console.log(`recordReceipt, synchronous part        p50 ${ms(r.recordP50Ms)}`);
console.log(`recordReceipt + durable()              p50 ${ms(r.durableP50Ms)}  p90 ${ms(r.durableP90Ms)}`);
