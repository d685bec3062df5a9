// Sealed response chunks: the worker encrypts each streamed piece of the answer; the client opens them in order.
//
// Chunk byte layout (big-endian):
//   0    1   flags: bit 0 = FINAL (last chunk of the answer)
//                   bit 1 = SALTED (this chunk carries the response salt): set on seq 0, clear on every other chunk
//                   bits 2..7 reserved, must be 0
//   1    4   seq: u32 chunk sequence number, 0, 1, 2, ... with no gaps
//   5    32  responseSalt: ONLY in chunk 0 (SALTED): fresh random bytes the worker drew for this answer
//   h    n   AES-128-GCM ciphertext of the chunk data (n = data length, 0 allowed); h = 37 for chunk 0, 5 otherwise
//   h+n  16  GCM tag
// AAD   = bytes 0..h (flags, seq and, in chunk 0, the salt), so none of them can be changed without detection.
// nonce = nonceBase XOR (8 zero bytes || u32be(seq)), a unique nonce per chunk under one key (as in TLS 1.3).
// Keys (two steps):
//   responseSecret  = HPKE Export(exporter_secret of the chosen recipient,
//                                 exporter_context = "cocoon/v1 response" || SHA-256(sealed request bytes), 32)
//   key || nonceBase = HKDF-SHA256(IKM = responseSecret, salt = responseSalt, info = "cocoon/v1 response keys", 28)
//                      key = bytes 0..16, nonceBase = bytes 16..28
// The exporter secret exists only at the client and at that one recipient, so the answer is bound to the request
// (its digest) and to the worker that opened it: another candidate, though it holds the same content key, cannot
// forge an answer. The salt makes every answer's key fresh even when the same sealed request is opened twice (a
// replaying proxy): without it, two answers to one request would share key and nonces (keystream reuse, and GCM
// nonce reuse lets the holder of two tags forge more). The salt travels in clear: it is not secret, the proxy that
// sees it still lacks responseSecret, and changing it changes the key and the AAD, so chunk 0 fails authentication.
// The client tries each candidate's key on chunk 0 and thereby learns which worker answered.
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";
import { concatBytes, utf8 } from "./bytes.js";
import { ResponseDigest } from "./digest.js";
import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES, AES_128_KEY_BYTES, HPKE_SECRET_BYTES, hpkeExport } from "./hpke.js";

/** Header of every chunk after the first: flags and seq. */
export const CHUNK_HEADER_BYTES = 5;
/** Fresh random bytes per answer, carried in clear in chunk 0 and mixed into the response keys. */
export const RESPONSE_SALT_BYTES = 32;
/** Header of chunk 0: flags, seq and the response salt. */
export const FIRST_CHUNK_HEADER_BYTES = CHUNK_HEADER_BYTES + RESPONSE_SALT_BYTES;
/** Bytes a chunk adds to its data, for every chunk but the first. */
export const CHUNK_OVERHEAD_BYTES = CHUNK_HEADER_BYTES + AEAD_TAG_BYTES;
/** Bytes chunk 0 adds to its data (it also carries the salt). */
export const FIRST_CHUNK_OVERHEAD_BYTES = FIRST_CHUNK_HEADER_BYTES + AEAD_TAG_BYTES;
export const CHUNK_FLAG_FINAL = 0x01;
export const CHUNK_FLAG_SALTED = 0x02;
const CHUNK_RESERVED_FLAGS = 0xfc;
const SALT_OFFSET = CHUNK_HEADER_BYTES;
/** Largest plaintext per chunk (the wire protocol's 16 MiB frame limit). */
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
export const MAX_CHUNK_SEQ = 0xffff_ffff;
const SEQ_OFFSET_IN_NONCE = AEAD_NONCE_BYTES - 4;
const RESPONSE_EXPORT_LABEL = utf8("cocoon/v1 response");
/** HKDF-Expand's input for the one output block needed (28 <= 32 bytes): info || 0x01. */
const RESPONSE_KEYS_EXPAND_INPUT = Buffer.from(concatBytes([utf8("cocoon/v1 response keys"), Uint8Array.of(1)]));
const RESPONSE_KEY_MATERIAL_BYTES = AES_128_KEY_BYTES + AEAD_NONCE_BYTES;
/** Length of the secret exported from the HPKE context for the answer (HKDF-SHA256's hash length). */
export const RESPONSE_SECRET_BYTES = HPKE_SECRET_BYTES;

