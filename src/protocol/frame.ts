// Frame layer of the Cocoon node-to-node protocol (docs/protocol.md).
//
// Byte layout of one frame (all integers big-endian):
//   offset  size  field
//   0       4     payload length N (0 <= N <= MAX_FRAME_PAYLOAD)
//   4       1     frame type (FrameType)
//   5       1     flags (FLAG_*)
//   6       4     stream id (0 = the connection itself)
//   10      N     payload
//
// The decoder is incremental (TLS hands us arbitrary slices) and strict: any unknown type,
// oversize length or misplaced stream id is a ProtocolError that names the rule that failed.
import { CocoonError, type ErrorCode } from "./errors.js";

export const FRAME_HEADER_SIZE = 10;
/** Largest payload of one frame: 16 MiB, as in the original Cocoon. */
export const MAX_FRAME_PAYLOAD = 16 * 1024 * 1024;

export enum FrameType {
  /** Connection: JSON {protocol, versions, role, node, software}. Both sides send it first. */
  Hello = 0x01,
  /** Connection: 8 opaque bytes, answered by Pong with the same bytes. */
  Ping = 0x02,
  Pong = 0x03,
  /** Connection: JSON {code, message}; the sender closes after it. */
  GoAway = 0x04,
  /** Connection: JSON application message (worker announcements, pool updates). */
  Control = 0x05,
  /** Handshake, listener -> dialer, before Hello: u8 difficulty bits + random challenge (proof of work). */
  Challenge = 0x06,
  /** Handshake, dialer -> listener: the nonce whose SHA-256(challenge || nonce) has enough leading zero bits. */
  Solution = 0x07,
  /** Stream: opener's head, JSON {op, ...}. */
  Open = 0x10,
  /** Stream: responder's head, JSON. */
  Reply = 0x11,
  /** Stream: opaque bytes, counted against the flow-control window. */
  Data = 0x12,
  /** Stream: the sender is done; JSON trailer (may be empty). */
  End = 0x13,
  /** Stream: abort in both directions; JSON {code, message}. */
  Reset = 0x14,
  /** Stream: u32 window increment for the peer's Data. */
  Window = 0x15,
}

const CONNECTION_FRAMES = new Set([
  FrameType.Hello,
  FrameType.Ping,
  FrameType.Pong,
  FrameType.GoAway,
  FrameType.Control,
  FrameType.Challenge,
  FrameType.Solution,
]);
const STREAM_FRAMES = new Set([FrameType.Open, FrameType.Reply, FrameType.Data, FrameType.End, FrameType.Reset, FrameType.Window]);

/** Payload size that ping, pong and window frames must have exactly. */
export const PING_PAYLOAD_SIZE = 8;
export const WINDOW_PAYLOAD_SIZE = 4;
/** Challenge payload: 1 byte of difficulty, then 16..64 random bytes. Solution payload: an 8..64-byte nonce. */
export const CHALLENGE_MIN_SIZE = 1 + 16;
export const CHALLENGE_MAX_SIZE = 1 + 64;
export const SOLUTION_MIN_SIZE = 8;
export const SOLUTION_MAX_SIZE = 64;

