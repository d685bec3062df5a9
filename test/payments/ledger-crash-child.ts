// Child process for the crash-safety test: records receipts and vouchers, printing "ack <n>" only after each
// record* call returned (i.e. after it was durable). The parent kills it with SIGKILL at a random moment.
import { Ledger } from "../../src/payments/ledger.js";

const ledger = Ledger.open(process.argv[2]);
const BIG = 2n ** 70n;
for (let i = 0; ; i++) {
  ledger.recordReceipt({ requestId: `req-${i}`, model: "m", promptTokens: i, completionTokens: 1, costNano: BIG + BigInt(i), workerId: "w1", channel: "ch1" });
  ledger.recordClientVoucher({ key: "ch1", cumulativeNano: BIG * BigInt(i + 1), signature: Buffer.from([i & 255, 1]), seq: i });
  process.stdout.write(`ack ${i}\n`);
}
