// Request sealing (proxy-blind confidentiality): the client encrypts the body once under a fresh content key and wraps
// that key with HPKE (RFC 9180 base mode, X25519 / HKDF-SHA256 / AES-128-GCM) to each candidate worker, so the proxy
// may pick any of them and never sees plaintext. Routing metadata (model, max_tokens, sizes) travels in clear beside
// the envelope; requestId and model are bound into every AAD so the proxy cannot swap them.
//
// Derivations (labels are ASCII; lp(x) = u16be(len(x)) || x):
//   content key K        16 random bytes, content nonce 12 random bytes
//   HPKE info            "cocoon/v1 content-key" || lp(requestId) || lp(model)
//   HPKE aad (per worker) lp(workerId)                -> the wrap cannot be relabelled to another worker entry
//   wrappedKey           HPKE Seal(pk_worker, info, aad, K)   (32 bytes: 16 key + 16 tag)
//   content AAD          "cocoon/v1 request" || lp(requestId) || lp(model) || envelope header (envelope.ts)
//   ciphertext           AES-128-GCM(K, nonce, content AAD, body)
//   response keys        see stream.ts (HPKE export of the chosen worker's context, bound to SHA-256(envelope bytes),
//                        salted with 32 fresh random bytes the worker draws per answer and sends in chunk 0)
// Byte layouts: envelope.ts (request), stream.ts (response chunks). Overview: docs/security.md.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { concatBytes, isWellFormedText, lengthPrefixed16, utf8 } from "./bytes.js";
import { requestDigest as sha256Hex } from "./digest.js";
import {
  CONTENT_AEAD_AES_128_GCM,
  decodeSealedRequestWithHeader,
  encodeSealedRequest,
  encodeSealedRequestHeader,
  MAX_BODY_BYTES,
  MAX_RECIPIENTS,
  MAX_WORKER_ID_BYTES,
  SEALED_REQUEST_VERSION,
  type SealedRecipient,
  type SealedRequest,
  validateSealedRequestHeader,
} from "./envelope.js";
import {
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  AES_128_KEY_BYTES,
  generateEphemeral,
  generateX25519KeyPair,
  keyScheduleContext,
  HPKE_AEAD_AES_128_GCM,
  HPKE_KDF_HKDF_SHA256,
  HPKE_KEM_X25519_HKDF_SHA256,
  type HpkeRecipientKey,
  hpkeOpenBase,
  hpkeSealBase,
  prepareRecipientKey,
  X25519_KEY_BYTES,
} from "./hpke.js";
import { deriveResponseSecret, ResponseOpener, ResponseSealer } from "./stream.js";

export type { SealedRecipient, SealedRequest } from "./envelope.js";
export { decodeSealedRequest, encodeSealedRequest } from "./envelope.js";
export { ResponseOpener, ResponseSealer } from "./stream.js";
export { requestDigest, ResponseDigest } from "./digest.js";

export const MAX_REQUEST_ID_BYTES = 128;
export const MAX_MODEL_BYTES = 256;
const LABEL_CONTENT_KEY = utf8("cocoon/v1 content-key");
const LABEL_REQUEST = utf8("cocoon/v1 request");

export interface SealMeta {
  requestId: string;
  model: string;
}

export interface SealRecipientKey {
  workerId: string;
  /** Raw X25519 public key (32 bytes) taken from the worker's verified attestation claims. */
  hpkePublicKey: Uint8Array;
}

export interface WorkerHpkeKey {
  workerId: string;
  hpkePrivateKey: Uint8Array;
  hpkePublicKey: Uint8Array;
}

/** A fresh X25519 HPKE key pair as raw 32-byte strings (what attestation claims carry). */
export async function generateHpkeKeyPair(): Promise<{ publicKey: Uint8Array; privateKey: Uint8Array }> {
  return generateX25519KeyPair();
}

function metaBytes(meta: SealMeta): Uint8Array {
  if (typeof meta?.requestId !== "string" || typeof meta?.model !== "string") {
    throw new Error("seal: meta needs string requestId and model");
  }
  if (!isWellFormedText(meta.requestId) || !isWellFormedText(meta.model)) {
    throw new Error("seal: requestId and model must be valid Unicode (no lone surrogates)");
  }
  const id = utf8(meta.requestId);
  const model = utf8(meta.model);
  if (id.byteLength < 1 || id.byteLength > MAX_REQUEST_ID_BYTES) {
    throw new Error(`seal: requestId must be 1..${MAX_REQUEST_ID_BYTES} UTF-8 bytes, got ${id.byteLength}`);
  }
  if (model.byteLength < 1 || model.byteLength > MAX_MODEL_BYTES) {
    throw new Error(`seal: model must be 1..${MAX_MODEL_BYTES} UTF-8 bytes, got ${model.byteLength}`);
  }
  return concatBytes([lengthPrefixed16(id), lengthPrefixed16(model)]);
}

