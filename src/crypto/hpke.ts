// RFC 9180 HPKE, base mode, single-shot, for exactly one suite:
//   KEM  0x0020 DHKEM(X25519, HKDF-SHA256)   KDF 0x0001 HKDF-SHA256   AEAD 0x0001 AES-128-GCM
// implemented on node:crypto (native X25519, HMAC and AES-GCM: several times faster per recipient than the
// WebCrypto path of @hpke/core; bench/seal.ts prints both). test/crypto/hpke.test.ts checks the RFC 9180 A.1.1
// known-answer vector and byte-for-byte interoperability with @hpke/core (same enc, ciphertext and exported
// secrets for the same ephemeral key, and opening each other's messages).
// Only what sealing needs: one message (sequence number 0) plus the secret-export interface.
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import { concatBytes, equalBytes, utf8 } from "./bytes.js";

export const HPKE_KEM_X25519_HKDF_SHA256 = 0x0020;
export const HPKE_KDF_HKDF_SHA256 = 0x0001;
export const HPKE_AEAD_AES_128_GCM = 0x0001;

/** Sizes fixed by the suite (RFC 9180 section 7): Npk = Nenc = Nsk = 32, Nsecret = Nh = 32, Nk = 16, Nn = 12, Nt = 16. */
export const X25519_KEY_BYTES = 32;
export const HPKE_ENC_BYTES = 32;
export const HPKE_SECRET_BYTES = 32;
export const AES_128_KEY_BYTES = 16;
export const AEAD_NONCE_BYTES = 12;
export const AEAD_TAG_BYTES = 16;
const SHA256_BYTES = 32;
const HKDF_MAX_OUTPUT = 255 * SHA256_BYTES;
const MODE_BASE = 0x00;

// PKCS#8 wrapper (RFC 8410) that turns a raw 32-byte X25519 private key into a KeyObject (JWK import would need x).
const X25519_PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
]);

const HPKE_V1 = utf8("HPKE-v1");
// suite_id for the KEM ("KEM" || I2OSP(kem_id, 2)) and for the key schedule ("HPKE" || kem_id || kdf_id || aead_id).
const KEM_SUITE_ID = concatBytes([utf8("KEM"), i2osp2(HPKE_KEM_X25519_HKDF_SHA256)]);
const HPKE_SUITE_ID = concatBytes([
  utf8("HPKE"),
  i2osp2(HPKE_KEM_X25519_HKDF_SHA256),
  i2osp2(HPKE_KDF_HKDF_SHA256),
  i2osp2(HPKE_AEAD_AES_128_GCM),
]);
const EMPTY = new Uint8Array(0);
const LABEL_EAE_PRK = utf8("eae_prk");
const LABEL_SHARED_SECRET = utf8("shared_secret");
const LABEL_PSK_ID_HASH = utf8("psk_id_hash");
const LABEL_INFO_HASH = utf8("info_hash");
const LABEL_SECRET = utf8("secret");
const LABEL_KEY = utf8("key");
const LABEL_BASE_NONCE = utf8("base_nonce");
const LABEL_EXP = utf8("exp");
const LABEL_SEC = utf8("sec");

function i2osp2(n: number): Uint8Array {
  return Uint8Array.from([(n >>> 8) & 0xff, n & 0xff]);
}

function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac("sha256", key);
  for (const p of parts) h.update(p);
  return h.digest();
}

function labeledExtract(suiteId: Uint8Array, salt: Uint8Array, label: Uint8Array, ikm: Uint8Array): Uint8Array {
  // HKDF-Extract(salt, ikm) = HMAC(salt, ikm); an empty salt equals 32 zero bytes because HMAC zero-pads its key.
  return hmac(salt, HPKE_V1, suiteId, label, ikm);
}

function labeledExpand(suiteId: Uint8Array, prk: Uint8Array, label: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (length > HKDF_MAX_OUTPUT) throw new Error(`HPKE: cannot expand ${length} bytes (at most ${HKDF_MAX_OUTPUT})`);
  const labeledInfo = concatBytes([i2osp2(length), HPKE_V1, suiteId, label, info]);
  const out = new Uint8Array(length);
  let prev: Uint8Array = EMPTY;
  for (let i = 1, off = 0; off < length; i++) {
    prev = hmac(prk, prev, labeledInfo, Uint8Array.of(i));
    out.set(prev.subarray(0, Math.min(prev.byteLength, length - off)), off);
    off += prev.byteLength;
  }
  return out;
}

// Imported peer public keys, by hex (public data): a client seals to the same few workers again and again.
const publicKeyCache = new Map<string, KeyObject>();
const PUBLIC_KEY_CACHE_LIMIT = 1024;

