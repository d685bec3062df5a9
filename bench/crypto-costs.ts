// Cryptography costs: attestation verification (real TDX and SEV-SNP vectors, cold and cached), the RA-TLS
// handshake between two sim nodes, request sealing and opening, response chunks, receipts, vouchers, and the
// whole crypto of one request on all three nodes together.
import { MAINNET_GLOBAL_ID } from "../src/chain/network.js";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import tls from "node:tls";
import { Address } from "@ton/core";
import { generateHpkeKeyPair, openRequest, sealRequest } from "../src/crypto/seal.js";
import { generateReceiptKeyPair, signReceipt, verifyReceipt, type UsageReceipt } from "../src/crypto/receipts.js";
import { verifyTdxQuote } from "../src/tee/tdx/verify.js";
import { verifySnpReport } from "../src/tee/sevsnp.js";
import { EvidenceCache, verifyPeerCertificate } from "../src/tee/ratls.js";
import { nodeSecurity } from "../src/cli/security.js";
import { silentLogger } from "../src/util/log.js";
import { ed25519Signer, signVoucher, verifyVoucherSignature } from "../src/chain/vouchers.js";
import { micro, type MicroResult } from "./lib/micro.js";
import { ROOT } from "./lib/peers.js";

const VECTORS = join(ROOT, "test/fixtures/vectors");
const TDX_QUOTE = "tdx/dcap-qvl/tdx_quote";
const TDX_COLLATERAL = "tdx/dcap-qvl/tdx_quote_collateral.json";
/** The vectors' collateral is valid at these instants (see test/fixtures/vectors/README.md). */
const TDX_AT = new Date("2025-07-19T10:00:00Z");
const SNP_AT = new Date("2025-06-01T00:00:00Z");
/** A typical chat request body, and a typical streamed token chunk (one SSE event). */
const REQUEST_BODY_BYTES = 2048;
const TOKEN_CHUNK_BYTES = 96;
/** Candidate workers a client seals one request to (the proxy then picks one). */
export const SEAL_CANDIDATES = 3;
const HANDSHAKES_PER_ROUND = 40;

export interface CryptoRow {
  op: string;
  /** Which node pays it, and how often. */
  where: string;
  us: MicroResult["us"];
}

export interface CryptoResults {
  rows: CryptoRow[];
  /** Whole-request crypto on all nodes for an answer of `chunks` chunks; the first is the measured workload's. */
  perRequest: { chunks: number; us: MicroResult["us"]; note: string }[];
}

type Progress = (line: string) => void;

function mustVerify(v: { verified: boolean; errors: string[] }, what: string): void {
  if (!v.verified) throw new Error(`${what} did not verify, so its timing would mean nothing: ${v.errors.join("; ")}`);
}

