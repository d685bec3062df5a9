// Small HTTP helpers shared by the roles' status pages and the client API.
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { NodeObservability } from "../observability/node.js";

export interface HttpServerHandle {
  server: http.Server;
  port: number;
  url: string;
  close(): Promise<void>;
}

/**
 * Limits that keep idle sockets and slow senders (slowloris) from using up a server's connections and file
 * descriptors. Node closes, with 408, a connection whose request head is not complete within headersTimeoutMs
 * of its first byte or of connecting (so idle and one-byte-a-second sockets go too); the check runs every
 * checkIntervalMs. requestTimeoutMs bounds receiving the whole request (not the response: streams may run long).
 */
export interface HttpLimits {
  /** Default 10 s. */
  headersTimeoutMs?: number;
  /** Default 30 s. */
  requestTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this (default 10 s). */
  keepAliveTimeoutMs?: number;
  /** Most open connections in all (default 2048); more are closed at accept. */
  maxConnections?: number;
  /** Most open connections from one address (default 512); more are closed at accept. */
  maxConnectionsPerAddress?: number;
  /** How often the timeouts are checked (default 1 s; Node's own default is 30 s). */
  checkIntervalMs?: number;
}

export const DEFAULT_HTTP_LIMITS: Required<HttpLimits> = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 10_000,
  maxConnections: 2048,
  maxConnectionsPerAddress: 512,
  checkIntervalMs: 1_000,
};

export async function startHttpServer(host: string, port: number, handler: http.RequestListener, limits: HttpLimits = {}): Promise<HttpServerHandle> {
  const l = { ...DEFAULT_HTTP_LIMITS, ...limits };
  const server = http.createServer(
    {
      headersTimeout: l.headersTimeoutMs,
      requestTimeout: Math.max(l.requestTimeoutMs, l.headersTimeoutMs),
      connectionsCheckingInterval: l.checkIntervalMs,
    },
    handler,
  );
  server.keepAliveTimeout = l.keepAliveTimeoutMs;
  server.maxConnections = l.maxConnections;
  const perAddress = new Map<string, number>();
  server.on("connection", (socket) => {
    const addr = socket.remoteAddress ?? "unknown";
    const n = (perAddress.get(addr) ?? 0) + 1;
    perAddress.set(addr, n);
    socket.once("close", () => {
      const left = (perAddress.get(addr) ?? 1) - 1;
      if (left > 0) perAddress.set(addr, left);
      else perAddress.delete(addr);
    });
    if (n > l.maxConnectionsPerAddress) socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      reject(err.code === "EADDRINUSE" ? new Error(`port ${port} on ${host} is already in use: stop the other process or pick another port with --port`) : err);
    });
    server.listen(port, host, () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    server,
    port: actual,
    url: `http://${shownHost}:${actual}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * A node's status port: GET /status (JSON with windowed rates), /metrics (Prometheus), / (live dashboard), /events
 * (its feed) and POST /admin/<action> (operator controls), all from `obs` (src/observability/node.ts). Without
 * `obs`, only GET /status (and / as its alias).
 */
export async function startStatusServer(host: string, port: number, status: () => unknown, obs?: NodeObservability): Promise<HttpServerHandle> {
  obs?.attach(status as () => Record<string, unknown>);
  const handle = await startHttpServer(host, port, (req, res) => {
    if (obs?.handle(req, res)) return;
    const path = (req.url ?? "/").split("?")[0];
    if (!obs && req.method === "GET" && (path === "/status" || path === "/")) return sendJson(res, 200, status());
    sendJson(res, 404, { error: { message: `no such page: ${path}; try GET /status${obs ? ", /metrics or / (dashboard)" : ""}`, type: "not_found" } });
  });
  if (!obs) return handle;
  return { ...handle, close: () => (obs.close(), handle.close()) };
}

export function parseHostPort(value: string, defaultPort: number): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?(?::(\d+))?$/.exec(value.trim());
  const host = m?.[1] || "127.0.0.1";
  const port = m?.[2] ? Number(m[2]) : defaultPort;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid port in "${value}"; use HOST:PORT`);
  return { host, port };
}

/**
 * Cross-origin access for browser apps. Allowed: the listed origins ("*" for any), and by default only pages served
 * from this machine (localhost, 127.0.0.1, [::1], any port): a web page elsewhere cannot spend this client's money.
 */
export class CorsPolicy {
  private readonly any: boolean;
  private readonly origins: Set<string>;

  constructor(origins: readonly string[] = []) {
    this.any = origins.includes("*");
    this.origins = new Set(origins.filter((o) => o !== "*").map((o) => o.replace(/\/+$/, "").toLowerCase()));
  }

  allows(origin: string): boolean {
    if (this.any) return true;
    const o = origin.toLowerCase();
    if (this.origins.has(o)) return true;
    return /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(o);
  }

  /**
   * Sets the CORS headers on a response when the request's Origin is allowed. Returns false for a cross-origin
   * request from an origin that is not (the browser then blocks the page from reading the answer).
   */
  apply(req: http.IncomingMessage, res: http.ServerResponse, exposed: readonly string[]): boolean {
    const origin = req.headers.origin;
    if (!origin) return true;
    res.setHeader("vary", "Origin");
    if (!this.allows(origin)) return false;
    res.setHeader("access-control-allow-origin", this.any ? "*" : origin);
    res.setHeader("access-control-expose-headers", exposed.join(", "));
    return true;
  }

  /** Answers a CORS preflight (OPTIONS): 204 with what the browser may send, or 403 for an origin not allowed. */
  preflight(req: http.IncomingMessage, res: http.ServerResponse, allow: readonly string[]): void {
    const origin = req.headers.origin;
    if (origin && !this.allows(origin)) {
      sendJson(res, 403, { error: { message: `Cross-origin requests from ${origin} are not allowed by this Cocoon client. Start it with --cors-origin ${origin} to allow them.`, type: "invalid_request_error", param: null, code: "cors_origin_not_allowed" } });
      return;
    }
    res.writeHead(204, {
      allow: allow.join(", "),
      ...(origin
        ? {
            "access-control-allow-origin": this.any ? "*" : origin,
            "access-control-allow-methods": allow.join(", "),
            "access-control-allow-headers": String(req.headers["access-control-request-headers"] ?? "authorization, content-type"),
            "access-control-max-age": "600",
            vary: "Origin",
          }
        : {}),
    });
    res.end();
  }
}

/**
 * Whether a request's Content-Type may carry a JSON body: application/json or a +json type, none at all, or
 * text/plain (what fetch() sends for a string body, and what a browser sends to skip the CORS preflight). Form and
 * multipart encodings (curl -d without -H, an HTML form) are refused: their body is not JSON as sent.
 */
export function isJsonContentType(value: string | undefined): boolean {
  if (!value) return true;
  const type = value.split(";")[0]!.trim().toLowerCase();
  return type === "application/json" || type === "text/plain" || /^application\/[a-z0-9.+-]+\+json$/.test(type);
}

/** Decodes UTF-8, refusing malformed bytes instead of replacing them with U+FFFD (which would change the prompt). */
export function decodeUtf8Strict(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    return undefined;
  }
}
