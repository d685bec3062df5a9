// TLS 1.3 transport for protocol connections. Certificates are checked by the application's
// PeerVerifier hook (attestation lives there), never by a CA store: nodes are self-signed by design.
import tls from "node:tls";
import type net from "node:net";
import type { AddressInfo } from "node:net";
import { createHash, randomFillSync } from "node:crypto";
import { ByteBudget, Connection, peerText, type ConnectionOptions } from "./connection.js";
import type { ErrorCode } from "./errors.js";
import type { Claims } from "../tee/claims.js";
import {
  CHALLENGE_MAX_SIZE,
  encodeFrame,
  FRAME_HEADER_SIZE,
  FrameType,
  frameTypeName,
  jsonPayload,
  leadingZeroBits,
  readFirstFrame,
  SOLUTION_MAX_SIZE,
} from "./frame.js";
import { RateLimitedReporter } from "../util/log.js";

export interface TlsIdentity {
  keyPem: string;
  certPem: string;
}

/** What a verifier learned about the peer; attached to the connection. */
export interface PeerInfo {
  /** One line for logs, e.g. "worker abc (sim, INSECURE)". */
  description: string;
  /** True when the peer's evidence is a development stand-in. */
  insecure: boolean;
  /** The peer's certificate (DER) as presented in the handshake, set by the transport. */
  certDer?: Buffer;
  /** What its verified evidence says (attested peers only): platform, image, the claims it binds. */
  platform?: string;
  imageDigest?: string;
  claims?: Claims;
  /** The only model names an attested worker may announce (its claims bind one). */
  models?: string[];
  /** The worker id its claims bind. */
  nodeId?: string;
}

/** Decides whether to talk to a peer, given its certificate (DER), or throws with a human reason. */
export type PeerVerifier = (peerCertDer: Buffer | undefined) => Promise<PeerInfo>;

/** Accepts any peer; only for tests and roles that verify nothing (e.g. a proxy's view of clients). */
export const acceptAnyPeer: PeerVerifier = async () => ({ description: "unverified peer", insecure: true });

export interface VerifiedConnection {
  conn: Connection;
  peer: PeerInfo;
}

type ConnOpts = Omit<ConnectionOptions, "initiator" | "sharedBudget">;

export const DEFAULT_MAX_CONNECTIONS = 4096;
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 64;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Proof-of-work difficulty: 2^12 SHA-256 on average, about 5-15 ms for a dialer in JavaScript. */
export const DEFAULT_POW_BITS = 12;
/** Extra bits asked while verifications queue up (each bit doubles a dialer's work). */
export const POW_EXTRA_BITS_UNDER_LOAD = 4;
/** A dialer refuses to solve more than this (2^22 hashes, seconds of CPU): a server asking more is misbehaving. */
export const MAX_POW_BITS = 22;
export const DEFAULT_MAX_CONCURRENT_VERIFICATIONS = 4;
export const DEFAULT_MAX_QUEUED_VERIFICATIONS = 128;
/** Unread inbound data across all connections of one listener. */
export const DEFAULT_LISTENER_BUFFER_BYTES = 256 * 1024 * 1024;
export const DEFAULT_REJECT_LOG_INTERVAL_MS = 10_000;
const CHALLENGE_BYTES = 16;

export interface ListenOptions {
  host: string;
  port: number;
  identity: TlsIdentity;
  /** Ask the dialer for its certificate (mutual TLS). */
  requestClientCert: boolean;
  verifyPeer: PeerVerifier;
  connection: ConnOpts;
  onConnection: (c: VerifiedConnection) => void;
  /**
   * A refused or failed handshake. Rate-limited by the listener: at most one call per kind of refusal per
   * rejectLogIntervalMs; `count` is how many refusals the call stands for (1, or a summary of those held back).
   */
  onRejected?: (reason: string, remote: string, count: number) => void;
  /** Most open TCP connections from one remote address (default 64); more are closed at once. */
  maxConnectionsPerAddress?: number;
  /** Most open TCP connections in all (default 4096). */
  maxConnections?: number;
  /** TLS handshake, proof of work and peer verification must be done this long after TCP accept (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Proof of work asked of each dialer before its certificate is verified, in leading zero bits (default 12; 0 = none). */
  powBits?: number;
  /** Peer verifications (attestation checks) running at once (default 4); others wait in a queue. */
  maxConcurrentVerifications?: number;
  /** Handshakes that may wait for a verification slot (default 128); beyond, they are refused as busy. */
  maxQueuedVerifications?: number;
  /** Unread inbound Data across all this listener's connections (default 256 MiB). */
  maxBufferedBytes?: number;
  /** Interval of the refusal rate limit (default 10 s). */
  rejectLogIntervalMs?: number;
}

