// One multiplexed connection of the node-to-node protocol (docs/protocol.md): version negotiation,
// many concurrent streams with per-stream credit flow control, ping/idle timeout, and clean teardown.
import { EventEmitter } from "node:events";
import { randomBytes } from "node:crypto";
import type { Duplex } from "node:stream";
import { CocoonError, isErrorCode, type ErrorCode } from "./errors.js";
import type { ControlMessage } from "./messages.js";
import {
  encodeFrame,
  FrameDecoder,
  FrameType,
  frameTypeName,
  jsonPayload,
  parseJsonPayload,
  ProtocolError,
  type Frame,
} from "./frame.js";

export const PROTOCOL_NAME = "cocoon";
/** Versions this build speaks; the highest common one is chosen. */
export const SUPPORTED_VERSIONS = [1] as const;
export const DEFAULT_PING_INTERVAL_MS = 10_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
export const DEFAULT_HELLO_TIMEOUT_MS = 10_000;
/** Bytes of Data a sender may have in flight per stream before the receiver grants more. */
export const DEFAULT_STREAM_WINDOW = 1024 * 1024;
export const DEFAULT_MAX_STREAMS = 1024;
/**
 * Unread inbound Data one connection may hold, across all its streams (each queued chunk also counts
 * QUEUED_CHUNK_OVERHEAD). Per-stream credit alone allows maxStreams x streamWindow = 1 GiB per connection.
 */
export const DEFAULT_MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/** Largest frame accepted before the Hello exchange completes (a Hello is a few hundred bytes). */
export const DEFAULT_MAX_HELLO_BYTES = 4 * 1024;
/** Largest frame accepted afterwards, unless streamWindow is larger (a Data frame may carry a whole window). */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
/** Estimated memory of one queued chunk besides its bytes (Buffer object, queue slot). */
export const QUEUED_CHUNK_OVERHEAD = 256;
/** Protocol-generated answers (Pong, refusals) are not written while this much output waits for the peer to read. */
const CONTROL_WRITE_LIMIT = 1024 * 1024;
/** At most this many of a peer's versions are echoed back in an error message. */
const MAX_ECHOED_VERSIONS = 8;
/** Text from the peer (GoAway / Reset messages) is cut to this many characters before it reaches logs or apps. */
export const MAX_PEER_TEXT = 1024;
/** Stream ids: the dialing side uses odd ids, the accepting side even ones, so they never collide. */
const MAX_STREAM_ID = 0xffff_fffe;

export interface Hello {
  protocol: string;
  versions: number[];
  role: string;
  node: string;
  software: string;
}

export interface ConnectionOptions {
  role: string;
  nodeId: string;
  software?: string;
  /** True for the side that dialed (uses odd stream ids). */
  initiator: boolean;
  pingIntervalMs?: number;
  idleTimeoutMs?: number;
  helloTimeoutMs?: number;
  streamWindow?: number;
  maxStreams?: number;
  versions?: readonly number[];
  /** Unread inbound Data this connection may hold across its streams; the stream that would pass it is reset (`overloaded`). */
  maxBufferedBytes?: number;
  /** A budget shared with other connections (e.g. every connection of one listener), checked as well. */
  sharedBudget?: ByteBudget;
  /** Largest frame before the Hello exchange completes (default 4 KiB). */
  maxHelloBytes?: number;
  /** Largest frame afterwards (default max(1 MiB, streamWindow)). */
  maxFrameBytes?: number;
  /** Sees every plaintext byte this connection receives and sends (audits such as the proxy-blindness test). */
  tap?: (direction: "in" | "out", data: Buffer) => void;
}

/** A stream (or its connection) ended in failure; the code is one of the network's (protocol/errors.ts). */
export class StreamError extends CocoonError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = "StreamError";
  }
}

/** A peer's error code as we read it: ours, or `protocol_error` with the peer's text kept in the message. */
function peerError(code: unknown, fallback: ErrorCode, message: string): StreamError {
  if (code === undefined || isErrorCode(code)) return new StreamError((code as ErrorCode | undefined) ?? fallback, message);
  return new StreamError("protocol_error", `${message} (unknown error code ${JSON.stringify(peerText(code, 32))})`);
}

