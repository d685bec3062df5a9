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

const CONNECTION_FRAMES = new Set([FrameType.Hello, FrameType.Ping, FrameType.Pong, FrameType.GoAway, FrameType.Control]);
const STREAM_FRAMES = new Set([FrameType.Open, FrameType.Reply, FrameType.Data, FrameType.End, FrameType.Reset, FrameType.Window]);

/** Payload size that ping, pong and window frames must have exactly. */
export const PING_PAYLOAD_SIZE = 8;
export const WINDOW_PAYLOAD_SIZE = 4;

export interface Frame {
  type: FrameType;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export class ProtocolError extends Error {
  constructor(message: string, readonly code = "protocol_error") {
    super(message);
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
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxPayload = MAX_FRAME_PAYLOAD) {}

  push(data: Buffer): Frame[] {
    if (data.length === 0) return [];
    this.chunks.push(data);
    this.buffered += data.length;
    const frames: Frame[] = [];
    while (this.buffered >= FRAME_HEADER_SIZE) {
      const head = this.peek(FRAME_HEADER_SIZE);
      const length = head.readUInt32BE(0);
      const type = head[4]!;
      const flags = head[5]!;
      const streamId = head.readUInt32BE(6);
      if (length > this.maxPayload) {
        throw new ProtocolError(`frame announces ${length} bytes, above the ${this.maxPayload}-byte limit`, "frame_too_large");
      }
      checkFrame(type, streamId, length);
      if (this.buffered < FRAME_HEADER_SIZE + length) break;
      const whole = this.take(FRAME_HEADER_SIZE + length);
      frames.push({ type, flags, streamId, payload: whole.subarray(FRAME_HEADER_SIZE) });
    }
    return frames;
  }

  /** Bytes held for a frame that has not fully arrived. */
  get pending(): number {
    return this.buffered;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks);
      out = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
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
