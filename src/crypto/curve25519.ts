// Ed25519 signatures and X25519 key agreement on raw 32-byte keys: the primitives behind receipts, vouchers and HPKE.
// libsodium (sodium-native, prebuilt, no install script) does them about twice as fast as OpenSSL on the machines
// measured here (Ed25519 verify ~50 µs vs ~105 µs; X25519 key generation ~16 µs vs ~40 µs), and every request pays
// for several of them. Both are standard (RFC 8032 / RFC 7748) and give the same bytes, so node:crypto serves where
// sodium-native does not load (test/crypto/curve25519.test.ts cross-checks the two on random inputs).
import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomFillSync,
  sign as nodeSign,
  verify as nodeVerify,
  type KeyObject,
} from "node:crypto";
import { createRequire } from "node:module";

export const ED25519_SEED_BYTES = 32;
export const ED25519_PUBLIC_KEY_BYTES = 32;
export const ED25519_SIGNATURE_BYTES = 64;
export const X25519_KEY_BYTES = 32;
/** libsodium's Ed25519 secret key: seed || public key. */
const SODIUM_SECRET_KEY_BYTES = 64;

// DER wrappers (RFC 8410) that turn raw keys into node:crypto KeyObjects.
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

/** The subset of sodium-native used here. */
interface Sodium {
  crypto_sign_seed_keypair(pk: Buffer, sk: Buffer, seed: Buffer): void;
  crypto_sign_detached(sig: Buffer, message: Buffer, sk: Buffer): void;
  crypto_sign_verify_detached(sig: Buffer, message: Buffer, pk: Buffer): boolean;
  crypto_scalarmult_base(q: Buffer, n: Buffer): void;
  crypto_scalarmult(q: Buffer, n: Buffer, p: Buffer): void;
}

function loadSodium(): Sodium | undefined {
  if (process.env.COCOON_NO_SODIUM) return undefined; // tests run the node:crypto path this way
  try {
    return createRequire(import.meta.url)("sodium-native") as Sodium;
  } catch {
    return undefined;
  }
}

const sodium = loadSodium();

/** Which implementation runs: "libsodium" or "node:crypto". */
export const CURVE25519_BACKEND = sodium ? "libsodium" : "node:crypto";

const asBuffer = (b: Uint8Array) => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

export interface Ed25519Signer {
  publicKey: Buffer;
  sign(message: Uint8Array): Buffer;
}

/** A signer for a 32-byte Ed25519 seed (RFC 8032 private key). Keep it: deriving the key costs more than a signature. */
export function ed25519SignerFromSeed(seed: Uint8Array): Ed25519Signer {
  if (!(seed instanceof Uint8Array) || seed.byteLength !== ED25519_SEED_BYTES) {
    throw new Error(`Ed25519 seed must be ${ED25519_SEED_BYTES} bytes, got ${seed?.byteLength}`);
  }
  if (sodium) {
    const publicKey = Buffer.alloc(ED25519_PUBLIC_KEY_BYTES);
    const secretKey = Buffer.alloc(SODIUM_SECRET_KEY_BYTES);
    sodium.crypto_sign_seed_keypair(publicKey, secretKey, Buffer.from(seed));
    return {
      publicKey,
      sign: (message) => {
        const sig = Buffer.alloc(ED25519_SIGNATURE_BYTES);
        sodium.crypto_sign_detached(sig, asBuffer(message), secretKey);
        return sig;
      },
    };
  }
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: "der", type: "pkcs8" });
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  return { publicKey: Buffer.from(spki.subarray(spki.length - ED25519_PUBLIC_KEY_BYTES)), sign: (message) => nodeSign(null, message, key) };
}

/** The signer of an Ed25519 private KeyObject (e.g. a node's receipt key), derived once per key. */
const signersByKey = new WeakMap<KeyObject, Ed25519Signer>();
export function ed25519SignerFromKeyObject(key: KeyObject): Ed25519Signer {
  let s = signersByKey.get(key);
  if (!s) {
    if (key.type !== "private" || key.asymmetricKeyType !== "ed25519") throw new Error("expected an Ed25519 private key");
    const d = key.export({ format: "jwk" }).d;
    if (typeof d !== "string") throw new Error("could not export the Ed25519 private key");
    s = ed25519SignerFromSeed(Buffer.from(d, "base64url"));
    signersByKey.set(key, s);
  }
  return s;
}