type Waiter = { resolve: () => void; reject: (e: Error) => void };

/** A byte budget: what is taken must be given back. Shared by connections to bound their total. */
export class ByteBudget {
  used = 0;
  constructor(readonly limit: number) {}
  tryTake(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }
  give(n: number): void {
    this.used -= n;
  }
}

/** Cuts peer-supplied text for logs and error messages. */
export function peerText(value: unknown, max = MAX_PEER_TEXT): string {
  const s = String(value ?? "");
  return s.length > max ? `${s.slice(0, max)}… (${s.length} characters)` : s;
}

/** Bytes one queued chunk is charged against the connection's buffer budget. */
function chunkCost(chunk: Buffer): number {
  return chunk.length + QUEUED_CHUNK_OVERHEAD;
}

/** One request/response exchange inside a connection. Iterate it to read the peer's Data. */
export class Stream {
  /** The peer's head: Open for a stream we accepted, Reply for a stream we opened. */
  head: Record<string, unknown> | undefined;
  /** The peer's End trailer, once it arrived. */
  trailer: Record<string, unknown> | undefined;

  /** Made on first use of `signal`: most streams never need one, and every request opens several. */
  private abortController: AbortController | undefined;
  private queue: Buffer[] = [];
  private readWaiter: Waiter | undefined;
  private headWaiters: Waiter[] = [];
  private sendWindow: number;
  private windowWaiters: Waiter[] = [];
  private unacked = 0;
  private recvAllowance: number;
  private localEnded = false;
  private remoteEnded = false;
  private failure: StreamError | undefined;
  private replied = false;
  /** The app started reading (iterating) this stream. */
  private reading = false;
  /** Budget bytes held for chunks in `queue`; given back as they are read or when the stream fails. */
  private charged = 0;

  constructor(
    private readonly conn: Connection,
    readonly id: number,
    readonly incoming: boolean,
    private readonly window: number,
  ) {
    this.sendWindow = window;
    this.recvAllowance = window;
  }

  /** Aborts (with the StreamError as its reason) when the stream fails: reset by either side or connection lost. */
  get signal(): AbortSignal {
    if (!this.abortController) {
      this.abortController = new AbortController();
      if (this.failure) this.abortController.abort(this.failure);
    }
    return this.abortController.signal;
  }

  get error(): StreamError | undefined {
    return this.failure;
  }

  /** Responder's head, sent once before any Data on an incoming stream. */
  reply(head: Record<string, unknown>): void {
    if (!this.incoming) throw new Error("reply() is for streams opened by the peer");
    if (this.replied || this.failure) return;
    this.replied = true;
    this.conn.sendRaw(encodeFrame(FrameType.Reply, this.id, jsonPayload(head)));
  }

  /** Resolves with the peer's Reply head (for streams we opened). */
  async replyHead(): Promise<Record<string, unknown>> {
    if (this.head) return this.head;
    if (this.failure) throw this.failure;
    await new Promise<void>((resolve, reject) => this.headWaiters.push({ resolve, reject }));
    return this.head!;
  }

  /** Sends Data, waiting for flow-control credit and socket drain (backpressure). */
  async write(data: Uint8Array): Promise<void> {
    if (data.length === 0) return;
    let offset = 0;
    while (offset < data.length) {
      if (this.failure) throw this.failure;
      if (this.localEnded) throw new StreamError("stream_closed", `stream ${this.id}: write after end`);
      if (this.sendWindow <= 0) {
        await new Promise<void>((resolve, reject) => this.windowWaiters.push({ resolve, reject }));
        continue;
      }
      const n = Math.min(data.length - offset, this.sendWindow, this.conn.maxDataFrame);
      this.sendWindow -= n;
      const slice = offset === 0 && n === data.length ? data : data.subarray(offset, offset + n);
      const ok = this.conn.sendRaw(encodeFrame(FrameType.Data, this.id, slice));
      offset += n;
      if (!ok) await this.conn.drained();
    }
  }

