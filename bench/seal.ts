// Micro-benchmark of request sealing, response chunks and usage receipts.
// Run: node --import tsx bench/seal.ts   (prints microseconds per operation; takes about 6 seconds)
// "cpu" is this process's CPU time per op (includes GC); on a shared machine it is steadier than wall time.
import { randomBytes } from "node:crypto";
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { generateHpkeKeyPair, openRequest, sealRequest } from "../src/crypto/seal.js";
import { deriveResponseKeys, ResponseOpener, ResponseSealer } from "../src/crypto/stream.js";
import { generateReceiptKeyPair, signReceipt, verifyReceipt } from "../src/crypto/receipts.js";

const TARGET_MS = 400; // time spent per measurement
const meta = { requestId: "bench-request-0001", model: "Qwen/Qwen3-8B" };

async function measure(name: string, op: () => unknown | Promise<unknown>): Promise<void> {
  for (let i = 0; i < 20; i++) await op(); // warm up
  let n = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  let now = start;
  while (now - start < TARGET_MS) {
    for (let i = 0; i < 10; i++) await op();
    n += 10;
    now = performance.now();
  }
  const cpu = process.cpuUsage(cpu0);
  const wallUs = ((now - start) * 1000) / n;
  const cpuUs = (cpu.user + cpu.system) / n;
  console.log(`${name.padEnd(56)} ${wallUs.toFixed(1).padStart(9)} µs/op wall ${cpuUs.toFixed(1).padStart(9)} µs/op cpu  (${n} ops)`);
}

const workers = await Promise.all(
  ["w1", "w2", "w3"].map(async (workerId) => {
    const kp = await generateHpkeKeyPair();
    return { workerId, hpkePrivateKey: kp.privateKey, hpkePublicKey: kp.publicKey };
  }),
);
const recipients = workers.map((w) => ({ workerId: w.workerId, hpkePublicKey: w.hpkePublicKey }));
const body = randomBytes(2048); // a typical chat request body

console.log(`node ${process.version}; body ${body.length} B`);
await measure("sealRequest, 1 recipient, 2 KiB body", () => sealRequest(body, recipients.slice(0, 1), meta));
await measure("sealRequest, 3 recipients, 2 KiB body", () => sealRequest(body, recipients, meta));
const sealed = await sealRequest(body, recipients, meta);
await measure("openRequest (worker), 3-recipient envelope", () => openRequest(sealed.bytes, workers[1], meta));

const exporterSecret = randomBytes(32);
const keys = deriveResponseKeys(exporterSecret, Buffer.alloc(32)); // what an opener for request digest 00…00 derives
for (const size of [64, 1024, 16384]) {
  const data = randomBytes(size);
  let sealer = new ResponseSealer("w", "00".repeat(32), keys);
  await measure(`sealChunk, ${size} B (AES-128-GCM + digest update)`, () => {
    if (sealer.chunksSealed > 1_000_000) sealer = new ResponseSealer("w", "00".repeat(32), keys);
    return sealer.sealChunk(data, false);
  });
  // Pre-seal a stream so opening measures only openChunk.
  const stream: Uint8Array[] = [];
  const s2 = new ResponseSealer("w", "00".repeat(32), keys);
  for (let i = 0; i < 4000; i++) stream.push(s2.sealChunk(data, false));
  let opener = new ResponseOpener("00".repeat(32), [{ workerId: "w", exporterSecret }]);
  let i = 0;
  await measure(`openChunk, ${size} B`, () => {
    if (i === stream.length) {
      opener = new ResponseOpener("00".repeat(32), [{ workerId: "w", exporterSecret }]);
      i = 0;
    }
    return opener.openChunk(stream[i++]);
  });
}

const rk = generateReceiptKeyPair();
const receipt = {
  v: 1 as const,
  requestId: meta.requestId,
  model: meta.model,
  workerId: "w1",
  promptTokens: 512,
  completionTokens: 300,
  costNano: "16240000",
  requestDigest: sealed.requestDigest,
  responseDigest: sealed.requestDigest,
};
await measure("signReceipt (Ed25519, node:crypto)", () => signReceipt(receipt, rk.privateKey));
const signed = signReceipt(receipt, rk.privateKey);
await measure("verifyReceipt", () => verifyReceipt(signed, rk.publicKey));

// Reference point: the same HPKE suite through @hpke/core (WebCrypto), one recipient, content key only.
const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
const pk = await suite.kem.deserializePublicKey(workers[0].hpkePublicKey);
await measure("reference: @hpke/core seal of a 16 B key, 1 recipient", async () => {
  const ctx = await suite.createSenderContext({ recipientPublicKey: pk, info: new Uint8Array(8) });
  await ctx.seal(new Uint8Array(16), new Uint8Array(8));
});
