// The client's connection to its proxy: dials, keeps it up with backoff, and opens request streams.
import type { Connection, Stream } from "../protocol/connection.js";
import { dial, type PeerInfo, type PeerVerifier, type TlsIdentity } from "../protocol/transport.js";
import { modelsReplySchema, OP_MODELS, parseMessage, type ModelsReply } from "../protocol/messages.js";
import { ApiError } from "../protocol/openai.js";
import type { Logger } from "../util/log.js";
import { VERSION } from "../version.js";

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5_000;
/** How long /v1/models answers from cache before asking the proxy again. */
const MODELS_CACHE_MS = 1_000;

export interface ProxyLinkOptions {
  host: string;
  port: number;
  clientId: string;
  identity?: TlsIdentity;
  verifyProxy: PeerVerifier;
  log: Logger;
  /** Runs after each (re)connection, e.g. to register a payment channel. */
  onConnected?: () => Promise<void>;
}

export class ProxyLink {
  conn: Connection | undefined;
  peer: PeerInfo | undefined;
  lastError: string | undefined;
  connectedSince: number | undefined;
  private stopped = false;
  private waiters: Array<() => void> = [];
  private modelsCache: { at: number; value: ModelsReply } | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ProxyLinkOptions) {}

  get address(): string {
    return `${this.opts.host}:${this.opts.port}`;
  }

  get connected(): boolean {
    return !!this.conn && !this.conn.closed;
  }

  start(): void {
    void this.loop();
  }

  private async loop(): Promise<void> {
    let delay = RECONNECT_MIN_MS;
    let warned = false;
    while (!this.stopped) {
      try {
        const { conn, peer } = await dial({
          host: this.opts.host,
          port: this.opts.port,
          identity: this.opts.identity,
          verifyPeer: this.opts.verifyProxy,
          connection: { role: "client", nodeId: this.opts.clientId, software: `cocoon-ts/${VERSION}` },
        });
        if (this.stopped) return conn.close("shutdown", "client stopping");
        this.conn = conn;
        this.peer = peer;
        this.lastError = undefined;
        this.connectedSince = Date.now();
        this.modelsCache = undefined;
        delay = RECONNECT_MIN_MS;
        warned = false;
        this.opts.log.info(`connected to proxy ${this.address} (${peer.description})`);
        if (this.opts.onConnected) {
          await this.opts.onConnected().catch((err: Error) => this.opts.log.warn(`after connecting to the proxy: ${err.message}`));
        }
        for (const w of this.waiters.splice(0)) w();
        const reason = await new Promise<Error | undefined>((r) => conn.once("close", r));
        this.conn = undefined;
        if (!this.stopped) this.opts.log.warn(`lost proxy ${this.address}: ${reason?.message ?? "closed"}; reconnecting`);
      } catch (err) {
        this.lastError = (err as Error).message;
        if (!warned) this.opts.log.warn(`${this.lastError}; will keep retrying`);
        warned = true;
      }
      if (this.stopped) return;
      await new Promise<void>((r) => (this.timer = setTimeout(r, delay)));
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    }
  }

  /** Waits up to ms for a connection; throws a 503 ApiError explaining why there is none. */
  async connection(ms = 3_000): Promise<Connection> {
    if (this.connected) return this.conn!;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
    if (this.connected) return this.conn!;
    throw new ApiError(503, `Not connected to the proxy at ${this.address}${this.lastError ? `: ${this.lastError}` : ""}. Check that the proxy runs and --proxy points at its client port.`, "service_unavailable", "proxy_unavailable");
  }

  async open(head: Record<string, unknown>): Promise<Stream> {
    return (await this.connection()).open(head);
  }

  /** One JSON request/response on a fresh stream (e.g. `payments`). */
  async call(head: Record<string, unknown>, body?: Record<string, unknown>): Promise<Record<string, unknown>> {
    const conn = this.conn && !this.conn.closed ? this.conn : await this.connection();
    const stream = conn.open(head);
    if (body) await stream.write(Buffer.from(JSON.stringify(body)));
    stream.end();
    const reply = await stream.replyHead();
    await stream.readAll(0);
    return reply;
  }

  async models(): Promise<ModelsReply> {
    const now = Date.now();
    if (this.modelsCache && now - this.modelsCache.at < MODELS_CACHE_MS) return this.modelsCache.value;
    const stream = await this.open({ op: OP_MODELS });
    try {
      const head = await stream.replyHead();
      await stream.readAll(0);
      const value = parseMessage(modelsReplySchema, head, "models reply");
      this.modelsCache = { at: now, value };
      return value;
    } catch (err) {
      throw new ApiError(502, `The proxy did not list its models: ${(err as Error).message}`, "api_error", "proxy_error");
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.conn?.close("shutdown", "client stopping");
  }
}