  /** Ends our direction, with an optional JSON trailer. */
  end(trailer: Record<string, unknown> = {}): void {
    if (this.localEnded || this.failure) return;
    this.localEnded = true;
    this.conn.sendRaw(encodeFrame(FrameType.End, this.id, jsonPayload(trailer)));
    if (this.abandonsInput()) {
      // A responder that answered without reading the request (e.g. `models`): nobody will read the rest.
      if (this.queue.length > 0) this.refuseInput();
      return;
    }
    this.maybeFinish();
  }

  /** Aborts the stream in both directions and tells the peer why. */
  reset(code: ErrorCode, message: string): void {
    if (this.failure) return;
    this.conn.sendRaw(encodeFrame(FrameType.Reset, this.id, jsonPayload({ code, message })));
    this.fail(new StreamError(code, message));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    this.reading = true;
    for (;;) {
      const chunk = this.queue.shift();
      if (chunk) {
        const cost = chunkCost(chunk);
        if (this.charged >= cost) {
          this.charged -= cost;
          this.conn.releaseBuffered(cost);
        }
        this.credit(chunk.length);
        yield chunk;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.remoteEnded) return;
      await new Promise<void>((resolve, reject) => (this.readWaiter = { resolve, reject }));
    }
  }

  /** Reads the whole remaining body. */
  async readAll(limit = Number.MAX_SAFE_INTEGER): Promise<Buffer> {
    const parts: Buffer[] = [];
    let total = 0;
    for await (const chunk of this) {
      total += chunk.length;
      if (total > limit) {
        this.reset("too_large", `body exceeds ${limit} bytes`);
        throw new StreamError("too_large", `body exceeds ${limit} bytes`);
      }
      parts.push(chunk);
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  // --- called by Connection ---

  onHead(head: Record<string, unknown>): void {
    if (this.head) throw new ProtocolError(`stream ${this.id}: second head frame`);
    this.head = head;
    for (const w of this.headWaiters.splice(0)) w.resolve();
  }

  onData(data: Buffer): void {
    if (this.remoteEnded) throw new ProtocolError(`stream ${this.id}: Data after End`);
    if (data.length > this.recvAllowance) {
      throw new ProtocolError(`stream ${this.id}: peer sent ${data.length} bytes with only ${this.recvAllowance} of window left`);
    }
    this.recvAllowance -= data.length;
    if (this.failure || data.length === 0) return; // we reset it; drop late data
    if (this.localEnded && this.abandonsInput()) return this.refuseInput();
    // A small payload that is a view of a much larger received chunk would pin that whole chunk while it waits in
    // the queue; copy it unless a reader is waiting to take it at once.
    if (!this.readWaiter && data.length < 4096 && data.buffer.byteLength > 2 * data.length) data = Buffer.from(data);
    const cost = chunkCost(data);
    const why = this.conn.reserveBuffered(cost);
    if (why) {
      this.reset("overloaded", `stream ${this.id}: ${why}; the receiving app is not reading fast enough`);
      return;
    }
    this.charged += cost;
    this.queue.push(data);
    this.wakeReader();
  }

  onEnd(trailer: Record<string, unknown>): void {
    if (this.remoteEnded) throw new ProtocolError(`stream ${this.id}: second End`);
    this.remoteEnded = true;
    this.trailer = trailer;
    if (!this.head) {
      // A stream may end without a head (e.g. an empty answer); head waiters get an empty head.
      this.head = {};
      for (const w of this.headWaiters.splice(0)) w.resolve();
    }
    this.wakeReader();
    this.maybeFinish();
  }

  onWindow(increment: number): void {
    this.sendWindow += increment;
    for (const w of this.windowWaiters.splice(0)) w.resolve();
  }

  fail(err: StreamError): void {
    if (this.failure) return;
    this.failure = err;
    if (this.charged > 0) {
      this.conn.releaseBuffered(this.charged);
      this.charged = 0;
    }
    if (!this.reading) this.queue = []; // nobody reads it: free it now
    this.abortController?.abort(err);
    this.readWaiter?.reject(err);
    this.readWaiter = undefined;
    for (const w of this.headWaiters.splice(0)) w.reject(err);
    for (const w of this.windowWaiters.splice(0)) w.reject(err);
    this.conn.forget(this.id);
  }

  private wakeReader(): void {
    const w = this.readWaiter;
    this.readWaiter = undefined;
    w?.resolve();
  }

  private credit(n: number): void {
    this.unacked += n;
    if (this.unacked >= this.window / 2 && !this.remoteEnded && !this.failure) {
      const inc = this.unacked;
      this.unacked = 0;
      this.recvAllowance += inc;
      const p = Buffer.allocUnsafe(4);
      p.writeUInt32BE(inc, 0);
      this.conn.sendRaw(encodeFrame(FrameType.Window, this.id, p));
    }
  }

  private maybeFinish(): void {
    if (this.localEnded && this.remoteEnded) this.conn.forget(this.id);
  }

  /** True for a stream the peer opened, that we ended, whose input the app never started to read. */
  private abandonsInput(): boolean {
    return this.incoming && !this.remoteEnded && !this.reading;
  }

  /** The peer keeps sending request data to a responder that has answered and will not read it: reset. */
  private refuseInput(): void {
    this.reset("stream_closed", `stream ${this.id}: the responder has answered and ended the stream; it reads no more request data`);
  }
}

export interface ConnectionEvents {
  stream: [Stream];
  control: [Record<string, unknown>];
  close: [Error | undefined];
}

/**
 * A protocol connection over any byte duplex (a TLS socket in production, a plain pair in tests).
 * Emits 'stream' for streams the peer opens, 'control' for connection-level messages, 'close' once.
 */
export class Connection extends EventEmitter<ConnectionEvents> {
  peerHello: Hello | undefined;
  version = 0;
  /** Round-trip time of the last ping, in ms. */
  rttMs: number | undefined;
  readonly ready: Promise<void>;
  readonly maxDataFrame = 64 * 1024;
  closed = false;
  closeReason: Error | undefined;

  private readonly decoder: FrameDecoder;
  /** Budget bytes held by queued inbound Data of all streams. */
  private buffered = 0;
  private readonly streams = new Map<number, Stream>();
  private nextStreamId: number;
  private lastSeen = Date.now();
  private pingTimer: NodeJS.Timeout | undefined;
  private helloTimer: NodeJS.Timeout | undefined;
  private pingSentAt = new Map<string, number>();
  private drainWaiters: Array<() => void> = [];
  private resolveReady!: () => void;
  private rejectReady!: (e: Error) => void;
  private readonly opts: Required<Omit<ConnectionOptions, "tap" | "sharedBudget">>;
  private readonly sharedBudget: ByteBudget | undefined;
  private readonly tap: ConnectionOptions["tap"];

  /**
   * Streams and control messages that arrived before the owner attached its listeners: the owner learns of the
   * connection once the peer's Hello is in (`ready`, a promise), and the peer's first request can arrive in the very
   * same read (a worker's announcement, a client's channel registration). They wait here instead of being dropped.
   */
  private early: { stream: Stream[]; control: Record<string, unknown>[] } = { stream: [], control: [] };

  private deliver(event: "stream", value: Stream): void;
  private deliver(event: "control", value: Record<string, unknown>): void;
  private deliver(event: "stream" | "control", value: Stream | Record<string, unknown>): void {
    if (this.listenerCount(event) > 0) this.emit(event as "stream", value as Stream);
    else (this.early[event] as unknown[]).push(value);
  }

  constructor(readonly socket: Duplex, options: ConnectionOptions) {
    super();
    (this as unknown as NodeJS.EventEmitter).on("newListener", (event: string | symbol) => {
      if (event !== "stream" && event !== "control") return;
      const queued = this.early[event];
      if (queued.length === 0) return;
      this.early[event] = [] as never;
      // After the listener is attached (newListener fires just before): hand over what waited, in order.
      queueMicrotask(() => {
        for (const v of queued) this.emit(event as "stream", v as Stream);
      });
    });
    this.opts = {
      software: "cocoon-ts",
      pingIntervalMs: DEFAULT_PING_INTERVAL_MS,
      idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
      helloTimeoutMs: DEFAULT_HELLO_TIMEOUT_MS,
      streamWindow: DEFAULT_STREAM_WINDOW,
      maxStreams: DEFAULT_MAX_STREAMS,
      versions: SUPPORTED_VERSIONS,
      maxBufferedBytes: DEFAULT_MAX_BUFFERED_BYTES,
      maxHelloBytes: DEFAULT_MAX_HELLO_BYTES,
      maxFrameBytes: Math.max(DEFAULT_MAX_FRAME_BYTES, options.streamWindow ?? DEFAULT_STREAM_WINDOW),
      ...(withoutUndefined(options) as ConnectionOptions),
    };
    this.tap = options.tap;
    this.sharedBudget = options.sharedBudget;
    this.decoder = new FrameDecoder(this.opts.maxHelloBytes);
    this.nextStreamId = options.initiator ? 1 : 2;
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {}); // observed via 'close' too
    socket.on("data", (data: Buffer) => this.onBytes(data));
    socket.on("drain", () => this.onDrain());
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => this.destroy(new Error("connection closed by peer")));
    this.helloTimer = setTimeout(
      () => this.fatal(new ProtocolError(`no Hello from peer within ${this.opts.helloTimeoutMs} ms`, "hello_timeout")),
      this.opts.helloTimeoutMs,
    );
    const hello: Hello = {
      protocol: PROTOCOL_NAME,
      versions: [...this.opts.versions],
      role: this.opts.role,
      node: this.opts.nodeId,
      software: this.opts.software,
    };
    this.sendRaw(encodeFrame(FrameType.Hello, 0, jsonPayload(hello)));
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  /** Budget bytes of unread inbound Data held by this connection's streams. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Takes n bytes from this connection's (and the shared) buffer budget; returns why not, or undefined. */
  reserveBuffered(n: number): string | undefined {
    if (this.buffered + n > this.opts.maxBufferedBytes) {
      return `${this.buffered} bytes of unread data are buffered on this connection (limit ${this.opts.maxBufferedBytes})`;
    }
    if (this.sharedBudget && !this.sharedBudget.tryTake(n)) {
      return `${this.sharedBudget.used} bytes of unread data are buffered across this node's connections (limit ${this.sharedBudget.limit})`;
    }
    this.buffered += n;
    return undefined;
  }

  releaseBuffered(n: number): void {
    this.buffered -= n;
    this.sharedBudget?.give(n);
  }

  /** Opens a stream with the given head; read the answer with replyHead() and iteration. */
  open(head: Record<string, unknown>): Stream {
    if (this.closed) throw new StreamError("connection_lost", `connection is closed: ${this.closeReason?.message ?? "closed"}`);
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    if (this.nextStreamId > MAX_STREAM_ID) this.nextStreamId = this.opts.initiator ? 1 : 2;
    const stream = new Stream(this, id, false, this.opts.streamWindow);
    this.streams.set(id, stream);
    this.sendRaw(encodeFrame(FrameType.Open, id, jsonPayload(head)));
    return stream;
  }

  /** Sends a connection-level control message (a JSON object with a `type`; its schema is in messages.ts). */
  sendControl(message: ControlMessage): void {
    if (!this.closed) this.sendRaw(encodeFrame(FrameType.Control, 0, jsonPayload(message)));
  }

  /** Tells the peer why we leave, then closes. */
  close(code: ErrorCode = "shutdown", message = "closing"): void {
    if (this.closed) return;
    this.closing ??= new StreamError(code, message);
    this.sendRaw(encodeFrame(FrameType.GoAway, 0, jsonPayload({ code, message: peerText(message) })));
    this.socket.end();
    this.destroy(new StreamError(code, message));
  }

  /** Writes raw frame bytes; false means the socket buffer is full (await drained()). */
  sendRaw(frame: Buffer): boolean {
    if (this.closed) return true;
    this.tap?.("out", frame);
    // Frames written in one turn of the event loop leave as one TLS write: far fewer records and syscalls when
    // streaming. setImmediate, not nextTick: a relay writes from promise continuations, each of which would otherwise
    // flush on its own, and every socket read of one poll phase (the tokens of many streams arriving together, as
    // a batching engine emits them) is answered by one write. The check phase follows the poll phase at once, so a
    // lone frame leaves as soon as the work it came from is done. Backpressure is unchanged: write() still returns
    // false once the corked bytes pass the socket's high-water mark.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(this.uncork);
    }
    return this.socket.write(frame);
  }

