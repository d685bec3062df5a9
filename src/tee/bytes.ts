// Bounds-checked little-endian reader over untrusted bytes. Every read checks the remaining length first and
// throws EvidenceFormatError naming the structure and field, so parsers never read outside their input.
import { EvidenceFormatError } from "./errors.js";

export class ByteReader {
  private pos: number;
  constructor(
    readonly buf: Buffer,
    readonly what: string,
    start = 0,
    private readonly end = buf.length,
  ) {
    if (start < 0 || end > buf.length || start > end) throw new EvidenceFormatError(`${what}: invalid window`);
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
      throw new EvidenceFormatError(
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

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
export const isAllZero = (b: Uint8Array): boolean => b.every((x) => x === 0);

/** Parses a hex string (whitespace allowed) into bytes, or throws a clear error. */
export function fromHex(text: string, what: string): Buffer {
  const clean = text.replace(/\s+/g, "");
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean)) {
    throw new EvidenceFormatError(`${what}: expected hex text, got ${JSON.stringify(clean.slice(0, 32))}...`);
  }
  return Buffer.from(clean, "hex");
}