export interface ResponseKeys {
  key: Buffer;
  nonceBase: Buffer;
}

/**
 * Step 1 of the response key schedule: the secret only the client and one recipient can compute, from that
 * recipient's HPKE exporter secret and the request digest bytes. Not a key by itself: every answer salts it afresh.
 */
export function deriveResponseSecret(exporterSecret: Uint8Array, requestDigestBytes: Uint8Array): Uint8Array {
  return hpkeExport(exporterSecret, concatBytes([RESPONSE_EXPORT_LABEL, requestDigestBytes]), RESPONSE_SECRET_BYTES);
}

/** @deprecated former name of deriveResponseSecret (still used by bench/seal.ts); its result is a secret, not keys. */
export const deriveResponseKeys = deriveResponseSecret;

/** Step 2: this answer's key and nonce base from the response secret and the salt the worker drew for it. */
export function saltedResponseKeys(responseSecret: Uint8Array, responseSalt: Uint8Array): ResponseKeys {
  if (responseSecret.byteLength !== RESPONSE_SECRET_BYTES) {
    throw new Error(`response keys: the response secret must be ${RESPONSE_SECRET_BYTES} bytes, got ${responseSecret.byteLength}`);
  }
  if (responseSalt.byteLength !== RESPONSE_SALT_BYTES) {
    throw new Error(`response keys: the response salt must be ${RESPONSE_SALT_BYTES} bytes, got ${responseSalt.byteLength}`);
  }
  // HKDF-SHA256 (RFC 5869) written out, twice as fast here as hkdfSync: Extract, then the single Expand block.
  const prk = createHmac("sha256", responseSalt).update(responseSecret).digest();
  const material = createHmac("sha256", prk).update(RESPONSE_KEYS_EXPAND_INPUT).digest();
  return {
    key: material.subarray(0, AES_128_KEY_BYTES),
    nonceBase: material.subarray(AES_128_KEY_BYTES, RESPONSE_KEY_MATERIAL_BYTES),
  };
}

function chunkNonce(into: Buffer, nonceBase: Buffer, seq: number): Buffer {
  nonceBase.copy(into, 0);
  into.writeUInt32BE((nonceBase.readUInt32BE(SEQ_OFFSET_IN_NONCE) ^ seq) >>> 0, SEQ_OFFSET_IN_NONCE);
  return into;
}

/**
 * Worker side: seals answer chunks in order. Each call is one AES-128-GCM plus one SHA-256 update for the digest.
 * The constructor draws this answer's salt, so two sealers for one request (a replay) never share a key or a nonce.
 */
export class ResponseSealer {
  private seq = 0;
  private done = false;
  private readonly nonce = Buffer.alloc(AEAD_NONCE_BYTES);
  private readonly digest = new ResponseDigest();
  private readonly salt: Buffer = randomBytes(RESPONSE_SALT_BYTES);
  private readonly keys: ResponseKeys;

  constructor(
    /** The worker that opened the request (this side). */
    readonly workerId: string,
    /** Lowercase hex SHA-256 of the sealed request bytes: the receipt's requestDigest. */
    readonly requestDigest: string,
    /** deriveResponseSecret(exporter secret of this worker's HPKE context, request digest). */
    responseSecret: Uint8Array,
  ) {
    this.keys = saltedResponseKeys(responseSecret, this.salt);
  }