export interface ListenerStats {
  /** Open TCP connections, including those still in the handshake. */
  connections: number;
  /** Connections not yet handed to the application (TLS, proof of work, verification). */
  handshaking: number;
  verifying: number;
  queuedVerifications: number;
  /** Unread inbound Data held across connections. */
  bufferedBytes: number;
  /** Refusals since start, by kind (tls, handshake_timeout, too_many_connections, listener_full, pow, busy, peer_refused). */
  refused: Record<string, number>;
  /**
   * The peer_refused ones by the verifier's rule: an attestation or policy refusal names its rule (e.g.
   * `policy.measurement`, `ratls.reportdata`; tee/errors.ts AttestationError.rule); evidence that did not parse is
   * `evidence.format`, anything else `other`.
   */
  refusedByRule: Record<string, number>;
}

export interface Listener {
  port: number;
  /** Serves a new certificate to handshakes from now on (identity rotation); open connections are unaffected. */
  setIdentity(identity: TlsIdentity): void;
  stats(): ListenerStats;
  close(): Promise<void>;
}

/** Whether SHA-256(challenge || nonce) starts with `bits` zero bits. */
export function checkProofOfWork(challenge: Uint8Array, nonce: Uint8Array, bits: number): boolean {
  return leadingZeroBits(createHash("sha256").update(challenge).update(nonce).digest()) >= bits;
}

/** Finds a nonce for the challenge (2^bits hashes on average), yielding to the event loop now and then. */
export async function solveProofOfWork(challenge: Uint8Array, bits: number): Promise<Buffer> {
  const nonce = Buffer.alloc(8);
  const base = createHash("sha256").update(challenge);
  for (let hi = 0; ; hi++) {
    nonce.writeUInt32BE(hi, 0);
    for (let lo = 0; lo < 0x1_0000_0000; lo++) {
      nonce.writeUInt32BE(lo, 4);
      if (leadingZeroBits(base.copy().update(nonce).digest()) >= bits) return nonce;
      if ((lo & 4095) === 4095) await new Promise<void>((r) => setImmediate(r));
    }
  }
}

