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
/** Longest node id bound in claims (the envelope's and the protocol's worker id limit). */
export const MAX_NODE_ID_CHARS = 128;

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
    /**
     * The id this node announces (a worker's workerId), or null when unbound. Peers compare it with the id the node
     * announces (`attestedWorkerId`, `workerIdMismatch`); the production policy requires it for workers.
     */
    nodeId: z.string().min(1).max(MAX_NODE_ID_CHARS).nullable(),
    /**
     * The model a worker serves: its name (the only name it may announce) and the SHA-256 of its weights, or null as
     * digest when the worker reaches an engine whose weights it cannot hash (dev only: production requires a digest).
     */
    model: z.object({ name: z.string().min(1).max(256), digest: hexOf(32).nullable() }).strict().nullable(),
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

/** A verified peer (the transport's PeerInfo, a VerifiedPeer): these helpers read the claims the verifier put there. */
export type PeerWithClaims = object;

function claimsOf(peer: PeerWithClaims | undefined): Claims | undefined {
  const c = (peer as { claims?: unknown } | undefined)?.claims as Partial<Claims> | undefined;
  return c && typeof c === "object" && typeof c.role === "string" ? (c as Claims) : undefined;
}

/**
 * The worker id a verified worker's attestation binds, or undefined when its claims bind none (allowed by dev
 * policies only; production refuses such workers at verification, rule `policy.node-id`).
 */
export function attestedWorkerId(peer: PeerWithClaims | undefined): string | undefined {
  const c = claimsOf(peer);
  return c?.role === "worker" && typeof c.nodeId === "string" ? c.nodeId : undefined;
}

/**
 * Compares the worker id a worker announces (or a proxy lists it under) with the one its attestation binds; returns
 * the reason to refuse, or undefined when they agree or the claims bind no id (dev only, see attestedWorkerId).
 */
export function workerIdMismatch(peer: PeerWithClaims | undefined, announcedWorkerId: string): string | undefined {
  const bound = attestedWorkerId(peer);
  if (bound === undefined || bound === announcedWorkerId) return undefined;
  return (
    `announces worker id ${JSON.stringify(announcedWorkerId)} but its attestation binds ${JSON.stringify(bound)}; ` +
    "a worker must announce the id it attested (start it with that id, or renew its identity after renaming it)"
  );
}

export const GPU_NONCE_DOMAIN = "cocoon-ts/gpu-nonce/v1\n";

/**
 * The SPDM requester nonce a node asks its GPU to sign: SHA-256 of the node's claims with `gpuEvidenceDigest` null
 * (the claims then bind the evidence by digest, and the evidence binds these claims by nonce, so GPU evidence of
 * another machine or another identity cannot be replayed into this one).
 */
export function gpuNonce(claims: Claims): Buffer {
  return createHash("sha256").update(GPU_NONCE_DOMAIN).update(encodeClaims({ ...claims, gpuEvidenceDigest: null })).digest();
}
