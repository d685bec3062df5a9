// RA-TLS peer verification. Both ends call verifyPeerCertificate on the peer's DER certificate right after the
// TLS 1.3 handshake (secureConnect / secureConnection), before any application data. Steps:
//  1. parse the certificate; refuse unknown critical extensions; check its self-signature and validity window;
//  2. decode the canonical claims; the certificate key must be the claims' TLS key (blocks evidence replay
//     with another key); claims expiry and role;
//  3. verify the platform evidence (cached by hash); REPORTDATA must equal SHA-512(domain || claims);
//  4. GPU evidence, if declared, must match the claimed digest and verify;
//  5. the policy (sim, TCB status, measurements, models, GPU).
import { X509Certificate, createHash } from "node:crypto";
import { KNOWN_CRITICAL_EXTENSIONS, readRaTlsExtensions } from "./cert.js";
import { claimsReportData, decodeClaims, gpuNonce, type Claims, type NodePlatform, type Role } from "./claims.js";
import { AttestationError, EvidenceFormatError, errorText } from "./errors.js";
import { decodeEvidenceBundle, decodeGpuEvidence, sha256Hex, type EvidenceBundle, type GpuEvidence } from "./evidence.js";
import { referenceFromRims, verifyNvidiaEvidence, type NvidiaVerdict, type ReferenceMeasurements } from "./nvidia.js";
import { verifyRim } from "./rim.js";
import { checkPolicy, type Policy } from "./policy.js";
import { snpPolicyFacts, verifySnpReport } from "./sevsnp.js";
import { verifySimEvidence } from "./sim.js";
import type { QuoteCollateralV3 } from "./tdx/collateral.js";
import { applyEventLog } from "./tdx/eventlog.js";
import { verifyTdxQuote } from "./tdx/verify.js";
import type { Verdict } from "./verdict.js";

export { AttestationError } from "./errors.js";
export type { Role } from "./claims.js";

export interface VerifiedPeer {
  platform: NodePlatform;
  insecure: boolean;
  claims: Claims;
  measurements: Verdict["measurements"];
  imageDigest: string;
  tcbStatus?: string;
  verdict: Verdict;
  gpu?: NvidiaVerdict;
  /** SHA-256 of the evidence bundle (the cache key). */
  evidenceHash: string;
}

export interface VerifyPeerOptions {
  now?: Date;
  expectedRole?: Role | Role[];
  /** TDX collateral to use when the peer's bundle carries none (e.g. from a local PCCS cache). */
  collateral?: QuoteCollateralV3;
  /** Fetches TDX collateral for a peer whose bundle carries none (this node's PCCS, through its verified cache). */
  collateralSource?: (quote: Buffer) => Promise<QuoteCollateralV3>;
  /** Fetches AMD's CRL for a SEV-SNP peer whose bundle carries none (this node's KDS, through its verified cache). */
  amdCrlSource?: (vcek: Buffer) => Promise<Buffer | undefined>;
  /** Use a private cache instead of the process-wide one (tests). */
  cache?: EvidenceCache;
}

/** Allowed clock skew for "issued in the future" checks. */
const CLOCK_SKEW_MS = 5 * 60 * 1000;
export const EVIDENCE_CACHE_MAX_ENTRIES = 10_000;
/** A cached platform verdict is reused for this long (collateral freshness is re-evaluated after that). */
export const EVIDENCE_CACHE_TTL_MS = 10 * 60 * 1000;

/** Bounded LRU of platform verdicts keyed by evidence hash and the options that influence them. */
export class EvidenceCache {
  private readonly map = new Map<string, { verdict: Verdict; checkedAt: number }>();
  hits = 0;
  misses = 0;
  constructor(readonly maxEntries = EVIDENCE_CACHE_MAX_ENTRIES, readonly ttlMs = EVIDENCE_CACHE_TTL_MS) {}
  get(key: string, now: number): Verdict | undefined {
    const e = this.map.get(key);
    if (!e || now < e.checkedAt || now - e.checkedAt > this.ttlMs) {
      if (e) this.map.delete(key);
      this.misses++;
      return undefined;
    }
    this.map.delete(key);
    this.map.set(key, e);
    this.hits++;
    return e.verdict;
  }
  set(key: string, verdict: Verdict, now: number): void {
    this.map.delete(key);
    this.map.set(key, { verdict, checkedAt: now });
    while (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value as string);
  }
  get size(): number {
    return this.map.size;
  }
  clear(): void {
    this.map.clear();
  }
}

export const defaultEvidenceCache = new EvidenceCache();