export interface SealedRequestResult {
  envelope: SealedRequest;
  /** The encoded envelope: send exactly these bytes. */
  bytes: Uint8Array;
  /** Lowercase hex SHA-256 of `bytes`: the receipt's requestDigest. */
  requestDigest: string;
  /** Opens the response chunks of whichever candidate answers. */
  opener: ResponseOpener;
}

/**
 * Client: seals `body` for 1..16 candidate workers. Cost: one X25519 key generation, one key agreement per recipient
 * and one AES-GCM over the body.
 */
export async function sealRequest(
  body: Uint8Array,
  recipients: SealRecipientKey[],
  meta: SealMeta,
): Promise<SealedRequestResult> {
  if (!(body instanceof Uint8Array)) throw new Error("seal: body must be bytes (Uint8Array)");
  if (body.byteLength > MAX_BODY_BYTES) throw new Error(`seal: body of ${body.byteLength} bytes exceeds ${MAX_BODY_BYTES}`);
  if (!Array.isArray(recipients) || recipients.length < 1 || recipients.length > MAX_RECIPIENTS) {
    throw new Error(`seal: needs 1..${MAX_RECIPIENTS} candidate workers, got ${recipients?.length ?? 0}`);
  }
  const boundMeta = metaBytes(meta);
  const info = concatBytes([LABEL_CONTENT_KEY, boundMeta]);
  // Content key and content nonce from one call to the random generator.
  const random = randomBytes(AES_128_KEY_BYTES + AEAD_NONCE_BYTES);
  const contentKey = random.subarray(0, AES_128_KEY_BYTES);
  // One ephemeral key and one key-schedule context for all candidates (see hpkeSealBase): per extra candidate this
  // costs one X25519 agreement, not a key generation as well.
  const ephemeral = generateEphemeral();
  const context = keyScheduleContext(info);
  const sealedRecipients: SealedRecipient[] = [];
  const exporterSecrets: Uint8Array[] = [];
  for (const r of recipients) {
    if (typeof r?.workerId !== "string" || !isWellFormedText(r.workerId)) {
      throw new Error(`seal: workerId must be a valid Unicode string, got ${JSON.stringify(r?.workerId)}`);
    }
    const id = utf8(r.workerId);
    if (id.byteLength < 1 || id.byteLength > MAX_WORKER_ID_BYTES) {
      throw new Error(`seal: workerId must be 1..${MAX_WORKER_ID_BYTES} UTF-8 bytes, got ${id.byteLength}`);
    }
    if (!(r.hpkePublicKey instanceof Uint8Array) || r.hpkePublicKey.byteLength !== X25519_KEY_BYTES) {
      throw new Error(`seal: hpkePublicKey of worker ${JSON.stringify(r.workerId)} must be ${X25519_KEY_BYTES} raw bytes`);
    }
    const s = hpkeSealBase(r.hpkePublicKey, info, lengthPrefixed16(id), contentKey, ephemeral, context);
    sealedRecipients.push({ workerId: r.workerId, enc: s.enc, wrappedKey: s.ciphertext });
    exporterSecrets.push(s.exporterSecret);
  }
  const headerFields: Omit<SealedRequest, "ciphertext"> = {
    version: SEALED_REQUEST_VERSION,
    kemId: HPKE_KEM_X25519_HKDF_SHA256,
    kdfId: HPKE_KDF_HKDF_SHA256,
    aeadId: HPKE_AEAD_AES_128_GCM,
    contentAeadId: CONTENT_AEAD_AES_128_GCM,
    recipients: sealedRecipients,
    nonce: new Uint8Array(random.subarray(AES_128_KEY_BYTES)),
  };
  const ciphertextLength = body.byteLength + AEAD_TAG_BYTES;
  // Validates recipients (duplicates, sizes) before anything is encrypted.
  validateSealedRequestHeader(headerFields, ciphertextLength);
  const header = encodeSealedRequestHeader(headerFields, ciphertextLength);
  const cipher = createCipheriv("aes-128-gcm", contentKey, headerFields.nonce);
  cipher.setAAD(concatBytes([LABEL_REQUEST, boundMeta, header]));
  const bytes = new Uint8Array(header.byteLength + ciphertextLength);
  bytes.set(header, 0);
  bytes.set(cipher.update(body), header.byteLength);
  cipher.final();
  bytes.set(cipher.getAuthTag(), header.byteLength + body.byteLength);
  contentKey.fill(0);

  const digestHex = sha256Hex(bytes);
  const candidates = sealedRecipients.map((r, i) => ({ workerId: r.workerId, exporterSecret: exporterSecrets[i]! }));
  // envelope.ciphertext is a view into `bytes` (no copy of a possibly large body); treat both as read-only.
  const envelope: SealedRequest = { ...headerFields, ciphertext: bytes.subarray(header.byteLength) };
  return { envelope, bytes, requestDigest: digestHex, opener: new ResponseOpener(digestHex, candidates) };
}

