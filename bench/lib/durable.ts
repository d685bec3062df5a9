// What one durable ledger write costs on this machine's disk: a usage receipt recorded and awaited with durable()
// (as the proxy does before it reports a cost, and the client before it answers the app), beside the disk's bare
// fdatasync. Billing makes two such writes one after the other per request: this is its floor on added latency.
import { fdatasync, mkdtempSync, openSync, closeSync, rmSync, writeSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { Ledger } from "../../src/payments/ledger.js";
import { percentile } from "./stats.js";

export interface DurableWriteResult {
  /** Where the files were written (the folder the bench's ledgers live in). */
  dir: string;
  writes: number;
  fsyncP50Ms: number;
  fsyncP90Ms: number;
  /** recordReceipt's synchronous part (SQLite statements, no disk wait). */
  recordP50Ms: number;
  /** recordReceipt + await durable(): group commit and the WAL's fdatasync. */
  durableP50Ms: number;
  durableP90Ms: number;
}

export async function measureDurableWrite(n: number, parent = os.tmpdir()): Promise<DurableWriteResult> {
  const dir = mkdtempSync(join(parent, "cocoon-durable-"));
  try {
    const fd = openSync(join(dir, "bare"), "w");
    const page = Buffer.alloc(4096, 1);
    const bare: number[] = [];
    for (let i = 0; i < n; i++) {
      writeSync(fd, page, 0, page.length, (i % 16) * 4096);
      const t = performance.now();
      await new Promise<void>((resolve, reject) => fdatasync(fd, (e) => (e ? reject(e) : resolve())));
      bare.push(performance.now() - t);
    }
    closeSync(fd);
    const ledger = Ledger.open(join(dir, "ledger.db"));
    const record: number[] = [];
    const durable: number[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        ledger.recordReceipt({ requestId: `r-${i}`, model: "m", promptTokens: 20, completionTokens: 16, costNano: 1000n + BigInt(i), workerId: "w", channel: "c", receipt: Buffer.alloc(300, 7) });
        record.push(performance.now() - t0);
        await ledger.durable();
        durable.push(performance.now() - t0);
      }
    } finally {
      ledger.close();
    }
    return {
      dir: parent,
      writes: n,
      fsyncP50Ms: percentile(bare, 50),
      fsyncP90Ms: percentile(bare, 90),
      recordP50Ms: percentile(record, 50),
      durableP50Ms: percentile(durable, 50),
      durableP90Ms: percentile(durable, 90),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