/** Verifies platform evidence from a bundle (no caching, no policy). */
export function verifyBundleEvidence(
  b: EvidenceBundle,
  opts: { now: Date; allowDebug: boolean; minTcbEvaluationDataNumber?: number; refuseTrailingBytes?: boolean; collateral?: QuoteCollateralV3 },
): Verdict {
  switch (b.platform) {
    case "sim":
      return verifySimEvidence(b.quote, { allowDebug: opts.allowDebug });
    case "tdx": {
      const v = verifyTdxQuote(b.quote, {
        collateral: b.collateral ?? opts.collateral,
        now: opts.now,
        allowDebug: opts.allowDebug,
        minTcbEvaluationDataNumber: opts.minTcbEvaluationDataNumber,
        refuseTrailingBytes: opts.refuseTrailingBytes,
      });
      // An attached event log must explain the quote's RTMRs (checks.rtmrReplay); the replayed digests go to details.
      if (b.eventLog && v.measurements.rtmr) applyEventLog(v, b.eventLog);
      return v;
    }
    case "sev-snp":
      if (!b.vcek) {
        return { platform: "sev-snp", verified: false, status: "Invalid", insecure: false, measurements: {}, imageDigest: "", reportData: "", errors: ["SEV-SNP evidence carries no VCEK certificate"], checks: {}, advisoryIds: [], details: {} };
      }
      return verifySnpReport(b.quote, b.vcek, { now: opts.now, allowDebug: opts.allowDebug, ...(b.amdCrl ? { crl: b.amdCrl } : {}) });
  }
}

function refuse(rule: string, detail: string, measured: string, fix: string): never {
  throw new AttestationError(rule, detail, measured, fix);
}