  private corked = false;
  /** Why we are closing, set before the socket is ended. */
  private closing: Error | undefined;
  private readonly uncork = () => {
    this.corked = false;
    this.socket.uncork();
  };

  drained(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  forget(id: number): void {
    this.streams.delete(id);
  }

  destroy(err?: Error): void {
    if (this.closed) return;
    // Ending the socket may report an error or close synchronously: keep the reason we are closing for.
    err = this.closing ?? err;
    this.closed = true;
    this.closeReason = err;
    clearInterval(this.pingTimer);
    clearTimeout(this.helloTimer);
    const reason = new StreamError("connection_lost", `connection lost: ${err?.message ?? "closed"}`);
    for (const s of [...this.streams.values()]) s.fail(reason);
    this.streams.clear();
    this.onDrain();
    this.rejectReady(err ?? reason);
    this.socket.destroy();
    this.emit("close", err);
  }

  private fatal(err: ProtocolError): void {
    if (this.closed) return;
    this.closing ??= err;
    try {
      this.socket.write(encodeFrame(FrameType.GoAway, 0, jsonPayload({ code: err.code, message: peerText(err.message) })));
    } catch {
      /* socket already gone */
    }
    this.socket.end();
    this.destroy(err);
  }

  private onDrain(): void {
    for (const w of this.drainWaiters.splice(0)) w();
  }

  private onBytes(data: Buffer): void {
    if (this.closed) return;
    this.tap?.("in", data);
    this.lastSeen = Date.now();
    try {
      for (const frame of this.decoder.push(data)) this.onFrame(frame);
    } catch (err) {
      if (err instanceof ProtocolError) this.fatal(err);
      else this.fatal(new ProtocolError(`internal error handling a frame: ${(err as Error).message}`, "internal"));
    }
  }

  private onFrame(frame: Frame): void {
    if (this.closed) return;
    if (!this.peerHello && frame.type !== FrameType.Hello && frame.type !== FrameType.GoAway) {
      throw new ProtocolError(`expected Hello first, got ${frameTypeName(frame.type)}`);
    }
    switch (frame.type) {
      case FrameType.Hello:
        return this.onHello(parseJsonPayload(frame.payload, "Hello"));
      case FrameType.Ping:
        // A peer that pings without reading our answers must not grow our output buffer: skip the Pong.
        if (this.socket.writableLength < CONTROL_WRITE_LIMIT) this.sendRaw(encodeFrame(FrameType.Pong, 0, frame.payload));
        return;
      case FrameType.Pong: {
        const key = frame.payload.toString("hex");
        const sent = this.pingSentAt.get(key);
        if (sent !== undefined) {
          this.rttMs = Date.now() - sent;
          this.pingSentAt.delete(key);
        }
        return;
      }
      case FrameType.GoAway: {
        const info = parseJsonPayload(frame.payload, "GoAway");
        this.destroy(peerError(info.code, "goaway", `peer closed the connection: ${peerText(info.message)}`));
        return;
      }
      case FrameType.Control:
        this.deliver("control", parseJsonPayload(frame.payload, "Control"));
        return;
      case FrameType.Open:
        return this.onOpen(frame);
      case FrameType.Challenge:
      case FrameType.Solution:
        throw new ProtocolError(`${frameTypeName(frame.type)} frame outside the connection handshake`);
      default:
        return this.onStreamFrame(frame);
    }
  }

  private onHello(hello: Record<string, unknown>): void {
    if (this.peerHello) throw new ProtocolError("second Hello on one connection");
    if (hello.protocol !== PROTOCOL_NAME) throw new ProtocolError(`peer speaks "${peerText(hello.protocol, 64)}", not "${PROTOCOL_NAME}"`, "wrong_protocol");
    const versions = hello.versions;
    if (!Array.isArray(versions) || !versions.every((v) => Number.isInteger(v))) {
      throw new ProtocolError("Hello.versions must be an array of integers");
    }
    const common = this.opts.versions.filter((v) => versions.includes(v));
    if (common.length === 0) {
      const shown = versions.length > MAX_ECHOED_VERSIONS ? `${versions.slice(0, MAX_ECHOED_VERSIONS).join(",")},… (${versions.length} in all)` : versions.join(",");
      throw new ProtocolError(`no common protocol version: we speak ${this.opts.versions.join(",")}, peer speaks ${shown}; upgrade the older node`, "version_mismatch");
    }
    this.version = Math.max(...common);
    this.peerHello = {
      protocol: PROTOCOL_NAME,
      versions: versions as number[],
      role: String(hello.role ?? ""),
      node: String(hello.node ?? ""),
      software: String(hello.software ?? ""),
    };
    clearTimeout(this.helloTimer);
    this.decoder.limit = this.opts.maxFrameBytes;
    this.pingTimer = setInterval(() => this.tick(), this.opts.pingIntervalMs);
    this.pingTimer.unref();
    this.resolveReady();
  }

  private onOpen(frame: Frame): void {
    const id = frame.streamId;
    const peerParity = this.opts.initiator ? 0 : 1;
    if (id % 2 !== peerParity) throw new ProtocolError(`peer opened stream ${id} with our parity`);
    if (this.streams.has(id)) throw new ProtocolError(`peer reopened live stream ${id}`);
    const head = parseJsonPayload(frame.payload, "Open");
    if (this.streams.size >= this.opts.maxStreams) {
      if (this.socket.writableLength >= CONTROL_WRITE_LIMIT) {
        throw new ProtocolError(`peer keeps opening streams beyond the limit of ${this.opts.maxStreams} without reading the refusals`, "too_many_streams");
      }
      this.sendRaw(encodeFrame(FrameType.Reset, id, jsonPayload({ code: "too_many_streams", message: `limit is ${this.opts.maxStreams}` })));
      return;
    }
    const stream = new Stream(this, id, true, this.opts.streamWindow);
    this.streams.set(id, stream);
    stream.onHead(head);
    this.deliver("stream", stream);
  }

  private onStreamFrame(frame: Frame): void {
    const stream = this.streams.get(frame.streamId);
    if (!stream) return; // frames for a stream we already closed or reset are dropped
    switch (frame.type) {
      case FrameType.Reply:
        if (stream.incoming) throw new ProtocolError(`Reply on stream ${frame.streamId} that the peer opened`);
        stream.onHead(parseJsonPayload(frame.payload, "Reply"));
        return;
      case FrameType.Data:
        stream.onData(frame.payload);
        return;
      case FrameType.End:
        stream.onEnd(parseJsonPayload(frame.payload, "End"));
        return;
      case FrameType.Reset: {
        const info = parseJsonPayload(frame.payload, "Reset");
        stream.fail(peerError(info.code, "protocol_error", peerText(info.message ?? "reset by peer")));
        return;
      }
      case FrameType.Window:
        stream.onWindow(frame.payload.readUInt32BE(0));
        return;
    }
  }

  private tick(): void {
    if (Date.now() - this.lastSeen > this.opts.idleTimeoutMs) {
      this.fatal(new ProtocolError(`peer silent for more than ${this.opts.idleTimeoutMs} ms`, "timeout"));
      return;
    }
    const nonce = randomBytes(8);
    this.pingSentAt.set(nonce.toString("hex"), Date.now());
    if (this.pingSentAt.size > 16) this.pingSentAt.delete(this.pingSentAt.keys().next().value!);
    this.sendRaw(encodeFrame(FrameType.Ping, 0, nonce));
  }
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