  /** Seals `data` as the next chunk; `final` marks the last one. Returns the chunk bytes to send. */
  sealChunk(data: Uint8Array, final: boolean): Uint8Array {
    if (this.done) throw new Error("response sealer: the final chunk was already sealed; start a new request for more data");
    if (data.byteLength > MAX_CHUNK_BYTES) {
      throw new Error(`response sealer: chunk of ${data.byteLength} bytes exceeds ${MAX_CHUNK_BYTES}; split it`);
    }
    if (this.seq > MAX_CHUNK_SEQ) throw new Error("response sealer: sequence numbers exhausted (2^32 chunks)");
    const first = this.seq === 0;
    const headerBytes = first ? FIRST_CHUNK_HEADER_BYTES : CHUNK_HEADER_BYTES;
    const out = Buffer.allocUnsafe(headerBytes + data.byteLength + AEAD_TAG_BYTES);
    out[0] = (final ? CHUNK_FLAG_FINAL : 0) | (first ? CHUNK_FLAG_SALTED : 0);
    out.writeUInt32BE(this.seq, 1);
    if (first) this.salt.copy(out, SALT_OFFSET);
    const cipher = createCipheriv("aes-128-gcm", this.keys.key, chunkNonce(this.nonce, this.keys.nonceBase, this.seq));
    cipher.setAAD(out.subarray(0, headerBytes));
    const body = cipher.update(data);
    body.copy(out, headerBytes);
    cipher.final(); // GCM emits nothing here; it computes the tag
    cipher.getAuthTag().copy(out, headerBytes + data.byteLength);
    this.seq++;
    if (final) this.done = true;
    this.digest.update(out);
    // A plain Uint8Array view (no copy): Buffer#slice would alias, which surprises callers that copy with slice().
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  /** Whether the final chunk was sealed. */
  get finished(): boolean {
    return this.done;
  }

  get chunksSealed(): number {
    return this.seq;
  }

  /** Running responseDigest over every chunk sealed so far (see digest.ts); sign it once `finished`. */
  get responseDigest(): string {
    return this.digest.hex();
  }
}

/** A candidate worker of a sealed request: its response secret is derived only if chunk 0 is tried with it. */
interface Candidate {
  workerId: string;
  exporterSecret: Uint8Array;
  responseSecret?: Uint8Array;
}

/**
 * Client side: opens chunks in order. Throws a clear Error on a malformed, tampered, reordered, replayed or dropped
 * chunk and on data after the final chunk. After any error the opener is spent: every later call repeats the error,
 * so a stream under attack cannot be resumed. Call `assertFinished()` when the transport ends to detect truncation.
 * The answer's keys exist only once chunk 0 arrived: they depend on the salt the worker put in it.
 */
export class ResponseOpener {
  private seq = 0;
  private done = false;
  private failure: Error | undefined;
  private chosen: Candidate | undefined;
  /** The chosen worker's keys for this answer (set by chunk 0). */
  private keys: ResponseKeys | undefined;
  private readonly nonce = Buffer.alloc(AEAD_NONCE_BYTES);
  private readonly digest = new ResponseDigest();
  private readonly candidates: Candidate[];

  constructor(
    /** Lowercase hex SHA-256 of the sealed request bytes. */
    readonly requestDigest: string,
    candidates: readonly { workerId: string; exporterSecret: Uint8Array }[],
  ) {
    if (candidates.length === 0) throw new Error("response opener: needs at least one candidate worker");
    this.candidates = candidates.map((c) => ({ workerId: c.workerId, exporterSecret: c.exporterSecret }));
  }

  /**
   * Tries `workerId` first on chunk 0 (the worker the proxy says it chose): one key derivation and one AES-GCM
   * instead of one per candidate. Only an order: the chunk's authentication still decides who answered.
   */
  preferWorker(workerId: string): void {
    const i = this.candidates.findIndex((c) => c.workerId === workerId);
    if (i > 0) this.candidates.unshift(...this.candidates.splice(i, 1));
  }

  private secretOf(c: Candidate): Uint8Array {
    return (c.responseSecret ??= deriveResponseSecret(c.exporterSecret, Buffer.from(this.requestDigest, "hex")));
  }