/** Runs at most `max` tasks at once; up to `maxQueue` more wait in order; beyond that, refuses. */
class Gate {
  running = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(
    private readonly max: number,
    private readonly maxQueue: number,
  ) {}
  get queued(): number {
    return this.waiting.length;
  }
  /** Resolves when a slot is free; false if the queue is full. Call release() after. */
  async acquire(): Promise<boolean> {
    if (this.running < this.max) {
      this.running++;
      return true;
    }
    if (this.waiting.length >= this.maxQueue) return false;
    await new Promise<void>((r) => this.waiting.push(r));
    return true;
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}

interface Pending {
  addr: string;
  raw: net.Socket;
  deadline: NodeJS.Timeout | undefined;
  /** Handed over, or already refused (later errors of this socket are not reported again). */
  done: boolean;
}

export async function listen(opts: ListenOptions): Promise<Listener> {
  const maxPerAddress = opts.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
  const maxTotal = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const handshakeMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const powBits = opts.powBits ?? DEFAULT_POW_BITS;
  const gate = new Gate(opts.maxConcurrentVerifications ?? DEFAULT_MAX_CONCURRENT_VERIFICATIONS, opts.maxQueuedVerifications ?? DEFAULT_MAX_QUEUED_VERIFICATIONS);
  const budget = new ByteBudget(opts.maxBufferedBytes ?? DEFAULT_LISTENER_BUFFER_BYTES);
  const refused: Record<string, number> = {};
  const refusedByRule: Record<string, number> = {};
  const reporter = new RateLimitedReporter(opts.rejectLogIntervalMs ?? DEFAULT_REJECT_LOG_INTERVAL_MS, (reason, remote, count) =>
    opts.onRejected?.(reason, remote, count),
  );
  const refuse = (kind: string, reason: string, remote: string) => {
    refused[kind] = (refused[kind] ?? 0) + 1;
    reporter.report(kind, reason, remote);
  };

  const server = tls.createServer({
    key: opts.identity.keyPem,
    cert: opts.identity.certPem,
    minVersion: "TLSv1.3",
    requestCert: opts.requestClientCert,
    rejectUnauthorized: false,
    handshakeTimeout: handshakeMs,
  });
  const perAddress = new Map<string, number>();
  /** TCP connections not yet handed to a Connection, by "address:port". */
  const pending = new Map<string, Pending>();
  const raws = new Set<net.Socket>();

  server.on("connection", (raw: net.Socket) => {
    const addr = raw.remoteAddress ?? "unknown";
    const key = `${addr}:${raw.remotePort}`;
    const n = (perAddress.get(addr) ?? 0) + 1;
    perAddress.set(addr, n);
    raws.add(raw);
    raw.once("close", () => {
      raws.delete(raw);
      const left = (perAddress.get(addr) ?? 1) - 1;
      if (left > 0) perAddress.set(addr, left);
      else perAddress.delete(addr);
      const p = pending.get(key);
      if (p?.raw === raw) {
        clearTimeout(p.deadline);
        pending.delete(key);
      }
    });
    raw.on("error", () => {});
    const p: Pending = { addr, raw, done: false, deadline: undefined };
    pending.set(key, p);
    if (raws.size > maxTotal) {
      p.done = true;
      refuse("listener_full", `too many connections (${maxTotal} open); closed a new one`, key);
      raw.destroy();
      return;
    }
    if (n > maxPerAddress) {
      p.done = true;
      refuse("too_many_connections", `too many connections from ${addr} (limit ${maxPerAddress}); closed a new one`, key);
      raw.destroy();
      return;
    }
    p.deadline = setTimeout(() => {
      if (p.done) return;
      p.done = true;
      refuse("handshake_timeout", `handshake not completed within ${handshakeMs} ms (TLS, proof of work or verification); closed`, key);
      raw.destroy();
    }, handshakeMs);
    p.deadline.unref();
  });

  server.on("secureConnection", (socket) => {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const p = pending.get(remote);
    socket.on("error", () => {});
    if (!p || p.done) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const der = opts.requestClientCert ? socket.getPeerX509Certificate()?.raw : undefined;
    const goAway = (code: ErrorCode, message: string) => {
      socket.resume(); // discard what the peer still sends, and notice when it closes
      socket.end(encodeFrame(FrameType.GoAway, 0, jsonPayload({ code, message: peerText(message) })));
      setTimeout(() => socket.destroy(), 1_000).unref();
    };
    void (async () => {
      if (powBits > 0) {
        const bits = Math.min(MAX_POW_BITS, powBits + (gate.queued > 0 ? POW_EXTRA_BITS_UNDER_LOAD : 0));
        const err = await askProofOfWork(socket, bits);
        if (p.done || socket.destroyed) return;
        if (err) {
          refuse("pow", `no valid proof of work: ${err}`, remote);
          return goAway("pow_failed", err);
        }
      }
      if (!(await gate.acquire())) {
        refuse("busy", `too many handshakes waiting for verification (${gate.queued}); refused one`, remote);
        return goAway("busy", "too many handshakes are being verified; try again shortly");
      }
      let verified: PeerInfo;
      try {
        if (p.done || socket.destroyed) return;
        verified = await opts.verifyPeer(der);
      } catch (err) {
        if (p.done || socket.destroyed) return;
        refuse("peer_refused", (err as Error).message, remote);
        const rule = ruleOf(err);
        refusedByRule[rule] = (refusedByRule[rule] ?? 0) + 1;
        // Tell the peer why before closing, so its operator sees the failed rule too.
        return goAway("peer_refused", (err as Error).message);
      } finally {
        gate.release();
      }
      if (p.done || socket.destroyed) return;
      p.done = true;
      clearTimeout(p.deadline);
      pending.delete(remote);
      const peer: PeerInfo = der ? { ...verified, certDer: der } : verified;
      const conn = new Connection(socket, { ...opts.connection, initiator: false, sharedBudget: budget });
      socket.resume();
      conn.ready.then(
        () => opts.onConnection({ conn, peer }),
        () => {},
      );
    })().catch((err: Error) => {
      refuse("internal", `handshake failed: ${err.message}`, remote);
      socket.destroy();
    });
  });
  server.on("tlsClientError", (err, socket) => {
    // Node only reports the failure (a handshake timeout included); closing the socket is up to us.
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const p = pending.get(remote);
    socket.destroy();
    // No address: the socket was already torn down (we refused it at accept, or the peer reset it).
    if (p?.done || socket.remoteAddress === undefined) return;
    if (p) p.done = true;
    if ((err as NodeJS.ErrnoException).code === "ERR_TLS_HANDSHAKE_TIMEOUT") {
      refuse("handshake_timeout", `TLS handshake not completed within ${handshakeMs} ms; closed`, remote);
    } else {
      refuse("tls", `TLS handshake failed: ${err.message}`, remote);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    setIdentity: (identity) =>
      server.setSecureContext({ key: identity.keyPem, cert: identity.certPem, minVersion: "TLSv1.3" }),
    stats: () => ({
      connections: raws.size,
      handshaking: pending.size,
      verifying: gate.running,
      queuedVerifications: gate.queued,
      bufferedBytes: budget.used,
      refused: { ...refused },
      refusedByRule: { ...refusedByRule },
    }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const p of pending.values()) clearTimeout(p.deadline);
        for (const s of raws) s.destroy();
        reporter.flushAll();
        server.close(() => resolve());
      }),
  };
}

/**
 * Listener side of the proof of work: sends a Challenge, waits for the Solution frame and checks it.
 * Returns undefined when it is valid, or why not. Leaves the socket paused with any later bytes unshifted.
 */
function askProofOfWork(socket: tls.TLSSocket, bits: number): Promise<string | undefined> {
  const challenge = Buffer.allocUnsafe(1 + CHALLENGE_BYTES);
  challenge[0] = bits;
  randomFillSync(challenge, 1);
  socket.write(encodeFrame(FrameType.Challenge, 0, challenge));
  let got: Buffer = Buffer.alloc(0);
  return new Promise((resolve) => {
    const finish = (why: string | undefined) => {
      socket.off("data", onData);
      socket.off("close", onClose);
      socket.pause();
      resolve(why);
    };
    const onClose = () => finish("connection closed");
    const onData = (data: Buffer) => {
      got = got.length === 0 ? data : Buffer.concat([got, data]);
      if (got.length >= FRAME_HEADER_SIZE && got[4] !== FrameType.Solution) {
        return finish(`expected a Solution frame to the proof-of-work challenge, got ${frameTypeName(got[4]!)} (a dialer older than this listener?)`);
      }
      let first;
      try {
        first = readFirstFrame(got, SOLUTION_MAX_SIZE);
      } catch (err) {
        return finish((err as Error).message);
      }
      if (!first) return;
      if (!checkProofOfWork(challenge, first.frame.payload, bits)) return finish(`the nonce does not give ${bits} leading zero bits`);
      finish(undefined);
      // Whatever followed the solution (the dialer's Hello) goes back to the socket, for the Connection.
      if (first.rest.length) socket.unshift(first.rest);
    };
    socket.on("data", onData);
    socket.once("close", onClose);
  });
}

export interface DialOptions {
  host: string;
  port: number;
  /** Our certificate, presented when the server asks (mutual TLS). */
  identity?: TlsIdentity;
  verifyPeer: PeerVerifier;
  connection: ConnOpts;
  timeoutMs?: number;
}

export class DialError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DialError";
  }
}

