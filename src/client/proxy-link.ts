// The client's connection to its proxy: dials, keeps it up with backoff, and opens request streams.
import type { Connection, Stream } from "../protocol/connection.js";
import type { PeerVerifier, TlsIdentity } from "../protocol/transport.js";
import { PeerLink } from "../protocol/peer-link.js";
import { sessionBinding } from "../protocol/session-binding.js";
import { modelsReplySchema, OP_MODELS, parseMessage, type ModelsReply } from "../protocol/messages.js";
import { ApiError } from "../protocol/openai.js";
import type { Logger } from "../util/log.js";

/** How long /v1/models answers from cache before asking the proxy again. */
const MODELS_CACHE_MS = 1_000;

export interface ProxyLinkOptions {
  host: string;
  port: number;
  clientId: string;
  identity?: TlsIdentity;
  verifyProxy: PeerVerifier;
  log: Logger;
  /** Runs after each (re)connection, e.g. to register a payment channel bound to this connection's session. */
  onConnected?: (session: string) => Promise<void>;
}

/** The client's link to its proxy, with the request helpers the API needs. */
export class ProxyLink extends PeerLink {
  private modelsCache: { at: number; value: ModelsReply } | undefined;

  constructor(opts: ProxyLinkOptions) {
    super({
      host: opts.host,
      port: opts.port,
      role: "client",
      nodeId: opts.clientId,
      identity: opts.identity,
      verifyPeer: opts.verifyProxy,
      log: opts.log,
      onConnected: async (conn) => {
        this.modelsCache = undefined;
        await opts.onConnected?.(sessionBinding(conn));
      },
    });
  }

  /** Waits up to ms for a connection; throws a 503 ApiError explaining why there is none. */
  async connection(ms = 3_000): Promise<Connection> {
    await this.waitConnected(ms);
    if (this.connected) return this.conn!;
    throw new ApiError(503, `Not connected to the proxy at ${this.address}${this.lastError ? `: ${this.lastError}` : ""}. Check that the proxy runs and --proxy points at its client port.`, "service_unavailable", "proxy_unavailable");
  }

  async open(head: Record<string, unknown>): Promise<Stream> {
    return (await this.connection()).open(head);
  }

  /**
   * One request/response exchange on a fresh stream (`models`, `workers`, `payments`): sends the head and an
   * optional JSON body, ends our side (so both ends release the stream), returns the reply head.
   */
  async call(head: Record<string, unknown>, body?: Record<string, unknown>): Promise<Record<string, unknown>> {
    const stream = await this.open(head);
    if (body) await stream.write(Buffer.from(JSON.stringify(body)));
    stream.end();
    const reply = await stream.replyHead();
    await stream.readAll(0);
    return reply;
  }

  /** The refresh in flight: requests that find the cache expired share it instead of each asking the proxy. */
  private modelsRefresh: Promise<ModelsReply> | undefined;

  async models(): Promise<ModelsReply> {
    if (this.modelsCache && Date.now() - this.modelsCache.at < MODELS_CACHE_MS) return this.modelsCache.value;
    this.modelsRefresh ??= this.fetchModels().finally(() => (this.modelsRefresh = undefined));
    return this.modelsRefresh;
  }

  private async fetchModels(): Promise<ModelsReply> {
    const now = Date.now();
    try {
      const head = await this.call({ op: OP_MODELS });
      const value = parseMessage(modelsReplySchema, head, "models reply");
      this.modelsCache = { at: now, value };
      return value;
    } catch (err) {
      if (err instanceof ApiError) throw err;
      throw new ApiError(502, `The proxy did not list its models: ${(err as Error).message}`, "api_error", "proxy_error");
    }
  }
}