export async function verifyPeerCertificate(certDer: Buffer, policy: Policy, opts: VerifyPeerOptions = {}): Promise<VerifiedPeer> {
  const now = opts.now ?? new Date();
  const cache = opts.cache ?? defaultEvidenceCache;
  let ext: ReturnType<typeof readRaTlsExtensions>;
  try {
    ext = readRaTlsExtensions(certDer);
  } catch (e) {
    return refuse("ratls.format", errorText(e), `certificate sha256=${createHash("sha256").update(certDer).digest("hex").slice(0, 16)}...`, "connect only to Cocoon nodes; the peer must present an RA-TLS certificate");
  }
  const f = ext.fields;
  for (const [id, e] of f.extensions) {
    if (e.critical && !KNOWN_CRITICAL_EXTENSIONS.has(id)) {
      refuse("ratls.critical-extension", "certificate has a critical extension this verifier does not understand", id, "upgrade this node, or remove the extension from the peer's certificate");
    }
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certDer);
  } catch (e) {
    return refuse("ratls.format", `certificate is not valid X.509: ${errorText(e)}`, `${certDer.length} bytes`, "the peer must present a well-formed certificate");
  }
  let selfSigned: boolean;
  try {
    // Reading the key throws for an unknown key algorithm; either way the certificate is unusable.
    selfSigned = cert.verify(cert.publicKey);
  } catch (e) {
    return refuse("ratls.format", `certificate key cannot be used: ${errorText(e)}`, cert.fingerprint256, "the peer must present an Ed25519 or ECDSA certificate");
  }
  if (!selfSigned) refuse("ratls.self-signature", "certificate self-signature does not verify", cert.fingerprint256, "the certificate was altered; the peer must regenerate it");
  if (now < f.notBefore || now > f.notAfter) {
    refuse("ratls.expired", `certificate is not valid at ${now.toISOString()} (valid ${f.notBefore.toISOString()} .. ${f.notAfter.toISOString()})`, f.notAfter.toISOString(), "the peer must renew its certificate; check both clocks");
  }
  let claims: Claims;
  try {
    claims = decodeClaims(ext.claims);
  } catch (e) {
    return refuse("ratls.claims", errorText(e), `${ext.claims.length} bytes`, "the peer must publish canonical claims (same software version)");
  }
  if (claims.tlsPublicKey !== f.spki.toString("hex")) {
    refuse("ratls.key-binding", "the certificate's public key is not the TLS key named in the attested claims (evidence replayed with another key?)", f.spki.toString("hex"), "the peer must put its own certificate key into its claims");
  }
  if (now.getTime() > Date.parse(claims.expiresAt)) refuse("ratls.claims-expired", `claims expired at ${claims.expiresAt}`, claims.expiresAt, "the peer must renew its identity");
  if (Date.parse(claims.issuedAt) > now.getTime() + CLOCK_SKEW_MS) refuse("ratls.claims-future", `claims are issued in the future (${claims.issuedAt})`, claims.issuedAt, "fix the clock of the peer or of this node");
  const roles = opts.expectedRole === undefined ? undefined : Array.isArray(opts.expectedRole) ? opts.expectedRole : [opts.expectedRole];
  if (roles && !roles.includes(claims.role)) refuse("ratls.role", `peer is a ${claims.role}, expected ${roles.join(" or ")}`, claims.role, "connect to the right port / node");

  let bundle: EvidenceBundle;
  try {
    bundle = decodeEvidenceBundle(ext.evidence);
  } catch (e) {
    return refuse("ratls.evidence-format", errorText(e), `${ext.evidence.length} bytes`, "the peer must publish a valid evidence bundle");
  }
  if (bundle.platform !== claims.platform) refuse("ratls.platform", `claims say platform ${claims.platform} but evidence is ${bundle.platform}`, bundle.platform, "the peer's identity is inconsistent; regenerate it");

  const evidenceHash = sha256Hex(ext.evidence);
  const cacheKey = `${evidenceHash}|${policy.allowDebug}|${policy.minTcbEvaluationDataNumber ?? ""}|${policy.refuseQuoteTrailingBytes ? "t" : ""}|${opts.collateral ? "c" : ""}|${opts.amdCrlSource ? "k" : ""}`;
  let verdict = cache.get(cacheKey, now.getTime());
  if (!verdict) {
    let collateral = opts.collateral;
    if (bundle.platform === "tdx" && !bundle.collateral && !collateral && opts.collateralSource) {
      try {
        collateral = await opts.collateralSource(bundle.quote);
      } catch (e) {
        refuse("evidence.tdx", `the peer attached no collateral and this node could not fetch it: ${errorText(e)}`, "NoCollateral", "the peer should attach collateral (--pccs on the peer), or make this node's --pccs reachable");
      }
    }
    // A SEV-SNP peer that attached no CRL (its KDS was unreachable): this node's own copy, checked the same way.
    const amdCrl = bundle.platform === "sev-snp" && !bundle.amdCrl && bundle.vcek && opts.amdCrlSource ? await opts.amdCrlSource(bundle.vcek) : undefined;
    verdict = verifyBundleEvidence(amdCrl ? { ...bundle, amdCrl } : bundle, { now, allowDebug: policy.allowDebug, minTcbEvaluationDataNumber: policy.minTcbEvaluationDataNumber, refuseTrailingBytes: policy.refuseQuoteTrailingBytes, collateral });
    if (verdict.verified) cache.set(cacheKey, verdict, now.getTime());
  }
  if (!verdict.verified) {
    refuse(`evidence.${bundle.platform}`, `platform evidence did not verify: ${verdict.errors.join("; ") || verdict.status}`, verdict.status, "see the listed check; refresh collateral or fix the peer's platform");
  }
  const expected = claimsReportData(ext.claims).toString("hex");
  if (verdict.reportData !== expected) {
    refuse("ratls.reportdata", "evidence REPORTDATA is not SHA-512 of this certificate's claims (evidence taken from another node or identity)", verdict.reportData, "the peer must generate evidence for its own claims");
  }
  let gpu: NvidiaVerdict | undefined;
  if (claims.gpuEvidenceDigest !== null) {
    if (!bundle.gpu) refuse("ratls.gpu", "claims name GPU evidence but the bundle carries none", "gpu=none", "the peer must include its GPU evidence");
    if (sha256Hex(bundle.gpu) !== claims.gpuEvidenceDigest) refuse("ratls.gpu", "GPU evidence does not match the digest in the claims", sha256Hex(bundle.gpu), "the peer must include the GPU evidence it attested");
    let g: GpuEvidence;
    try {
      g = decodeGpuEvidence(bundle.gpu);
    } catch (e) {
      return refuse("ratls.gpu", errorText(e), "gpu evidence", "the peer must include a valid GPU evidence bundle");
    }
    // The GPU must have signed the nonce derived from these claims (claims.ts gpuNonce): no replay across nodes.
    // Attached RIMs (driver, VBIOS) are verified here (signature, chain to NVIDIA's RIM root) and then compared.
    let reference: ReferenceMeasurements | undefined;
    if (g.rims) {
      try {
        reference = referenceFromRims(g.rims.map((xml, i) => ({ rim: verifyRim(xml, { now, what: `the worker's attached RIM #${i + 1}` }), source: `attached RIM #${i + 1}` })));
      } catch (e) {
        refuse("evidence.nvidia", errorText(e), "rim", "the worker must attach NVIDIA-signed, current RIMs for its driver and VBIOS (--rim-service)");
      }
    }
    gpu = verifyNvidiaEvidence(g.evidence, g.certChain, { now, expectedNonce: gpuNonce(claims), ...(g.ocsp ? { ocsp: g.ocsp } : {}), ...(reference ? { reference } : {}) });
    if (!gpu.verified) refuse("evidence.nvidia", `GPU evidence did not verify: ${gpu.errors.join("; ")}`, gpu.status, "check the GPU is in confidential-computing mode and its evidence is current");
  } else if (bundle.gpu) {
    refuse("ratls.gpu", "the bundle carries GPU evidence that the claims do not bind", "gpu=unbound", "the peer must put the GPU evidence digest into its claims");
  }
  const tcbStatus = bundle.platform === "tdx" ? verdict.status : undefined;
  const snp = snpPolicyFacts(verdict);
  checkPolicy(policy, { role: claims.role, platform: bundle.platform, imageDigest: verdict.imageDigest, tcbStatus, testRoot: verdict.testRoot === true || gpu?.testRoot === true, claims, hasVerifiedGpu: gpu?.verified === true, hasGpuOcsp: gpu?.checks.ocspGood === true, hasGpuRim: gpu?.checks.referenceMeasurements === true, hasTdxEventLog: verdict.checks.rtmrReplay === true, ...(snp ? { snp } : {}) });
  return {
    platform: bundle.platform,
    insecure: verdict.insecure,
    claims,
    measurements: verdict.measurements,
    imageDigest: verdict.imageDigest,
    tcbStatus,
    verdict,
    gpu,
    evidenceHash,
  };
}

/** Re-export for callers that want to catch parse problems separately. */
export { EvidenceFormatError };
