// Claims: what a node's evidence vouches for. REPORTDATA = SHA-512(CLAIMS_DOMAIN || canonical JSON of claims).
// Canonical JSON = keys sorted (recursively), no whitespace, strings/integers/null/objects only. The verifier
// re-encodes the parsed claims and requires byte equality, so one claims value has exactly one encoding.
import { createHash } from "node:crypto";
import { z } from "zod";
import { EvidenceFormatError } from "./errors.js";

export const CLAIMS_VERSION = 1;
/** Domain separation tag prepended before hashing (never part of the stored claims bytes). */
export const CLAIMS_DOMAIN = "cocoon-ts/claims/v1\n";
export const ROLES = ["client", "proxy", "worker"] as const;
export type Role = (typeof ROLES)[number];
export const NODE_PLATFORMS = ["sim", "tdx", "sev-snp"] as const;
export type NodePlatform = (typeof NODE_PLATFORMS)[number];
export const CLAIMS_MAX_BYTES = 4096;

const hexOf = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `lowercase hex of ${bytes} bytes`);
const isoTime = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/, "ISO time like 2026-01-01T00:00:00Z");

export const ClaimsSchema = z
  .object({
    version: z.literal(CLAIMS_VERSION),
    role: z.enum(ROLES),
    platform: z.enum(NODE_PLATFORMS),
    /** SubjectPublicKeyInfo DER of the TLS certificate key, hex. */
    tlsPublicKey: z.string().regex(/^[0-9a-f]{2,1024}$/),
    /** X25519 public key for HPKE (RFC 9180), raw 32 bytes hex. */
    hpkePublicKey: hexOf(32),
    /** Ed25519 key that signs usage receipts, raw 32 bytes hex. */
    receiptPublicKey: hexOf(32),
    model: z.object({ name: z.string().min(1).max(256), digest: hexOf(32) }).strict().nullable(),
    /** SHA-256 of the GPU evidence bundle carried next to the CPU evidence, or null. */
    gpuEvidenceDigest: hexOf(32).nullable(),
    issuedAt: isoTime,
    expiresAt: isoTime,
  })
  .strict();
export type Claims = z.infer<typeof ClaimsSchema>;

function canonicalValue(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new Error("canonical JSON: only safe integers are allowed");
    return String(v);
  }
  if (typeof v === "object" && !Array.isArray(v)) {
    const keys = Object.keys(v as object).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalValue((v as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  throw new Error(`canonical JSON: unsupported value of type ${Array.isArray(v) ? "array" : typeof v}`);
}

export function encodeClaims(c: Claims): Buffer {
  return Buffer.from(canonicalValue(ClaimsSchema.parse(c)), "utf8");
}

export function claimsReportData(canonical: Buffer): Buffer {
  return createHash("sha512").update(CLAIMS_DOMAIN, "utf8").update(canonical).digest();
}

/** Parses claims bytes; refuses anything that is not the canonical encoding of valid claims. */
export function decodeClaims(bytes: Buffer): Claims {
  if (bytes.length > CLAIMS_MAX_BYTES) throw new EvidenceFormatError(`claims are ${bytes.length} bytes; the limit is ${CLAIMS_MAX_BYTES}`);
  let obj: unknown;
  try {
    obj = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new EvidenceFormatError("claims are not valid JSON");
  }
  const r = ClaimsSchema.safeParse(obj);
  if (!r.success) throw new EvidenceFormatError(`claims are invalid: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  if (!encodeClaims(r.data).equals(bytes)) throw new EvidenceFormatError("claims are not in canonical form (sorted keys, no whitespace)");
  return r.data;
}