/** Raw X25519 public key -> KeyObject. JWK import is used because DER import costs ~5x more in Node 20. */
export function x25519PublicKeyObject(raw: Uint8Array): KeyObject {
  if (!(raw instanceof Uint8Array) || raw.byteLength !== X25519_KEY_BYTES) {
    throw new Error(`HPKE public key must be ${X25519_KEY_BYTES} raw X25519 bytes, got ${raw?.byteLength}`);
  }
  const x = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64url");
  let key = publicKeyCache.get(x);
  if (!key) {
    key = createPublicKey({ key: { kty: "OKP", crv: "X25519", x }, format: "jwk" });
    if (publicKeyCache.size >= PUBLIC_KEY_CACHE_LIMIT) publicKeyCache.delete(publicKeyCache.keys().next().value as string);
    publicKeyCache.set(x, key);
  }
  return key;
}

export function x25519PrivateKeyObject(raw: Uint8Array): KeyObject {
  if (raw.byteLength !== X25519_KEY_BYTES) {
    throw new Error(`HPKE private key must be ${X25519_KEY_BYTES} raw X25519 bytes, got ${raw.byteLength}`);
  }
  return createPrivateKey({ key: Buffer.from(concatBytes([X25519_PKCS8_PREFIX, raw])), format: "der", type: "pkcs8" });
}

function rawPublicKey(key: KeyObject): Uint8Array {
  const x = key.export({ format: "jwk" }).x;
  if (typeof x !== "string") throw new Error("HPKE: could not export an X25519 public key");
  return new Uint8Array(Buffer.from(x, "base64url"));
}

function rawPrivateKey(key: KeyObject): Uint8Array {
  const d = key.export({ format: "jwk" }).d;
  if (typeof d !== "string") throw new Error("HPKE: could not export an X25519 private key");
  return new Uint8Array(Buffer.from(d, "base64url"));
}

function dh(privateKey: KeyObject, publicKey: KeyObject): Uint8Array {
  let shared: Uint8Array;
  try {
    shared = diffieHellman({ privateKey, publicKey });
  } catch {
    throw new Error("HPKE: X25519 key agreement failed (the peer public key is a low-order point); use a valid key");
  }
  // RFC 9180 section 7.1.4: an all-zero X25519 output means a low-order public key and must be rejected.
  if (shared.every((b) => b === 0)) {
    throw new Error("HPKE: X25519 produced an all-zero secret (low-order public key); use a valid key");
  }
  return shared;
}

/** A fresh X25519 key pair as raw 32-byte strings (the form attested claims carry). */
export function generateX25519KeyPair(): { publicKey: Uint8Array; privateKey: Uint8Array } {
  const kp = generateKeyPairSync("x25519");
  return { publicKey: rawPublicKey(kp.publicKey), privateKey: rawPrivateKey(kp.privateKey) };
}

/** Derives the raw public key for a raw X25519 private key. */
export function x25519PublicFromPrivate(privateKey: Uint8Array): Uint8Array {
  return rawPublicKey(createPublicKey(x25519PrivateKeyObject(privateKey)));
}

interface KeySchedule {
  key: Uint8Array;
  baseNonce: Uint8Array;
  exporterSecret: Uint8Array;
}

function extractAndExpand(dhSecret: Uint8Array, kemContext: Uint8Array): Uint8Array {
  const eaePrk = labeledExtract(KEM_SUITE_ID, EMPTY, LABEL_EAE_PRK, dhSecret);
  return labeledExpand(KEM_SUITE_ID, eaePrk, LABEL_SHARED_SECRET, kemContext, HPKE_SECRET_BYTES);
}

// psk_id_hash is the same for every base-mode context (empty psk_id): computed once.
const PSK_ID_HASH = labeledExtract(HPKE_SUITE_ID, EMPTY, LABEL_PSK_ID_HASH, EMPTY);

/** The key schedule context for `info` (mode || psk_id_hash || info_hash); the same for all recipients of one info. */
function keyScheduleContext(info: Uint8Array): Uint8Array {
  const infoHash = labeledExtract(HPKE_SUITE_ID, EMPTY, LABEL_INFO_HASH, info);
  return concatBytes([Uint8Array.of(MODE_BASE), PSK_ID_HASH, infoHash]);
}

export { keyScheduleContext };

function keySchedule(sharedSecret: Uint8Array, info: Uint8Array, context = keyScheduleContext(info)): KeySchedule {
  const secret = labeledExtract(HPKE_SUITE_ID, sharedSecret, LABEL_SECRET, EMPTY);
  return {
    key: labeledExpand(HPKE_SUITE_ID, secret, LABEL_KEY, context, AES_128_KEY_BYTES),
    baseNonce: labeledExpand(HPKE_SUITE_ID, secret, LABEL_BASE_NONCE, context, AEAD_NONCE_BYTES),
    exporterSecret: labeledExpand(HPKE_SUITE_ID, secret, LABEL_EXP, context, SHA256_BYTES),
  };
}

/** RFC 9180 Context.Export: LabeledExpand(exporter_secret, "sec", exporter_context, L). */
export function hpkeExport(exporterSecret: Uint8Array, exporterContext: Uint8Array, length: number): Uint8Array {
  return labeledExpand(HPKE_SUITE_ID, exporterSecret, LABEL_SEC, exporterContext, length);
}