// node:crypto path: imported public keys by hex (public data; signers verify the same few keys again and again).
const publicKeyObjects = new Map<string, KeyObject>();
const PUBLIC_KEY_CACHE_LIMIT = 1024;

function ed25519PublicKeyObject(publicKey: Buffer): KeyObject {
  const hex = publicKey.toString("hex");
  let k = publicKeyObjects.get(hex);
  if (!k) {
    k = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: "der", type: "spki" });
    if (publicKeyObjects.size >= PUBLIC_KEY_CACHE_LIMIT) publicKeyObjects.clear();
    publicKeyObjects.set(hex, k);
  }
  return k;
}

/** True iff `signature` is a valid Ed25519 signature of `message` by the raw `publicKey`. Never throws. */
export function ed25519Verify(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.byteLength !== ED25519_SIGNATURE_BYTES) return false;
  if (!(publicKey instanceof Uint8Array) || publicKey.byteLength !== ED25519_PUBLIC_KEY_BYTES) return false;
  try {
    if (sodium) return sodium.crypto_sign_verify_detached(asBuffer(signature), asBuffer(message), asBuffer(publicKey));
    return nodeVerify(null, message, ed25519PublicKeyObject(asBuffer(publicKey)), signature);
  } catch {
    return false; // not a point on the curve
  }
}

/** A fresh X25519 key pair as raw 32-byte keys. */
export function x25519Generate(): { privateKey: Buffer; publicKey: Buffer } {
  if (sodium) {
    const privateKey = randomFillSync(Buffer.alloc(X25519_KEY_BYTES));
    const publicKey = Buffer.alloc(X25519_KEY_BYTES);
    sodium.crypto_scalarmult_base(publicKey, privateKey);
    return { privateKey, publicKey };
  }
  const kp = generateKeyPairSync("x25519");
  return {
    privateKey: Buffer.from(kp.privateKey.export({ format: "jwk" }).d as string, "base64url"),
    publicKey: Buffer.from(kp.publicKey.export({ format: "jwk" }).x as string, "base64url"),
  };
}

function checkX25519Key(k: Uint8Array, what: string): Buffer {
  if (!(k instanceof Uint8Array) || k.byteLength !== X25519_KEY_BYTES) {
    throw new Error(`${what} must be ${X25519_KEY_BYTES} raw X25519 bytes, got ${k?.byteLength}`);
  }
  return asBuffer(k);
}

/** The raw public key of a raw X25519 private key. */
export function x25519PublicFromPrivate(privateKey: Uint8Array): Buffer {
  const sk = checkX25519Key(privateKey, "X25519 private key");
  if (sodium) {
    const publicKey = Buffer.alloc(X25519_KEY_BYTES);
    sodium.crypto_scalarmult_base(publicKey, sk);
    return publicKey;
  }
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, sk]), format: "der", type: "pkcs8" });
  return Buffer.from(createPublicKey(key).export({ format: "jwk" }).x as string, "base64url");
}

/**
 * X25519(privateKey, publicKey). Throws on an all-zero result (a low-order public key), as RFC 7748 section 6.1 and
 * RFC 9180 section 7.1.4 require.
 */
export function x25519(privateKey: Uint8Array, publicKey: Uint8Array): Buffer {
  const sk = checkX25519Key(privateKey, "X25519 private key");
  const pk = checkX25519Key(publicKey, "X25519 public key");
  let shared: Buffer;
  if (sodium) {
    shared = Buffer.alloc(X25519_KEY_BYTES);
    try {
      sodium.crypto_scalarmult(shared, sk, pk); // libsodium itself refuses an all-zero result
    } catch {
      shared.fill(0);
    }
  } else {
    try {
      shared = diffieHellman({
        privateKey: createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, sk]), format: "der", type: "pkcs8" }),
        publicKey: createPublicKey({ key: { kty: "OKP", crv: "X25519", x: pk.toString("base64url") }, format: "jwk" }),
      });
    } catch {
      shared = Buffer.alloc(X25519_KEY_BYTES);
    }
  }
  if (shared.every((b) => b === 0)) throw new Error("X25519 produced an all-zero secret (low-order public key); use a valid key");
  return shared;
}
