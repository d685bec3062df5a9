// Minimal DER (ASN.1) reader and writer. node:crypto's X509Certificate exposes no extensions and no CRLs, so
// the verifiers walk DER themselves: PCK/VCEK extensions, CRL entries, RA-TLS extensions. The writer builds the
// TBSCertificate of our self-signed RA-TLS certificates.
// Only definite-length, low-tag-number encodings are accepted (DER requires both); anything else is an error.
import { EvidenceFormatError } from "./errors.js";

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Maximum nesting depth accepted from untrusted DER (real certificates use fewer than 12 levels). */
const MAX_DEPTH = 32;

export interface DerNode {
  tag: number;
  /** Offset of the tag byte in `buf`. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset one past the last content byte. */
  end: number;
  buf: Buffer;
}

export const content = (n: DerNode): Buffer => n.buf.subarray(n.contentStart, n.end);
export const raw = (n: DerNode): Buffer => n.buf.subarray(n.start, n.end);

/** Reads one TLV at `offset` within [offset, limit). */
export function readNode(buf: Buffer, offset = 0, limit = buf.length, what = "DER"): DerNode {
  if (offset + 2 > limit) throw new EvidenceFormatError(`${what}: truncated DER header at offset ${offset}`);
  const tag = buf[offset];
  if ((tag & 0x1f) === 0x1f) throw new EvidenceFormatError(`${what}: high-tag-number DER tags are not supported`);
  let p = offset + 1;
  const first = buf[p++];
  let len: number;
  if (first < 0x80) len = first;
  else {
    const n = first & 0x7f;
    if (n === 0) throw new EvidenceFormatError(`${what}: indefinite DER length is not allowed`);
    if (n > 4) throw new EvidenceFormatError(`${what}: DER length of ${n} bytes is too large`);
    if (p + n > limit) throw new EvidenceFormatError(`${what}: truncated DER length at offset ${offset}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p++];
  }
  if (p + len > limit) {
    throw new EvidenceFormatError(`${what}: DER value at offset ${offset} claims ${len} bytes, only ${limit - p} left`);
  }
  return { tag, start: offset, contentStart: p, end: p + len, buf };
}

/** Parses a whole buffer as exactly one DER element. */
export function parseDer(buf: Buffer, what = "DER"): DerNode {
  const n = readNode(buf, 0, buf.length, what);
  if (n.end !== buf.length) throw new EvidenceFormatError(`${what}: ${buf.length - n.end} trailing bytes after DER`);
  return n;
}

/** Children of a constructed node. */
export function children(n: DerNode, what = "DER", depth = 0): DerNode[] {
  if (depth > MAX_DEPTH) throw new EvidenceFormatError(`${what}: DER nested too deeply`);
  if ((n.tag & 0x20) === 0) throw new EvidenceFormatError(`${what}: expected a constructed DER value, got tag 0x${n.tag.toString(16)}`);
  const out: DerNode[] = [];
  let p = n.contentStart;
  while (p < n.end) {
    const c = readNode(n.buf, p, n.end, what);
    out.push(c);
    p = c.end;
  }
  return out;
}

/** Asserts a tag and returns the node, for readable parsers. */
export function expectTag(n: DerNode | undefined, tag: number, what: string): DerNode {
  if (!n) throw new EvidenceFormatError(`${what}: missing DER element`);
  if (n.tag !== tag) throw new EvidenceFormatError(`${what}: expected DER tag 0x${tag.toString(16)}, got 0x${n.tag.toString(16)}`);
  return n;
}

export function decodeOid(n: DerNode): string {
  const b = content(n);
  if (b.length === 0) throw new EvidenceFormatError("DER: empty OBJECT IDENTIFIER");
  const parts: number[] = [];
  let v = 0;
  for (let i = 0; i < b.length; i++) {
    v = v * 128 + (b[i] & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 256) throw new EvidenceFormatError("DER: OBJECT IDENTIFIER arc too large");
    if ((b[i] & 0x80) === 0) {
      if (parts.length === 0) {
        const first = v < 80 ? Math.floor(v / 40) : 2;
        parts.push(first, v - first * 40);
      } else parts.push(v);
      v = 0;
    }
  }
  if ((b[b.length - 1] & 0x80) !== 0) throw new EvidenceFormatError("DER: truncated OBJECT IDENTIFIER");
  return parts.join(".");
}

/** Non-negative INTEGER as a JS number (throws if it does not fit). */
export function decodeSmallInt(n: DerNode, what: string): number {
  const b = content(expectTag(n, TAG.INTEGER, what));
  if (b.length === 0 || b.length > 6 || (b[0] & 0x80) !== 0) throw new EvidenceFormatError(`${what}: INTEGER out of range`);
  return b.readUIntBE(0, b.length);
}

/** INTEGER bytes as lowercase hex with leading zero bytes removed (for serial-number comparison). */
export function intHex(n: DerNode): string {
  let b = content(n);
  while (b.length > 1 && b[0] === 0) b = b.subarray(1);
  return b.toString("hex");
}

export function decodeTime(n: DerNode, what: string): Date {
  const s = content(n).toString("latin1");
  let m: RegExpMatchArray | null;
  let iso: string;
  if (n.tag === TAG.UTC_TIME && (m = s.match(/^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/))) {
    const yy = Number(m[1]);
    iso = `${yy >= 50 ? 1900 + yy : 2000 + yy}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`;
  } else if (n.tag === TAG.GENERALIZED_TIME && (m = s.match(/^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/))) {
    iso = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`;
  } else throw new EvidenceFormatError(`${what}: malformed time ${JSON.stringify(s.slice(0, 20))}`);
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) throw new EvidenceFormatError(`${what}: invalid time ${s}`);
  return d;
}

// ---------------------------------------------------------------- writer

function encLen(len: number): Buffer {
  if (len < 0x80) return Buffer.from([len]);
  const bytes: number[] = [];
  for (let v = len; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), encLen(body.length), body]);
}
export const seq = (...items: Buffer[]): Buffer => tlv(TAG.SEQUENCE, Buffer.concat(items));
export const set = (...items: Buffer[]): Buffer => tlv(TAG.SET, Buffer.concat(items));
export const octets = (b: Buffer): Buffer => tlv(TAG.OCTET_STRING, b);
export const bitString = (b: Buffer): Buffer => tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), b]));
export const bool = (v: boolean): Buffer => tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0]));
export const utf8 = (s: string): Buffer => tlv(TAG.UTF8_STRING, Buffer.from(s, "utf8"));
/** Context-specific constructed tag [n]. */
export const explicit = (n: number, body: Buffer): Buffer => tlv(0xa0 | n, body);

/** Positive INTEGER from big-endian magnitude bytes. */
export function uint(b: Buffer): Buffer {
  let v = b;
  while (v.length > 1 && v[0] === 0) v = v.subarray(1);
  if (v[0] & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return tlv(TAG.INTEGER, v);
}

export function oid(dotted: string): Buffer {
  const p = dotted.split(".").map(Number);
  const out: number[] = [p[0] * 40 + p[1]];
  for (const arc of p.slice(2)) {
    const b: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) b.unshift((v & 0x7f) | 0x80);
    out.push(...b);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

/** UTCTime for years < 2050, GeneralizedTime after (RFC 5280 4.1.2.5). */
export function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/\.\d{3}Z$/, "Z");
  const digits = iso.replace(/[-:T]/g, "");
  const year = d.getUTCFullYear();
  return year < 2050 ? tlv(TAG.UTC_TIME, Buffer.from(digits.slice(2), "latin1")) : tlv(TAG.GENERALIZED_TIME, Buffer.from(digits, "latin1"));
}