export interface HpkeSealResult {
  /** Encapsulated key (the ephemeral X25519 public key), 32 bytes. */
  enc: Uint8Array;
  /** AES-128-GCM ciphertext of the plaintext with the 16-byte tag appended. */
  ciphertext: Uint8Array;
  /** The context's exporter secret; pass to `hpkeExport`. */
  exporterSecret: Uint8Array;
}

/** An ephemeral X25519 key pair for Encap: the private KeyObject and its raw public key (= enc). */
export interface HpkeEphemeral {
  privateKey: KeyObject;
  enc: Uint8Array;
}

/** A fresh ephemeral key pair (what Encap generates). */
export function generateEphemeral(): HpkeEphemeral {
  const kp = generateKeyPairSync("x25519");
  return { privateKey: kp.privateKey, enc: rawPublicKey(kp.publicKey) };
}

/** A given ephemeral private key, for known-answer and interoperability tests only. */
export function ephemeralFromPrivate(raw: Uint8Array): HpkeEphemeral {
  const privateKey = x25519PrivateKeyObject(raw);
  return { privateKey, enc: rawPublicKey(createPublicKey(privateKey)) };
}

/**
 * SetupBaseS + one Seal (sequence 0). `recipientPublicKey` is a raw key or a prepared KeyObject.
 * `ephemeral` defaults to a fresh key pair. One message to several recipients may share one ephemeral key (a
 * multi-recipient KEM): every shared secret still differs, since the KEM context binds each recipient's public key
 * (enc || pkRm) and the DH values differ; it saves a key generation per extra recipient. Never reuse one across
 * messages. `context` is keyScheduleContext(info), passed when sealing one info to several recipients.
 */
export function hpkeSealBase(
  recipientPublicKey: Uint8Array | KeyObject,
  info: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
  ephemeral: HpkeEphemeral = generateEphemeral(),
  context?: Uint8Array,
): HpkeSealResult {
  const pkR = recipientPublicKey instanceof Uint8Array ? x25519PublicKeyObject(recipientPublicKey) : recipientPublicKey;
  const pkRm = recipientPublicKey instanceof Uint8Array ? recipientPublicKey : rawPublicKey(recipientPublicKey);
  const { privateKey: skE, enc } = ephemeral;
  const shared = extractAndExpand(dh(skE, pkR), concatBytes([enc, pkRm]));
  const ks = keySchedule(shared, info, context);
  const cipher = createCipheriv("aes-128-gcm", ks.key, ks.baseNonce);
  cipher.setAAD(aad);
  const ciphertext = concatBytes([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { enc, ciphertext, exporterSecret: ks.exporterSecret };
}

/** A recipient key prepared once (KeyObject plus its raw public key) so each request skips the DER import. */
export interface HpkeRecipientKey {
  privateKey: KeyObject;
  publicKey: Uint8Array;
}

export function prepareRecipientKey(privateKey: Uint8Array, expectedPublicKey?: Uint8Array): HpkeRecipientKey {
  const keyObject = x25519PrivateKeyObject(privateKey);
  const publicKey = rawPublicKey(createPublicKey(keyObject));
  if (expectedPublicKey && !equalBytes(publicKey, expectedPublicKey)) {
    throw new Error(
      "HPKE: hpkePublicKey does not belong to hpkePrivateKey; the worker's key pair is inconsistent (regenerate it and re-attest)",
    );
  }
  return { privateKey: keyObject, publicKey };
}

/** SetupBaseR + one Open (sequence 0). Throws a clear Error when the ciphertext was not sealed to this key/info/aad. */
export function hpkeOpenBase(
  recipient: HpkeRecipientKey,
  enc: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  ciphertext: Uint8Array,
): { plaintext: Uint8Array; exporterSecret: Uint8Array } {
  if (enc.byteLength !== HPKE_ENC_BYTES) throw new Error(`HPKE: enc must be ${HPKE_ENC_BYTES} bytes, got ${enc.byteLength}`);
  if (ciphertext.byteLength < AEAD_TAG_BYTES) throw new Error("HPKE: ciphertext shorter than its authentication tag");
  const shared = extractAndExpand(dh(recipient.privateKey, x25519PublicKeyObject(enc)), concatBytes([enc, recipient.publicKey]));
  const ks = keySchedule(shared, info);
  const body = ciphertext.subarray(0, ciphertext.byteLength - AEAD_TAG_BYTES);
  const tag = ciphertext.subarray(ciphertext.byteLength - AEAD_TAG_BYTES);
  const decipher = createDecipheriv("aes-128-gcm", ks.key, ks.baseNonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  let plaintext: Uint8Array;
  try {
    plaintext = concatBytes([decipher.update(body), decipher.final()]);
  } catch {
    throw new Error("HPKE: authentication failed (sealed to another key, or enc/info/aad/ciphertext altered)");
  }
  return { plaintext, exporterSecret: ks.exporterSecret };
}
