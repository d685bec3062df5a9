// The sealed request envelope: what the client sends through the proxy to one of several candidate workers.
// Binary, big-endian, strict: exactly one encoding per value, so `encode(decode(bytes))` returns the same bytes and the
// SHA-256 of those bytes (the receipt's requestDigest) is the same at the client, the proxy and the worker.
//
// Byte layout, version 1 (offsets in bytes):
//   0      4   magic "CSRQ" (0x43 0x53 0x52 0x51): Cocoon Sealed ReQuest
//   4      1   version = 1
//   5      2   HPKE KEM id      = 0x0020  DHKEM(X25519, HKDF-SHA256)
//   7      2   HPKE KDF id      = 0x0001  HKDF-SHA256
//   9      2   HPKE AEAD id     = 0x0001  AES-128-GCM (wraps the content key)
//   11     2   content AEAD id  = 0x0001  AES-128-GCM (encrypts the body)
//   13     1   n = recipient count, 1..MAX_RECIPIENTS
//   14     ..  n recipients, each:
//                1    w = workerId length in bytes, 1..MAX_WORKER_ID_BYTES
//                w    workerId, UTF-8 (unique within the envelope)
//                32   enc: HPKE encapsulated key (ephemeral X25519 public key)
//                32   wrappedKey: HPKE ciphertext of the 16-byte content key + 16-byte tag
//   ..     12  content nonce
//   ..     4   c = ciphertext length, u32, AEAD_TAG_BYTES..MAX_BODY_BYTES + AEAD_TAG_BYTES
//   ..     c   ciphertext: AES-128-GCM(content key, nonce, AAD, body) with the 16-byte tag last
//   (end: no trailing bytes)
// Everything before the ciphertext is the "header"; it is authenticated as part of the content AAD (see seal.ts).
import { ByteReader, ByteWriter, fromUtf8, isWellFormedText, utf8 } from "./bytes.js";
import {
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  AES_128_KEY_BYTES,
  HPKE_AEAD_AES_128_GCM,
  HPKE_ENC_BYTES,
  HPKE_KDF_HKDF_SHA256,
  HPKE_KEM_X25519_HKDF_SHA256,
} from "./hpke.js";

export const SEALED_REQUEST_MAGIC = Uint8Array.from([0x43, 0x53, 0x52, 0x51]); // "CSRQ"
export const SEALED_REQUEST_VERSION = 1;
export const CONTENT_AEAD_AES_128_GCM = 0x0001;
export const MAX_RECIPIENTS = 16;
export const MAX_WORKER_ID_BYTES = 128;
/** Largest request body accepted (matches the 16 MiB frame limit of the wire protocol). */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;
export const WRAPPED_KEY_BYTES = AES_128_KEY_BYTES + AEAD_TAG_BYTES;

export interface SealedRecipient {
  workerId: string;
  /** HPKE encapsulated key, 32 bytes. */
  enc: Uint8Array;
  /** HPKE-sealed content key, 32 bytes. */
  wrappedKey: Uint8Array;
}

export interface SealedRequest {
  version: number;
  kemId: number;
  kdfId: number;
  aeadId: number;
  contentAeadId: number;
  recipients: SealedRecipient[];
  /** Content AEAD nonce, 12 bytes. */
  nonce: Uint8Array;
  /** AES-128-GCM ciphertext of the body, tag last. */
  ciphertext: Uint8Array;
}

const CONTEXT = "sealed request";

function checkWorkerId(workerId: string, fail: (m: string) => never): Uint8Array {
  if (!isWellFormedText(workerId)) fail(`workerId ${JSON.stringify(workerId)} contains a lone surrogate (not valid Unicode)`);
  const bytes = utf8(workerId);
  if (bytes.byteLength < 1 || bytes.byteLength > MAX_WORKER_ID_BYTES) {
    fail(`workerId must be 1..${MAX_WORKER_ID_BYTES} UTF-8 bytes, got ${bytes.byteLength}`);
  }
  return bytes;
}

