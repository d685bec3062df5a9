// RFC 9180 HPKE, base mode, single-shot, for exactly one suite:
//   KEM  0x0020 DHKEM(X25519, HKDF-SHA256)   KDF 0x0001 HKDF-SHA256   AEAD 0x0001 AES-128-GCM
// implemented on native code (X25519 from curve25519.ts, HMAC and AES-GCM from node:crypto: several times faster per
// recipient than the WebCrypto path of @hpke/core; bench/seal.ts prints both). test/crypto/hpke.test.ts checks the RFC 9180 A.1.1
// known-answer vector and byte-for-byte interoperability with @hpke/core (same enc, ciphertext and exported
// secrets for the same ephemeral key, and opening each other's messages).
// Only what sealing needs: one message (sequence number 0) plus the secret-export interface.
import { createCipheriv, createDecipheriv, createHmac } from "node:crypto";
import { concatBytes, equalBytes, utf8 } from "./bytes.js";
import { x25519, x25519Generate, x25519PublicFromPrivate as rawPublicFromPrivate, X25519_KEY_BYTES } from "./curve25519.js";

export const HPKE_KEM_X25519_HKDF_SHA256 = 0x0020;
export const HPKE_KDF_HKDF_SHA256 = 0x0001;
export const HPKE_AEAD_AES_128_GCM = 0x0001;

/** Sizes fixed by the suite (RFC 9180 section 7): Npk = Nenc = Nsk = 32, Nsecret = Nh = 32, Nk = 16, Nn = 12, Nt = 16. */
export { X25519_KEY_BYTES };
export const HPKE_ENC_BYTES = 32;
export const HPKE_SECRET_BYTES = 32;
export const AES_128_KEY_BYTES = 16;
export const AEAD_NONCE_BYTES = 12;
export const AEAD_TAG_BYTES = 16;
const SHA256_BYTES = 32;
const HKDF_MAX_OUTPUT = 255 * SHA256_BYTES;
const MODE_BASE = 0x00;

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

function dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  try {
    // RFC 9180 section 7.1.4: an all-zero X25519 output means a low-order public key and must be rejected (x25519 does).
    return x25519(privateKey, publicKey);
  } catch (e) {
    throw new Error(`HPKE: ${(e as Error).message}`);
  }
}

/** A fresh X25519 key pair as raw 32-byte strings (the form attested claims carry). */
export function generateX25519KeyPair(): { publicKey: Uint8Array; privateKey: Uint8Array } {
  const kp = x25519Generate();
  return { publicKey: new Uint8Array(kp.publicKey), privateKey: new Uint8Array(kp.privateKey) };
}

/** Derives the raw public key for a raw X25519 private key. */
export function x25519PublicFromPrivate(privateKey: Uint8Array): Uint8Array {
  return new Uint8Array(rawPublicFromPrivate(privateKey));
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

/** An ephemeral X25519 key pair for Encap: the raw private key and its raw public key (= enc). */
export interface HpkeEphemeral {
  privateKey: Uint8Array;
  enc: Uint8Array;
}

/** A fresh ephemeral key pair (what Encap generates). */
export function generateEphemeral(): HpkeEphemeral {
  const kp = x25519Generate();
  return { privateKey: kp.privateKey, enc: kp.publicKey };
}

/** A given ephemeral private key, for known-answer and interoperability tests only. */
export function ephemeralFromPrivate(raw: Uint8Array): HpkeEphemeral {
  return { privateKey: raw, enc: x25519PublicFromPrivate(raw) };
}

/**
 * SetupBaseS + one Seal (sequence 0) to a raw X25519 public key.
 * `ephemeral` defaults to a fresh key pair. One message to several recipients may share one ephemeral key (a
 * multi-recipient KEM): every shared secret still differs, since the KEM context binds each recipient's public key
 * (enc || pkRm) and the DH values differ; it saves a key generation per extra recipient. Never reuse one across
 * messages. `context` is keyScheduleContext(info), passed when sealing one info to several recipients.
 */
export function hpkeSealBase(
  recipientPublicKey: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
  ephemeral: HpkeEphemeral = generateEphemeral(),
  context?: Uint8Array,
): HpkeSealResult {
  if (!(recipientPublicKey instanceof Uint8Array) || recipientPublicKey.byteLength !== X25519_KEY_BYTES) {
    throw new Error(`HPKE public key must be ${X25519_KEY_BYTES} raw X25519 bytes, got ${recipientPublicKey?.byteLength}`);
  }
  const { privateKey: skE, enc } = ephemeral;
  const shared = extractAndExpand(dh(skE, recipientPublicKey), concatBytes([enc, recipientPublicKey]));
  const ks = keySchedule(shared, info, context);
  const cipher = createCipheriv("aes-128-gcm", ks.key, ks.baseNonce);
  cipher.setAAD(aad);
  const ciphertext = concatBytes([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { enc, ciphertext, exporterSecret: ks.exporterSecret };
}

/** A recipient key checked once: the raw private key and its raw public key (part of the KEM context). */
export interface HpkeRecipientKey {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export function prepareRecipientKey(privateKey: Uint8Array, expectedPublicKey?: Uint8Array): HpkeRecipientKey {
  if (!(privateKey instanceof Uint8Array) || privateKey.byteLength !== X25519_KEY_BYTES) {
    throw new Error(`HPKE private key must be ${X25519_KEY_BYTES} raw X25519 bytes, got ${privateKey?.byteLength}`);
  }
  const publicKey = x25519PublicFromPrivate(privateKey);
  if (expectedPublicKey && !equalBytes(publicKey, expectedPublicKey)) {
    throw new Error(
      "HPKE: hpkePublicKey does not belong to hpkePrivateKey; the worker's key pair is inconsistent (regenerate it and re-attest)",
    );
  }
  return { privateKey, publicKey };
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
  const shared = extractAndExpand(dh(recipient.privateKey, enc), concatBytes([enc, recipient.publicKey]));
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
