// The evidence bundle a node carries in its RA-TLS certificate: the CPU TEE evidence plus what a verifier needs
// offline (TDX collateral, SEV-SNP VCEK) and the optional GPU evidence. Encoded as UTF-8 JSON:
//   { "v": 1, "platform": "tdx"|"sev-snp"|"sim", "quote": base64, "collateral"?: QuoteCollateralV3,
//     "vcek"?: base64 DER, "amdCrl"?: base64 DER (AMD's CRL for the VCEK's product, signed by the ARK),
//     "gpu"?: base64 of the GPU evidence bundle (see encodeGpuEvidence),
//     "eventLog"?: base64 of the TDX CCEL boot event log (peers replay it against the quote's RTMRs) }
// Collateral and VCEK are signed by Intel/AMD, so carrying them in untrusted hands is safe.
import { createHash } from "node:crypto";
import { deflateRawSync, inflateRawSync } from "node:zlib";
import { z } from "zod";
import { CollateralSchema, type QuoteCollateralV3 } from "./tdx/collateral.js";
import { NODE_PLATFORMS, type NodePlatform } from "./claims.js";
import { EvidenceFormatError } from "./errors.js";
import { EVENT_LOG_MAX_BYTES } from "./tdx/eventlog.js";

export const EVIDENCE_BUNDLE_VERSION = 1;
/** Room for the quote, collateral and GPU evidence, plus a base64 event log of up to EVENT_LOG_MAX_BYTES. */
export const EVIDENCE_BUNDLE_MAX_BYTES = 256 * 1024 + Math.ceil(EVENT_LOG_MAX_BYTES / 3) * 4;
const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, "base64");

const BundleSchema = z
  .object({
    v: z.literal(EVIDENCE_BUNDLE_VERSION),
    platform: z.enum(NODE_PLATFORMS),
    quote: b64,
    collateral: CollateralSchema.optional(),
    vcek: b64.optional(),
    amdCrl: b64.optional(),
    gpu: b64.optional(),
    eventLog: b64.max(Math.ceil(EVENT_LOG_MAX_BYTES / 3) * 4, `the event log is larger than ${EVENT_LOG_MAX_BYTES} bytes`).optional(),
  })
  .strict();

export interface EvidenceBundle {
  platform: NodePlatform;
  quote: Buffer;
  collateral?: QuoteCollateralV3;
  vcek?: Buffer;
  /** SEV-SNP: AMD's CRL for the product (verifiers check its ARK signature and dates before using it). */
  amdCrl?: Buffer;
  gpu?: Buffer;
  /** TDX: the CCEL boot event log (verifiers replay it and refuse a quote whose RTMRs it does not explain). */
  eventLog?: Buffer;
}

export function encodeEvidenceBundle(b: EvidenceBundle): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: EVIDENCE_BUNDLE_VERSION,
      platform: b.platform,
      quote: b.quote.toString("base64"),
      collateral: b.collateral,
      vcek: b.vcek?.toString("base64"),
      amdCrl: b.amdCrl?.toString("base64"),
      gpu: b.gpu?.toString("base64"),
      eventLog: b.eventLog?.toString("base64"),
    }),
    "utf8",
  );
}

export function decodeEvidenceBundle(bytes: Buffer): EvidenceBundle {
  if (bytes.length > EVIDENCE_BUNDLE_MAX_BYTES) throw new EvidenceFormatError(`evidence bundle is ${bytes.length} bytes; the limit is ${EVIDENCE_BUNDLE_MAX_BYTES}`);
  let obj: unknown;
  try {
    obj = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new EvidenceFormatError("evidence bundle is not valid JSON");
  }
  const r = BundleSchema.safeParse(obj);
  if (!r.success) throw new EvidenceFormatError(`evidence bundle is invalid: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  const d = r.data;
  return {
    platform: d.platform,
    quote: Buffer.from(d.quote, "base64"),
    collateral: d.collateral,
    vcek: d.vcek ? Buffer.from(d.vcek, "base64") : undefined,
    amdCrl: d.amdCrl ? Buffer.from(d.amdCrl, "base64") : undefined,
    gpu: d.gpu ? Buffer.from(d.gpu, "base64") : undefined,
    ...(d.eventLog ? { eventLog: Buffer.from(d.eventLog, "base64") } : {}),
  };
}

// GPU evidence bundle: { "v": 1, "evidence": hex SPDM transcript, "certChain": PEM, "ocsp"?: [hex OCSP response, one
// per certificate below the root, leaf first], "rims"?: [base64 of the raw-DEFLATE-compressed SWID XML of the driver
// RIM, of the VBIOS RIM] } (UTF-8 JSON). RIMs are compressed (~20 KiB of XML each, about a fifth of it compressed)
// because the whole bundle rides in the RA-TLS certificate, which TLS peers refuse above ~100 KiB. The OCSP answers are stapled by the worker (ocsp.ts), the RIMs attached from NVIDIA's RIM service (rim-store.ts).
const GpuSchema = z
  .object({
    v: z.literal(1),
    evidence: z.string().regex(/^[0-9a-fA-F]*$/),
    certChain: z.string(),
    ocsp: z.array(z.string().regex(/^[0-9a-fA-F]*$/)).max(16).optional(),
    rims: z.array(b64.max(64 * 1024)).max(2).optional(),
  })
  .strict();

export interface GpuEvidence {
  evidence: Buffer;
  certChain: string;
  ocsp?: Buffer[];
  /** NVIDIA-signed RIMs (driver, VBIOS) the verifier checks and compares the measurements with. */
  rims?: string[];
}

export function encodeGpuEvidence(g: GpuEvidence): Buffer {
  return Buffer.from(
    JSON.stringify({ v: 1, evidence: g.evidence.toString("hex"), certChain: g.certChain, ...(g.ocsp ? { ocsp: g.ocsp.map((b) => b.toString("hex")) } : {}), ...(g.rims ? { rims: g.rims.map((x) => deflateRawSync(Buffer.from(x, "utf8")).toString("base64")) } : {}) }),
    "utf8",
  );
}

export function decodeGpuEvidence(bytes: Buffer): GpuEvidence {
  let obj: unknown;
  try {
    obj = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new EvidenceFormatError("GPU evidence bundle is not valid JSON");
  }
  const r = GpuSchema.safeParse(obj);
  if (!r.success) throw new EvidenceFormatError('GPU evidence bundle must be {"v":1,"evidence":hex,"certChain":PEM,"ocsp"?:[hex],"rims"?:[XML, XML]}');
  return { evidence: Buffer.from(r.data.evidence, "hex"), certChain: r.data.certChain, ...(r.data.ocsp ? { ocsp: r.data.ocsp.map((h) => Buffer.from(h, "hex")) } : {}), ...(r.data.rims ? { rims: r.data.rims.map(inflateRim) } : {}) };
}

/** A compressed RIM, bounded: a small input cannot expand past the RIM size limit (no decompression bomb). */
function inflateRim(b64Text: string, i: number): string {
  try {
    return inflateRawSync(Buffer.from(b64Text, "base64"), { maxOutputLength: GPU_RIM_MAX_BYTES }).toString("utf8");
  } catch (e) {
    throw new EvidenceFormatError(`GPU evidence bundle: RIM #${i + 1} is not raw-DEFLATE data of at most ${GPU_RIM_MAX_BYTES} bytes (${(e as Error).message})`);
  }
}
const GPU_RIM_MAX_BYTES = 256 * 1024;

export const sha256Hex = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
