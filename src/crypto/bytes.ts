// Small byte helpers shared by the sealing and receipt codecs: a bounds-checked reader that throws clear errors,
// a growable writer, UTF-8 and hex conversions. Nothing here is secret-dependent except `equalBytes`, which runs in
// constant time for equal lengths.
import { timingSafeEqual } from "node:crypto";

const UTF8_DECODER = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const UTF8_ENCODER = new TextEncoder();
const HEX_RE = /^(?:[0-9a-f]{2})*$/;
const UINT32_MAX = 0xffff_ffff;

const LONE_SURROGATE_RE = /\p{Cs}/u;

/** True when `s` has no lone UTF-16 surrogate, i.e. it survives a UTF-8 round trip unchanged. */
export function isWellFormedText(s: string): boolean {
  return !LONE_SURROGATE_RE.test(s);
}

export function utf8(s: string): Uint8Array {
  return UTF8_ENCODER.encode(s);
}

/** Decodes strict UTF-8 (no replacement characters); `what` names the field for the error message. */
export function fromUtf8(bytes: Uint8Array, what: string): string {
  try {
    return UTF8_DECODER.decode(bytes);
  } catch {
    throw new Error(`${what} is not valid UTF-8`);
  }
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** Parses lowercase hex of an exact byte length; `what` names the field for the error message. */
export function fromHex(hex: string, byteLength: number, what: string): Uint8Array {
  if (typeof hex !== "string" || hex.length !== byteLength * 2 || !HEX_RE.test(hex)) {
    throw new Error(`${what} must be ${byteLength * 2} lowercase hex characters (${byteLength} bytes)`);
  }
  return new Uint8Array(Buffer.from(hex, "hex"));
}

/** Constant-time comparison (for equal lengths); different lengths compare unequal at once. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.byteLength;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/** `u16 big-endian length || bytes`: the length prefix used for every variable string inside AAD/info inputs. */
export function lengthPrefixed16(bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength > 0xffff) throw new Error(`field too long for a 16-bit length prefix (${bytes.byteLength} bytes)`);
  const out = new Uint8Array(2 + bytes.byteLength);
  out[0] = bytes.byteLength >>> 8;
  out[1] = bytes.byteLength & 0xff;
  out.set(bytes, 2);
  return out;
}

/** Append-only writer for the binary codecs. */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(initialCapacity);
    this.view = new DataView(this.buf.buffer);
  }

  get length(): number {
    return this.len;
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.byteLength) return;
    let cap = this.buf.byteLength * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.reserve(1);
    this.view.setUint8(this.len, v);
    this.len += 1;
    return this;
  }

  u16(v: number): this {
    this.reserve(2);
    this.view.setUint16(this.len, v);
    this.len += 2;
    return this;
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > UINT32_MAX) throw new Error(`value ${v} does not fit in 32 bits`);
    this.reserve(4);
    this.view.setUint32(this.len, v);
    this.len += 4;
    return this;
  }

  u64(v: bigint): this {
    this.reserve(8);
    this.view.setBigUint64(this.len, v);
    this.len += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.reserve(b.byteLength);
    this.buf.set(b, this.len);
    this.len += b.byteLength;
    return this;
  }

  /** A copy of what was written so far, trimmed to its length. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Bounds-checked reader. Every failure is an Error whose message starts with `context` and says what was short. */
export class ByteReader {
  private off = 0;
  private readonly view: DataView;

  constructor(
    private readonly buf: Uint8Array,
    private readonly context: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get offset(): number {
    return this.off;
  }

  get remaining(): number {
    return this.buf.byteLength - this.off;
  }

  private need(n: number, what: string): void {
    if (this.remaining < n) {
      throw new Error(
        `${this.context}: truncated while reading ${what} at byte ${this.off} (needed ${n} bytes, ${this.remaining} left)`,
      );
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.off++);
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.off);
    this.off += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.off);
    this.off += 4;
    return v;
  }

  u64(what: string): bigint {
    this.need(8, what);
    const v = this.view.getBigUint64(this.off);
    this.off += 8;
    return v;
  }

  /** A copy (not a view) so decoded objects never alias the caller's buffer. */
  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.buf.slice(this.off, this.off + n);
    this.off += n;
    return out;
  }

  /** Throws unless every byte was consumed (strict decoders accept exactly one encoding). */
  end(): void {
    if (this.remaining !== 0) {
      throw new Error(`${this.context}: ${this.remaining} unexpected trailing bytes after byte ${this.off}`);
    }
  }

  fail(message: string): never {
    throw new Error(`${this.context}: ${message}`);
  }
}

/**
 * Bounds-checked little-endian reader over a window of untrusted bytes (the attestation formats: TDX quotes,
 * SEV-SNP reports, SPDM). Unlike ByteReader it returns views, not copies, and reads little-endian; every failure is
 * `makeError(message)` naming the structure, the field and the offset.
 */
export class LittleEndianReader {
  private pos: number;
  constructor(
    readonly buf: Buffer,
    readonly what: string,
    start = 0,
    private readonly end = buf.length,
    private readonly makeError: (message: string) => Error = (m) => new Error(m),
  ) {
    if (start < 0 || end > buf.length || start > end) throw makeError(`${what}: invalid window`);
    this.pos = start;
  }
  get offset(): number {
    return this.pos;
  }
  get remaining(): number {
    return this.end - this.pos;
  }
  private need(n: number, field: string): void {
    if (!Number.isInteger(n) || n < 0 || this.pos + n > this.end) {
      throw this.makeError(
        `${this.what}: truncated at ${field} (offset ${this.pos}, need ${n} bytes, ${this.end - this.pos} left)`,
      );
    }
  }
  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.pos++];
  }
  u16(field: string): number {
    this.need(2, field);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(field: string): number {
    this.need(4, field);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(field: string): bigint {
    this.need(8, field);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }
  bytes(n: number, field: string): Buffer {
    this.need(n, field);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  skip(n: number, field: string): void {
    this.need(n, field);
    this.pos += n;
  }
}

export const isAllZero = (b: Uint8Array): boolean => b.every((x) => x === 0);
