// A connection that is kept up: dials, verifies the peer, hands the connection to the owner, and redials
// with exponential backoff when it drops. Workers keep one per proxy; clients keep one to their proxy.
import type { Connection } from "./connection.js";
import { dial, type PeerInfo, type PeerVerifier, type TlsIdentity } from "./transport.js";
import type { Logger } from "../util/log.js";
import { VERSION } from "../version.js";

export const RECONNECT_MIN_MS = 250;
export const RECONNECT_MAX_MS = 10_000;

export interface PeerLinkOptions {
  host: string;
  port: number;
  role: string;
  nodeId: string;
  /** Our certificate, or a function giving the current one (it changes when the identity rotates). */
  identity?: TlsIdentity | (() => TlsIdentity);
  verifyPeer: PeerVerifier;
  log: Logger;
  /** Runs on each (re)connection before the link counts as connected (attach listeners, announce, register). */
  onConnected?: (conn: Connection, peer: PeerInfo) => Promise<void> | void;
  /** Most streams the peer may have open on the connection at once (default DEFAULT_MAX_STREAMS, 1,024). */
  maxStreams?: number;
}

export class PeerLink {
  conn: Connection | undefined;
  peer: PeerInfo | undefined;
  lastError: string | undefined;
  connectedSince: number | undefined;
  protected stopped = false;
  private waiters: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(protected readonly linkOpts: PeerLinkOptions) {}

  get address(): string {
    return `${this.linkOpts.host}:${this.linkOpts.port}`;
  }

  get connected(): boolean {
    return !!this.conn && !this.conn.closed;
  }

  start(): void {
    void this.loop();
  }

  /** Resolves once connected, or after ms; check `connected` afterwards. */
  async waitConnected(ms: number): Promise<void> {
    if (this.connected) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private async loop(): Promise<void> {
    const o = this.linkOpts;
    let delay = RECONNECT_MIN_MS;
    let warned = false;
    while (!this.stopped) {
      try {
        const { conn, peer } = await dial({
          host: o.host,
          port: o.port,
          identity: typeof o.identity === "function" ? o.identity() : o.identity,
          verifyPeer: o.verifyPeer,
          connection: { role: o.role, nodeId: o.nodeId, software: `cocoon-ts/${VERSION}`, ...(o.maxStreams ? { maxStreams: o.maxStreams } : {}) },
        });
        if (this.stopped) return conn.close("shutdown", `${o.role} stopping`);
        this.peer = peer;
        this.lastError = undefined;
        delay = RECONNECT_MIN_MS;
        warned = false;
        o.log.info(`connected to ${this.address} (${peer.description})`);
        this.conn = conn;
        this.connectedSince = Date.now();
        try {
          await o.onConnected?.(conn, peer);
        } catch (err) {
          o.log.warn(`after connecting to ${this.address}: ${(err as Error).message}`);
        }
        for (const w of this.waiters.splice(0)) w();
        const reason = conn.closed ? conn.closeReason : await new Promise<Error | undefined>((r) => conn.once("close", r));
        this.conn = undefined;
        // Kept for the status page: why the peer dropped us (e.g. a proxy refusing this worker's announcement).
        if (reason) this.lastError = `lost the connection: ${reason.message}`;
        if (!this.stopped) o.log.warn(`lost ${this.address}: ${reason?.message ?? "closed"}; reconnecting`);
      } catch (err) {
        this.lastError = (err as Error).message;
        if (!warned) o.log.warn(`${this.lastError}; will keep retrying`);
        warned = true;
      }
      if (this.stopped) return;
      await new Promise<void>((r) => (this.timer = setTimeout(r, delay)));
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    }
  }

  /** Drops the current connection so that the link dials again at once (e.g. to present a renewed certificate). */
  reconnect(reason: string): void {
    this.conn?.close("reconnecting", reason);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.conn?.close("shutdown", `${this.linkOpts.role} stopping`);
  }
}
