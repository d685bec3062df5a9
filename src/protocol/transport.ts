// TLS 1.3 transport for protocol connections. Certificates are checked by the application's
// PeerVerifier hook (attestation lives there), never by a CA store: nodes are self-signed by design.
import tls from "node:tls";
import type { AddressInfo } from "node:net";
import { Connection, type ConnectionOptions } from "./connection.js";
import { encodeFrame, FrameType, jsonPayload } from "./frame.js";

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
  [key: string]: unknown;
}

/** Decides whether to talk to a peer, given its certificate (DER), or throws with a human reason. */
export type PeerVerifier = (peerCertDer: Buffer | undefined) => Promise<PeerInfo>;

/** Accepts any peer; only for tests and roles that verify nothing (e.g. a proxy's view of clients). */
export const acceptAnyPeer: PeerVerifier = async () => ({ description: "unverified peer", insecure: true });

export interface VerifiedConnection {
  conn: Connection;
  peer: PeerInfo;
}

type ConnOpts = Omit<ConnectionOptions, "initiator">;

export interface ListenOptions {
  host: string;
  port: number;
  identity: TlsIdentity;
  /** Ask the dialer for its certificate (mutual TLS). */
  requestClientCert: boolean;
  verifyPeer: PeerVerifier;
  connection: ConnOpts;
  onConnection: (c: VerifiedConnection) => void;
  onRejected?: (reason: string, remote: string) => void;
}

export interface Listener {
  port: number;
  /** Serves a new certificate to handshakes from now on (identity rotation); open connections are unaffected. */
  setIdentity(identity: TlsIdentity): void;
  close(): Promise<void>;
}

export async function listen(opts: ListenOptions): Promise<Listener> {
  const server = tls.createServer({
    key: opts.identity.keyPem,
    cert: opts.identity.certPem,
    minVersion: "TLSv1.3",
    requestCert: opts.requestClientCert,
    rejectUnauthorized: false,
  });
  const sockets = new Set<tls.TLSSocket>();
  server.on("secureConnection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.setNoDelay(true);
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.on("error", () => {});
    const der = opts.requestClientCert ? socket.getPeerX509Certificate()?.raw : undefined;
    opts
      .verifyPeer(der)
      .then((verified) => {
        if (socket.destroyed) return;
        const peer: PeerInfo = der ? { ...verified, certDer: der } : verified;
        const conn = new Connection(socket, { ...opts.connection, initiator: false });
        conn.ready.then(
          () => opts.onConnection({ conn, peer }),
          () => {},
        );
      })
      .catch((err: Error) => {
        opts.onRejected?.(err.message, remote);
        // Tell the peer why before closing, so its operator sees the failed rule too.
        socket.end(encodeFrame(FrameType.GoAway, 0, jsonPayload({ code: "peer_refused", message: err.message })));
        setTimeout(() => socket.destroy(), 1_000).unref();
      });
  });
  server.on("tlsClientError", (err, socket) => {
    opts.onRejected?.(`TLS handshake failed: ${err.message}`, `${socket.remoteAddress}:${socket.remotePort}`);
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
    setIdentity: (identity) => server.setSecureContext({ key: identity.keyPem, cert: identity.certPem, minVersion: "TLSv1.3" }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
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
  const conn = new Connection(socket, { ...opts.connection, initiator: true });
  const timer = setTimeout(() => conn.destroy(new Error(`no protocol Hello from ${where} within ${timeoutMs} ms`)), timeoutMs);
  try {
    await conn.ready;
  } catch (err) {
    throw new DialError(`protocol handshake with ${where} failed: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  return { conn, peer };
}