  openChunk(sealed: Uint8Array): { data: Uint8Array; final: boolean } {
    if (this.failure) throw this.failure;
    try {
      return this.open(sealed);
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e));
      throw this.failure;
    }
  }

  private open(sealed: Uint8Array): { data: Uint8Array; final: boolean } {
    if (!(sealed instanceof Uint8Array)) throw new Error("response chunk: expected bytes (Uint8Array)");
    if (sealed.byteLength < CHUNK_OVERHEAD_BYTES) {
      throw new Error(`response chunk: ${sealed.byteLength} bytes is shorter than the ${CHUNK_OVERHEAD_BYTES}-byte minimum`);
    }
    if (sealed.byteLength > FIRST_CHUNK_OVERHEAD_BYTES + MAX_CHUNK_BYTES) {
      throw new Error(`response chunk: ${sealed.byteLength} bytes exceeds the ${MAX_CHUNK_BYTES}-byte data limit`);
    }
    const flags = sealed[0];
    if ((flags & CHUNK_RESERVED_FLAGS) !== 0) {
      throw new Error(`response chunk: reserved flag bits set (0x${flags.toString(16)}); the chunk is malformed or tampered`);
    }
    const seq = ((sealed[1] << 24) | (sealed[2] << 16) | (sealed[3] << 8) | sealed[4]) >>> 0;
    if (this.done) {
      throw new Error(`response chunk: chunk seq ${seq} arrived after the final chunk; the stream was tampered with or replayed`);
    }
    if (seq < this.seq) {
      throw new Error(`response chunk: seq ${seq} was already received (expected ${this.seq}); replayed or duplicated chunk`);
    }
    if (seq > this.seq) {
      throw new Error(
        `response chunk: got seq ${seq} but expected ${this.seq}; ${seq - this.seq} chunk(s) were dropped or reordered`,
      );
    }
    const first = seq === 0;
    const salted = (flags & CHUNK_FLAG_SALTED) !== 0;
    if (first && !salted) {
      throw new Error(
        "response chunk: seq 0 carries no response salt (flag 0x02 clear); the worker runs an older build without " +
          "per-answer salts, or the chunk was tampered with",
      );
    }
    if (!first && salted) {
      throw new Error(`response chunk: seq ${seq} has the salt flag set; only chunk 0 carries the response salt (malformed or tampered)`);
    }
    const headerBytes = first ? FIRST_CHUNK_HEADER_BYTES : CHUNK_HEADER_BYTES;
    if (sealed.byteLength < headerBytes + AEAD_TAG_BYTES) {
      throw new Error(`response chunk: seq 0 of ${sealed.byteLength} bytes is shorter than the ${FIRST_CHUNK_OVERHEAD_BYTES}-byte minimum`);
    }
    if (sealed.byteLength > headerBytes + AEAD_TAG_BYTES + MAX_CHUNK_BYTES) {
      throw new Error(`response chunk: ${sealed.byteLength} bytes exceeds the ${MAX_CHUNK_BYTES}-byte data limit`);
    }
    const final = (flags & CHUNK_FLAG_FINAL) !== 0;
    const header = sealed.subarray(0, headerBytes);
    const body = sealed.subarray(headerBytes, sealed.byteLength - AEAD_TAG_BYTES);
    const tag = sealed.subarray(sealed.byteLength - AEAD_TAG_BYTES);
    let data: Uint8Array | undefined;
    if (this.chosen && this.keys) {
      data = this.tryOpen(this.keys, seq, header, body, tag);
    } else {
      // Chunk 0: whichever candidate's key authenticates it is the worker that answered.
      const salt = sealed.subarray(SALT_OFFSET, SALT_OFFSET + RESPONSE_SALT_BYTES);
      for (const c of this.candidates) {
        const keys = saltedResponseKeys(this.secretOf(c), salt);
        data = this.tryOpen(keys, seq, header, body, tag);
        if (data) {
          this.chosen = c;
          this.keys = keys;
          break;
        }
      }
    }
    if (!data) {
      throw new Error(
        `response chunk: seq ${seq} failed authentication; it was tampered with, or it was not sealed for this request` +
          (this.chosen ? ` by worker ${JSON.stringify(this.chosen.workerId)}` : " by any of its candidate workers"),
      );
    }
    this.seq++;
    if (final) this.done = true;
    this.digest.update(sealed);
    return { data, final };
  }

  private tryOpen(keys: ResponseKeys, seq: number, header: Uint8Array, body: Uint8Array, tag: Uint8Array): Uint8Array | undefined {
    const decipher = createDecipheriv("aes-128-gcm", keys.key, chunkNonce(this.nonce, keys.nonceBase, seq));
    decipher.setAAD(header);
    decipher.setAuthTag(tag);
    const out = decipher.update(body);
    try {
      decipher.final();
    } catch {
      return undefined;
    }
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  /** Whether the final chunk arrived (and nothing failed). */
  get finished(): boolean {
    return this.done && !this.failure;
  }

  /** The candidate worker whose key sealed the answer; undefined before chunk 0 opened. */
  get workerId(): string | undefined {
    return this.chosen?.workerId;
  }

  get chunksOpened(): number {
    return this.seq;
  }

  /** The error that spent this opener, if any. */
  get error(): Error | undefined {
    return this.failure;
  }

  /** Running responseDigest over the chunks opened so far; compare with the worker's receipt. */
  get responseDigest(): string {
    return this.digest.hex();
  }

  /** Call when the transport ends: throws if the answer was truncated (no final chunk) or failed. */
  assertFinished(): void {
    if (this.failure) throw this.failure;
    if (!this.done) {
      throw new Error(
        `response truncated: the stream ended after ${this.seq} chunk(s) without the final chunk; discard the partial answer`,
      );
    }
  }
}