export async function dial(opts: DialOptions): Promise<VerifiedConnection> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const where = `${opts.host}:${opts.port}`;
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({
      host: opts.host,
      port: opts.port,
      key: opts.identity?.keyPem,
      cert: opts.identity?.certPem,
      minVersion: "TLSv1.3",
      rejectUnauthorized: false,
      servername: opts.host.match(/^[\d.:]+$/) ? undefined : opts.host,
    });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new DialError(`could not reach ${where} within ${timeoutMs} ms`));
    }, timeoutMs);
    s.once("secureConnect", () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint = err.code === "ECONNREFUSED" ? " (nothing listens there: is the node running and the port right?)" : "";
      reject(new DialError(`could not connect to ${where}: ${err.message}${hint}`));
    });
  });
  socket.setNoDelay(true);
  let peer: PeerInfo;
  try {
    const der = socket.getPeerX509Certificate()?.raw;
    peer = await opts.verifyPeer(der);
    if (der) peer = { ...peer, certDer: der };
  } catch (err) {
    socket.destroy();
    throw new DialError(`refused ${where}: ${(err as Error).message}`);
  }
  const deadline = Date.now() + timeoutMs;
  try {
    await answerProofOfWork(socket, where, deadline);
  } catch (err) {
    socket.destroy();
    throw err instanceof DialError ? err : new DialError(`handshake with ${where} failed: ${(err as Error).message}`);
  }
  const conn = new Connection(socket, { ...opts.connection, initiator: true });
  socket.resume();
  const timer = setTimeout(
    () => conn.destroy(new Error(`no protocol Hello from ${where} within ${timeoutMs} ms`)),
    Math.max(0, deadline - Date.now()),
  );
  try {
    await conn.ready;
  } catch (err) {
    throw new DialError(`protocol handshake with ${where} failed: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  return { conn, peer };
}

/**
 * Dialer side of the proof of work. Waits for the listener's first frame: a Challenge is solved and answered;
 * anything else (a listener without proof of work sends its Hello, or a GoAway) is handed back to the socket
 * for the Connection. Leaves the socket paused.
 */
function answerProofOfWork(socket: tls.TLSSocket, where: string, deadline: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let got: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => done(new DialError(`no handshake from ${where} within the dial timeout`)), Math.max(0, deadline - Date.now()));
    const done = (err?: Error, rest?: Buffer) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      socket.pause();
      if (rest?.length) socket.unshift(rest);
      if (err) reject(err);
      else resolve();
    };
    const onClose = () => done(new DialError(`${where} closed the connection during the handshake`));
    const onData = (data: Buffer) => {
      got = got.length === 0 ? data : Buffer.concat([got, data]);
      if (got.length < FRAME_HEADER_SIZE) return;
      if (got[4] !== FrameType.Challenge) return done(undefined, got); // no proof of work asked
      let first;
      try {
        first = readFirstFrame(got, CHALLENGE_MAX_SIZE);
      } catch (err) {
        return done(new DialError(`${where} sent a bad proof-of-work challenge: ${(err as Error).message}`));
      }
      if (!first) return;
      const challenge = Buffer.from(first.frame.payload);
      const rest = first.rest;
      const bits = challenge[0]!;
      socket.off("data", onData);
      socket.pause();
      if (bits > MAX_POW_BITS) {
        return done(new DialError(`${where} asks for a proof of work of ${bits} bits; this node solves at most ${MAX_POW_BITS}`));
      }
      solveProofOfWork(challenge, bits).then(
        (nonce) => {
          if (socket.destroyed) return done(new DialError(`${where} closed the connection during the handshake`));
          socket.write(encodeFrame(FrameType.Solution, 0, nonce));
          done(undefined, rest);
        },
        (err: Error) => done(err),
      );
    };
    socket.on("data", onData);
    socket.once("close", onClose);
  });
}

/** The rule a verifier's refusal names (duck-typed: the transport does not depend on the attestation code). */
function ruleOf(err: unknown): string {
  const e = err as { rule?: unknown; name?: unknown } | undefined;
  if (typeof e?.rule === "string" && /^[\w.-]{1,64}$/.test(e.rule)) return e.rule;
  return e?.name === "EvidenceFormatError" ? "evidence.format" : "other";
}