/** Throws a clear Error when the structure violates any rule of the layout above. */
export function validateSealedRequest(env: SealedRequest): void {
  if (!(env?.ciphertext instanceof Uint8Array)) throw new Error(`${CONTEXT}: ciphertext must be bytes (Uint8Array)`);
  validateSealedRequestHeader(env, env.ciphertext.byteLength);
}

/** Header rules alone, for a ciphertext of `ciphertextLength` bytes (lets the sealer check before encrypting). */
export function validateSealedRequestHeader(env: Omit<SealedRequest, "ciphertext">, ciphertextLength: number): void {
  const fail = (m: string): never => {
    throw new Error(`${CONTEXT}: ${m}`);
  };
  if (env.version !== SEALED_REQUEST_VERSION) {
    fail(`unsupported version ${env.version}; this build speaks version ${SEALED_REQUEST_VERSION} (upgrade the older side)`);
  }
  if (env.kemId !== HPKE_KEM_X25519_HKDF_SHA256 || env.kdfId !== HPKE_KDF_HKDF_SHA256 || env.aeadId !== HPKE_AEAD_AES_128_GCM) {
    fail(
      `unsupported HPKE suite kem=0x${hex4(env.kemId)} kdf=0x${hex4(env.kdfId)} aead=0x${hex4(env.aeadId)}; ` +
        "only DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM (0x0020/0x0001/0x0001) is accepted",
    );
  }
  if (env.contentAeadId !== CONTENT_AEAD_AES_128_GCM) {
    fail(`unsupported content AEAD 0x${hex4(env.contentAeadId)}; only AES-128-GCM (0x0001) is accepted`);
  }
  if (!Array.isArray(env.recipients) || env.recipients.length < 1 || env.recipients.length > MAX_RECIPIENTS) {
    fail(`needs 1..${MAX_RECIPIENTS} recipients, got ${Array.isArray(env.recipients) ? env.recipients.length : "none"}`);
  }
  const seen = new Set<string>();
  for (const r of env.recipients) {
    if (!(r?.enc instanceof Uint8Array) || !(r.wrappedKey instanceof Uint8Array) || typeof r.workerId !== "string") {
      fail("each recipient needs a string workerId and Uint8Array enc and wrappedKey");
    }
    checkWorkerId(r.workerId, fail);
    if (seen.has(r.workerId)) fail(`worker ${JSON.stringify(r.workerId)} is listed twice; each candidate appears once`);
    seen.add(r.workerId);
    if (r.enc.byteLength !== HPKE_ENC_BYTES) fail(`enc for ${JSON.stringify(r.workerId)} must be ${HPKE_ENC_BYTES} bytes`);
    if (r.wrappedKey.byteLength !== WRAPPED_KEY_BYTES) {
      fail(`wrappedKey for ${JSON.stringify(r.workerId)} must be ${WRAPPED_KEY_BYTES} bytes`);
    }
  }
  if (!(env.nonce instanceof Uint8Array) || env.nonce.byteLength !== AEAD_NONCE_BYTES) {
    fail(`nonce must be ${AEAD_NONCE_BYTES} bytes, got ${env.nonce?.byteLength}`);
  }
  if (ciphertextLength < AEAD_TAG_BYTES || ciphertextLength > MAX_BODY_BYTES + AEAD_TAG_BYTES) {
    fail(`ciphertext must be ${AEAD_TAG_BYTES}..${MAX_BODY_BYTES + AEAD_TAG_BYTES} bytes, got ${ciphertextLength}`);
  }
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, "0");
}

/** The header bytes (everything before the ciphertext); `ciphertextLength` is part of it. */
export function encodeSealedRequestHeader(env: Omit<SealedRequest, "ciphertext">, ciphertextLength: number): Uint8Array {
  const w = new ByteWriter(64 + env.recipients.length * 200);
  w.bytes(SEALED_REQUEST_MAGIC).u8(env.version).u16(env.kemId).u16(env.kdfId).u16(env.aeadId).u16(env.contentAeadId);
  w.u8(env.recipients.length);
  for (const r of env.recipients) {
    const id = utf8(r.workerId);
    w.u8(id.byteLength).bytes(id).bytes(r.enc).bytes(r.wrappedKey);
  }
  w.bytes(env.nonce).u32(ciphertextLength);
  return w.finish();
}

