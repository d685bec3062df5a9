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