/** One mutual TLS 1.3 handshake plus RA-TLS verification of both certificates (each end checks the other). */
async function raTlsHandshakes(n: number, cache: EvidenceCache | "cold"): Promise<number> {
  const server = await nodeSecurity("proxy", {}, silentLogger);
  const client = await nodeSecurity("worker", {}, silentLogger);
  const policy = server.policy;
  const verify = (der: Buffer, role: "proxy" | "worker") =>
    verifyPeerCertificate(der, policy, { expectedRole: role, cache: cache === "cold" ? new EvidenceCache() : cache });
  const srv = tls.createServer({ key: server.identity.keyPem, cert: server.identity.certPem, minVersion: "TLSv1.3", requestCert: true, rejectUnauthorized: false });
  srv.on("secureConnection", (s) => {
    s.on("error", () => {});
    void verify(s.getPeerX509Certificate()!.raw, "worker").then(() => s.end("ok"), (e: Error) => s.destroy(e));
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    await new Promise<void>((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", port, key: client.identity.keyPem, cert: client.identity.certPem, minVersion: "TLSv1.3", rejectUnauthorized: false });
      s.on("error", reject);
      s.once("secureConnect", () => {
        verify(s.getPeerX509Certificate()!.raw, "proxy").then(
          () => s.once("data", () => (s.end(), resolve())),
          reject,
        );
      });
    });
  }
  const ms = performance.now() - start;
  await new Promise<void>((r) => srv.close(() => r()));
  return (ms * 1000) / n;
}

/** A whole-request scenario: answer chunks, and the share of requests on which the proxy verifies a voucher. */
export interface RequestScenario {
  chunks: number;
  voucherVerifyShare: number;
  note: string;
}

export async function measureCrypto(progress: Progress, scenarios: RequestScenario[]): Promise<CryptoResults> {
  const rows: CryptoRow[] = [];
  const add = (r: MicroResult, where: string) => {
    rows.push({ op: r.name, where, us: r.us });
    progress(`  ${r.name.padEnd(58)} ${r.us.median.toFixed(1).padStart(9)} µs  (±${Math.round(r.us.spread * 50)}%)`);
  };

  // Attestation: real vectors. Cold = the full verifier; cached = what verifyPeerCertificate does on a hit.
  const quote = readFileSync(join(VECTORS, TDX_QUOTE));
  const collateral = readFileSync(join(VECTORS, TDX_COLLATERAL), "utf8");
  mustVerify(verifyTdxQuote(quote, { collateral, now: TDX_AT }), "the TDX vector");
  add(await micro("TDX quote v4 verify, cold (chain, CRLs, TCB, QE)", () => verifyTdxQuote(quote, { collateral, now: TDX_AT }), { rounds: 3, maxCalls: 400 }), "each node, once per new peer evidence");
  const snp = Buffer.from(readFileSync(join(VECTORS, "sev-snp/virtee/report_milan.hex"), "utf8").trim(), "hex");
  const vcek = readFileSync(join(VECTORS, "sev-snp/virtee/vcek_milan.der"));
  mustVerify(verifySnpReport(snp, vcek, { now: SNP_AT }), "the SEV-SNP vector");
  add(await micro("SEV-SNP report verify, cold (VCEK→ASK→ARK, P-384)", () => verifySnpReport(snp, vcek, { now: SNP_AT }), { rounds: 3, maxCalls: 400 }), "each node, once per new peer evidence");
  for (const [label, evidence, verdict] of [
    ["TDX", quote, verifyTdxQuote(quote, { collateral, now: TDX_AT })],
    ["SEV-SNP", snp, verifySnpReport(snp, vcek, { now: SNP_AT })],
  ] as const) {
    const cache = new EvidenceCache();
    const key = (e: Buffer) => createHash("sha256").update(e).digest("hex");
    cache.set(key(evidence), verdict, TDX_AT.getTime());
    add(
      await micro(`${label} verify, cached (SHA-256 of evidence + cache hit)`, () => {
        if (!cache.get(key(evidence), TDX_AT.getTime())) throw new Error("cache miss");
      }),
      "each node, per reconnect within 10 min",
    );
  }
  const worker = await nodeSecurity("worker", {}, silentLogger);
  const workerDer = Buffer.from(worker.node.tls.certDer);
  add(
    await micro("RA-TLS certificate verify, sim evidence, cold", () => verifyPeerCertificate(workerDer, worker.policy, { expectedRole: "worker", cache: new EvidenceCache() }), { rounds: 3, maxCalls: 2000 }),
    "client per candidate worker; proxy per worker",
  );
  const shared = new EvidenceCache();
  add(await micro("RA-TLS certificate verify, sim evidence, cached", () => verifyPeerCertificate(workerDer, worker.policy, { expectedRole: "worker", cache: shared })), "same, after the first time");
  for (const mode of ["cold", "cached"] as const) {
    const cache = mode === "cold" ? "cold" : new EvidenceCache();
    await raTlsHandshakes(5, cache); // warm up
    const rounds: number[] = [];
    for (let i = 0; i < 3; i++) rounds.push(await raTlsHandshakes(HANDSHAKES_PER_ROUND, cache));
    const { summarize } = await import("./lib/stats.js");
    add({ name: `RA-TLS handshake, mutual TLS 1.3 + both verifies, ${mode}`, us: summarize(rounds), calls: HANDSHAKES_PER_ROUND * 3 }, "per connection (long-lived links)");
  }

  // Sealing.
  const meta = { requestId: "bench-request-0001", model: "fake-model" };
  const workers = await Promise.all(
    Array.from({ length: SEAL_CANDIDATES }, async (_, i) => {
      const kp = await generateHpkeKeyPair();
      return { workerId: `w${i + 1}`, hpkePrivateKey: kp.privateKey, hpkePublicKey: kp.publicKey };
    }),
  );
  const recipients = workers.map((w) => ({ workerId: w.workerId, hpkePublicKey: w.hpkePublicKey }));
  const body = randomBytes(REQUEST_BODY_BYTES);
  add(await micro(`sealRequest, 1 recipient, ${REQUEST_BODY_BYTES} B body`, () => sealRequest(body, recipients.slice(0, 1), meta)), "client, per request");
  add(await micro(`sealRequest, ${SEAL_CANDIDATES} recipients, ${REQUEST_BODY_BYTES} B body`, () => sealRequest(body, recipients, meta)), "client, per request");
  const sealed = await sealRequest(body, recipients, meta);
  add(await micro(`openRequest, ${SEAL_CANDIDATES}-recipient envelope`, () => openRequest(sealed.bytes, workers[1], meta)), "worker, per request");
  const chunk = randomBytes(TOKEN_CHUNK_BYTES);
  {
    let s = (await openRequest(sealed.bytes, workers[1], meta)).responder;
    let n = 0;
    add(
      await micro(`sealChunk, ${TOKEN_CHUNK_BYTES} B (AES-128-GCM + digest)`, async () => {
        if (++n === 100_000) ((s = (await openRequest(sealed.bytes, workers[1], meta)).responder), (n = 0));
        return s.sealChunk(chunk, false);
      }),
      "worker, per chunk",
    );
  }
  {
    // Pre-sealed streams, one per round, so that the timed loop only opens chunks.
    const OPEN_ROUNDS = 3;
    const OPEN_CALLS_PER_ROUND = 8_000;
    const streams = await Promise.all(
      Array.from({ length: OPEN_ROUNDS + 1 }, async () => {
        const sr = await sealRequest(body, recipients, meta);
        const op = await openRequest(sr.bytes, workers[1], meta);
        return { opener: sr.opener, chunks: Array.from({ length: OPEN_CALLS_PER_ROUND + 20 }, () => op.responder.sealChunk(chunk, false)) };
      }),
    );
    let st = 0;
    let i = 0;
    add(
      await micro(
        `openChunk, ${TOKEN_CHUNK_BYTES} B`,
        () => {
          if (i === streams[st].chunks.length) ((st = (st + 1) % streams.length), (i = 0));
          return streams[st].opener.openChunk(streams[st].chunks[i++]);
        },
        { rounds: OPEN_ROUNDS, maxCalls: OPEN_CALLS_PER_ROUND, warmup: 0 },
      ),
      "client, per chunk",
    );
  }
  const rk = generateReceiptKeyPair();
  const receipt: UsageReceipt = {
    v: 1,
    requestId: meta.requestId,
    model: meta.model,
    workerId: "w2",
    promptTokens: 512,
    completionTokens: 300,
    costNano: "16240000",
    requestDigest: sealed.requestDigest,
    responseDigest: sealed.requestDigest,
  };
  add(await micro("signReceipt (Ed25519)", () => signReceipt(receipt, rk.privateKey)), "worker, per request");
  const signedReceipt = signReceipt(receipt, rk.privateKey);
  if (!verifyReceipt(signedReceipt, rk.publicKey)) throw new Error("the receipt did not verify");
  add(await micro("verifyReceipt", () => verifyReceipt(signedReceipt, rk.publicKey)), "client, per request");
  const clientKey = ed25519Signer(createHash("sha256").update("bench client").digest());
  const channel = Address.parse("EQD__________________________________________0vo");
  let cumulative = 1_000_000n;
  add(await micro("signVoucher (payment, cumulative)", () => signVoucher({ kind: "payment", globalId: MAINNET_GLOBAL_ID, channel, cumulative: (cumulative += 1000n) }, clientKey)), "client, per request");
  const v = signVoucher({ kind: "payment", globalId: MAINNET_GLOBAL_ID, channel, cumulative }, clientKey);
  if (!verifyVoucherSignature(v.cell, v.signature, clientKey.publicKey)) throw new Error("the voucher did not verify");
  add(await micro("verifyVoucherSignature", () => verifyVoucherSignature(v.cell, v.signature, clientKey.publicKey)), "proxy, per request");

  // Everything one request costs in crypto, on all nodes together (excluding the long-lived RA-TLS links): sealing to
  // 3 candidates, opening, the answer's chunks, the receipt signed and verified by the proxy AND the client, the
  // voucher signed, and the proxy's voucher verification at the share of requests given by the scenario.
  const perRequest: CryptoResults["perRequest"] = [];
  const voucherVerifyUs = rows.find((r) => r.op === "verifyVoucherSignature")!.us.median;
  for (const { chunks, voucherVerifyShare, note } of scenarios) {
    const m = await micro(
      `one request, ${chunks} chunks: seal→open→chunks→receipt (verified twice)→voucher (verified on ${Math.round(voucherVerifyShare * 100)}%)`,
      async () => {
        const sr = await sealRequest(body, recipients, meta);
        sr.opener.preferWorker(workers[1]!.workerId);
        const op = await openRequest(sr.bytes, workers[1], meta);
        for (let i = 0; i < chunks; i++) sr.opener.openChunk(op.responder.sealChunk(chunk, i === chunks - 1));
        const signed = signReceipt({ ...receipt, responseDigest: sr.requestDigest }, rk.privateKey);
        if (!verifyReceipt(signed, rk.publicKey)) throw new Error("receipt failed (proxy)");
        if (!verifyReceipt(signed, rk.publicKey)) throw new Error("receipt failed (client)");
        signVoucher({ kind: "payment", globalId: MAINNET_GLOBAL_ID, channel, cumulative: (cumulative += 1000n) }, clientKey);
      },
      { rounds: 5 },
    );
    // The proxy's voucher verification, at the rate it happens (it verifies lazily; 1 = every request).
    const us = { ...m.us, median: m.us.median + voucherVerifyShare * voucherVerifyUs };
    progress(`  ${m.name.padEnd(58)} ${us.median.toFixed(1).padStart(9)} µs  (±${Math.round(m.us.spread * 50)}%)  ${note}`);
    perRequest.push({ chunks, us, note });
  }
  return { rows, perRequest };
}