export function encodeSealedRequest(env: SealedRequest): Uint8Array {
  validateSealedRequest(env);
  const header = encodeSealedRequestHeader(env, env.ciphertext.byteLength);
  const out = new Uint8Array(header.byteLength + env.ciphertext.byteLength);
  out.set(header, 0);
  out.set(env.ciphertext, header.byteLength);
  return out;
}

export interface DecodedSealedRequest {
  envelope: SealedRequest;
  /** Byte length of the header (the part authenticated as AAD), so callers need not re-encode it. */
  headerLength: number;
}

/** Strict decoder for untrusted bytes: any deviation from the layout throws an Error that names the field. */
export function decodeSealedRequestWithHeader(bytes: Uint8Array): DecodedSealedRequest {
  if (!(bytes instanceof Uint8Array)) throw new Error(`${CONTEXT}: expected bytes (Uint8Array)`);
  const r = new ByteReader(bytes, CONTEXT);
  const magic = r.bytes(SEALED_REQUEST_MAGIC.byteLength, "magic");
  if (!magic.every((b, i) => b === SEALED_REQUEST_MAGIC[i])) {
    r.fail('bad magic: these bytes are not a sealed request (expected "CSRQ")');
  }
  const version = r.u8("version");
  if (version !== SEALED_REQUEST_VERSION) {
    r.fail(`unsupported version ${version}; this build speaks version ${SEALED_REQUEST_VERSION} (upgrade the older side)`);
  }
  const kemId = r.u16("KEM id");
  const kdfId = r.u16("KDF id");
  const aeadId = r.u16("AEAD id");
  const contentAeadId = r.u16("content AEAD id");
  const count = r.u8("recipient count");
  if (count < 1 || count > MAX_RECIPIENTS) r.fail(`recipient count must be 1..${MAX_RECIPIENTS}, got ${count}`);
  const recipients: SealedRecipient[] = [];
  for (let i = 0; i < count; i++) {
    const idLen = r.u8(`workerId length of recipient ${i}`);
    if (idLen < 1 || idLen > MAX_WORKER_ID_BYTES) {
      r.fail(`workerId length of recipient ${i} must be 1..${MAX_WORKER_ID_BYTES}, got ${idLen}`);
    }
    const workerId = fromUtf8(r.bytes(idLen, `workerId of recipient ${i}`), `${CONTEXT}: workerId of recipient ${i}`);
    const enc = r.bytes(HPKE_ENC_BYTES, `enc of recipient ${i}`);
    const wrappedKey = r.bytes(WRAPPED_KEY_BYTES, `wrappedKey of recipient ${i}`);
    recipients.push({ workerId, enc, wrappedKey });
  }
  const nonce = r.bytes(AEAD_NONCE_BYTES, "content nonce");
  const ctLen = r.u32("ciphertext length");
  if (ctLen < AEAD_TAG_BYTES || ctLen > MAX_BODY_BYTES + AEAD_TAG_BYTES) {
    r.fail(`ciphertext length must be ${AEAD_TAG_BYTES}..${MAX_BODY_BYTES + AEAD_TAG_BYTES}, got ${ctLen}`);
  }
  const headerLength = r.offset;
  const ciphertext = r.bytes(ctLen, "ciphertext");
  r.end();
  const envelope: SealedRequest = { version, kemId, kdfId, aeadId, contentAeadId, recipients, nonce, ciphertext };
  validateSealedRequest(envelope); // suite ids, duplicate workerIds
  return { envelope, headerLength };
}

export function decodeSealedRequest(bytes: Uint8Array): SealedRequest {
  return decodeSealedRequestWithHeader(bytes).envelope;
}
