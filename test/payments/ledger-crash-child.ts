// Child process for the crash-safety test: records receipts and vouchers in groups (several per event-loop turn,
// as a busy node does), printing "ack <n>" only after `durable()` resolved for them. The parent kills it with SIGKILL
// at a random moment: every acknowledged fact must be in the file afterwards.
import { Ledger } from "../../src/payments/ledger.js";

const ledger = Ledger.open(process.argv[2]!);
const BIG = 2n ** 70n;
const PER_TURN = 3;
for (let i = 0; ; i += PER_TURN) {
  for (let j = i; j < i + PER_TURN; j++) {
    ledger.recordReceipt({ requestId: `req-${j}`, model: "m", promptTokens: j, completionTokens: 1, costNano: BIG + BigInt(j), workerId: "w1", channel: "ch1" });
    ledger.recordClientVoucher({ key: "ch1", cumulativeNano: BIG * BigInt(j + 1), signature: Buffer.from([j & 255, 1]), seq: j });
  }
  await ledger.durable();
  for (let j = i; j < i + PER_TURN; j++) process.stdout.write(`ack ${j}\n`);
}