// Imported private keys, cached per key byte array so a worker's long-lived key is imported (and checked) once.
const preparedKeys = new WeakMap<Uint8Array, HpkeRecipientKey>();

function prepared(me: WorkerHpkeKey): HpkeRecipientKey {
  let k = preparedKeys.get(me.hpkePrivateKey);
  if (!k) {
    k = prepareRecipientKey(me.hpkePrivateKey, me.hpkePublicKey);
    preparedKeys.set(me.hpkePrivateKey, k);
  } else if (Buffer.compare(k.publicKey, me.hpkePublicKey) !== 0) {
    prepareRecipientKey(me.hpkePrivateKey, me.hpkePublicKey); // throws the mismatch error
  }
  return k;
}

export interface OpenedRequest {
  body: Uint8Array;
  /** Seals this request's answer chunks; also carries requestDigest and the running responseDigest for the receipt. */
  responder: ResponseSealer;
  /** Lowercase hex SHA-256 of the envelope bytes. */
  requestDigest: string;
  /**
   * What a replay cache remembers (src/crypto/replay.ts): the HPKE `enc` of this worker's recipient entry (32 bytes).
   * Unique per sealing (a fresh ephemeral key per request) and the same for every envelope that opens under the same
   * HPKE context, including one re-encrypted with a different content nonce by a candidate that knows the content key
   * (whose requestDigest differs). Only meaningful once the envelope opened: it is authenticated by the HPKE wrap.
   */
  replayId: Uint8Array;
}

/**
 * Worker: opens an envelope addressed (among others) to `me`. `meta` is the routing metadata that arrived in clear;
 * if the proxy changed requestId or model, opening fails. Accepts the envelope as bytes (preferred: the digest is
 * taken over exactly what arrived) or as a decoded structure.
 */
export async function openRequest(
  envelope: SealedRequest | Uint8Array,
  me: WorkerHpkeKey,
  meta: SealMeta,
): Promise<OpenedRequest> {
  const bytes = envelope instanceof Uint8Array ? envelope : encodeSealedRequest(envelope);
  const { envelope: env, headerLength } = decodeSealedRequestWithHeader(bytes);
  const mine = env.recipients.find((r) => r.workerId === me.workerId);
  if (!mine) {
    throw new Error(
      `open: worker ${JSON.stringify(me.workerId)} is not a recipient of this request (sealed for ` +
        `${env.recipients.map((r) => JSON.stringify(r.workerId)).join(", ")}); the proxy routed it to the wrong worker`,
    );
  }
  const boundMeta = metaBytes(meta);
  const key = prepared(me);
  let contentKey: Uint8Array;
  let exporterSecret: Uint8Array;
  try {
    const info = concatBytes([LABEL_CONTENT_KEY, boundMeta]);
    const opened = hpkeOpenBase(key, mine.enc, info, lengthPrefixed16(utf8(me.workerId)), mine.wrappedKey);
    contentKey = opened.plaintext;
    exporterSecret = opened.exporterSecret;
  } catch {
    throw new Error(
      `open: cannot unwrap the content key for worker ${JSON.stringify(me.workerId)}: the request was sealed to a different ` +
        "HPKE key (stale attestation?) or its requestId/model/recipient entry was altered in transit",
    );
  }
  if (contentKey.byteLength !== AES_128_KEY_BYTES) {
    throw new Error(`open: unwrapped content key has ${contentKey.byteLength} bytes, expected ${AES_128_KEY_BYTES}`);
  }
  const header = bytes.subarray(0, headerLength);
  const ct = env.ciphertext;
  const decipher = createDecipheriv("aes-128-gcm", contentKey, env.nonce);
  decipher.setAAD(concatBytes([LABEL_REQUEST, boundMeta, header]));
  decipher.setAuthTag(ct.subarray(ct.byteLength - AEAD_TAG_BYTES));
  const body = decipher.update(ct.subarray(0, ct.byteLength - AEAD_TAG_BYTES));
  try {
    decipher.final();
  } catch {
    throw new Error(
      "open: request body failed authentication: the ciphertext, the envelope header, or the requestId/model in the " +
        "routing metadata differ from what the client sealed; refuse the request",
    );
  } finally {
    contentKey.fill(0);
  }
  const digestHex = sha256Hex(bytes);
  const responseSecret = deriveResponseSecret(exporterSecret, Buffer.from(digestHex, "hex"));
  return {
    body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
    // The sealer draws this answer's salt: opening the same envelope again gives an answer under other keys.
    responder: new ResponseSealer(me.workerId, digestHex, responseSecret),
    requestDigest: digestHex,
    replayId: new Uint8Array(mine.enc),
  };
}