export interface Frame {
  type: FrameType;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** The peer broke the wire protocol; the connection ends with a GoAway carrying `code`. */
export class ProtocolError extends CocoonError {
  constructor(message: string, code: ErrorCode = "protocol_error") {
    super(code, message);
    this.name = "ProtocolError";
  }
}

export function frameTypeName(type: number): string {
  return FrameType[type] ?? `0x${type.toString(16)}`;
}

export function encodeFrame(type: FrameType, streamId: number, payload: Uint8Array = EMPTY, flags = 0): Buffer {
  if (payload.length > MAX_FRAME_PAYLOAD) {
    throw new ProtocolError(`frame payload of ${payload.length} bytes exceeds the ${MAX_FRAME_PAYLOAD}-byte limit; split it`, "frame_too_large");
  }
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out[4] = type;
  out[5] = flags;
  out.writeUInt32BE(streamId >>> 0, 6);
  out.set(payload, FRAME_HEADER_SIZE);
  return out;
}

const EMPTY = Buffer.alloc(0);

/** Checks the rules that depend only on one frame's header and size. */
export function checkFrame(type: number, streamId: number, length: number): void {
  if (CONNECTION_FRAMES.has(type)) {
    if (streamId !== 0) throw new ProtocolError(`${frameTypeName(type)} frame must use stream id 0, got ${streamId}`);
    if ((type === FrameType.Ping || type === FrameType.Pong) && length !== PING_PAYLOAD_SIZE) {
      throw new ProtocolError(`${frameTypeName(type)} payload must be ${PING_PAYLOAD_SIZE} bytes, got ${length}`);
    }
    if (type === FrameType.Challenge && (length < CHALLENGE_MIN_SIZE || length > CHALLENGE_MAX_SIZE)) {
      throw new ProtocolError(`Challenge payload must be ${CHALLENGE_MIN_SIZE}..${CHALLENGE_MAX_SIZE} bytes, got ${length}`);
    }
    if (type === FrameType.Solution && (length < SOLUTION_MIN_SIZE || length > SOLUTION_MAX_SIZE)) {
      throw new ProtocolError(`Solution payload must be ${SOLUTION_MIN_SIZE}..${SOLUTION_MAX_SIZE} bytes, got ${length}`);
    }
  } else if (STREAM_FRAMES.has(type)) {
    if (streamId === 0) throw new ProtocolError(`${frameTypeName(type)} frame needs a non-zero stream id`);
    if (type === FrameType.Window && length !== WINDOW_PAYLOAD_SIZE) {
      throw new ProtocolError(`Window payload must be ${WINDOW_PAYLOAD_SIZE} bytes, got ${length}`);
    }
  } else {
    throw new ProtocolError(`unknown frame type 0x${type.toString(16)}; the peer may speak a newer protocol`);
  }
}

/**
 * Incremental decoder: push() bytes as they arrive, get whole frames back.
 * Keeps at most one partial frame buffered; rejects a header announcing an oversize frame at once.
 * `limit` may be changed between pushes (a connection allows only small frames until the Hello exchange is done).
 *
 * A frame that lies inside one received chunk is returned as a view of that chunk (no copy); one that spans chunks
 * is copied into a buffer of exactly its size, so that a payload never pins more than its own frame's bytes plus
 * the chunk it came in.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly header = Buffer.allocUnsafe(FRAME_HEADER_SIZE);

  constructor(public limit = MAX_FRAME_PAYLOAD) {}

  push(data: Buffer): Frame[] {
    if (data.length === 0) return [];
    this.chunks.push(data);
    this.buffered += data.length;
    const frames: Frame[] = [];
    while (this.buffered >= FRAME_HEADER_SIZE) {
      const head = this.peekHeader();
      const length = head.readUInt32BE(0);
      const type = head[4]!;
      const flags = head[5]!;
      const streamId = head.readUInt32BE(6);
      if (length > this.limit) {
        throw new ProtocolError(`frame announces ${length} bytes, above the ${this.limit}-byte limit`, "frame_too_large");
      }
      checkFrame(type, streamId, length);
      if (this.buffered < FRAME_HEADER_SIZE + length) break;
      this.skip(FRAME_HEADER_SIZE);
      frames.push({ type, flags, streamId, payload: this.take(length) });
    }
    return frames;
  }

  /** Bytes held for a frame that has not fully arrived. */
  get pending(): number {
    return this.buffered;
  }

  /** Hands back the bytes received after the last whole frame (and forgets them). */
  drainPending(): Buffer {
    const rest = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    this.buffered = 0;
    return rest;
  }

  /** The next 10 bytes, without consuming them. */
  private peekHeader(): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= FRAME_HEADER_SIZE) return first;
    let got = 0;
    for (const c of this.chunks) {
      const n = Math.min(c.length, FRAME_HEADER_SIZE - got);
      c.copy(this.header, got, 0, n);
      got += n;
      if (got === FRAME_HEADER_SIZE) break;
    }
    return this.header;
  }

  private skip(n: number): void {
    this.buffered -= n;
    while (n > 0) {
      const first = this.chunks[0]!;
      if (first.length > n) {
        this.chunks[0] = first.subarray(n);
        return;
      }
      n -= first.length;
      this.chunks.shift();
    }
  }

  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      this.buffered -= n;
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafeSlow(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - got);
      c.copy(out, got, 0, k);
      got += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }
}

/** Parses a JSON payload that must be an object; names the frame in the error. */
export function parseJsonPayload(payload: Buffer, what: string): Record<string, unknown> {
  if (payload.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(payload.toString("utf8"));
  } catch (err) {
    throw new ProtocolError(`${what} payload is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ProtocolError(`${what} payload must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

export function jsonPayload(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}

/** Number of leading zero bits of a digest. */
export function leadingZeroBits(digest: Uint8Array): number {
  let bits = 0;
  for (const byte of digest) {
    if (byte === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}

/**
 * Reads one frame from the start of `bytes` (the handshake's first frame, read before any Connection exists).
 * Returns undefined while more bytes are needed, or the frame and whatever followed it. Throws a ProtocolError
 * for a header that breaks the frame rules or announces more than `limit` bytes.
 */
export function readFirstFrame(bytes: Buffer, limit: number): { frame: Frame; rest: Buffer } | undefined {
  if (bytes.length < FRAME_HEADER_SIZE) return undefined;
  const length = bytes.readUInt32BE(0);
  const type = bytes[4]!;
  const streamId = bytes.readUInt32BE(6);
  if (length > limit) throw new ProtocolError(`frame announces ${length} bytes, above the ${limit}-byte limit`, "frame_too_large");
  checkFrame(type, streamId, length);
  if (bytes.length < FRAME_HEADER_SIZE + length) return undefined;
  return {
    frame: { type, flags: bytes[5]!, streamId, payload: bytes.subarray(FRAME_HEADER_SIZE, FRAME_HEADER_SIZE + length) },
    rest: bytes.subarray(FRAME_HEADER_SIZE + length),
  };
}
