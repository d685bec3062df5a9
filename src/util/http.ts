// Small HTTP helpers shared by the roles' status pages and the client API.
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface HttpServerHandle {
  server: http.Server;
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startHttpServer(host: string, port: number, handler: http.RequestListener): Promise<HttpServerHandle> {
  const server = http.createServer(handler);
  server.keepAliveTimeout = 65_000;
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

/** A status page server: GET /status returns status(); everything else 404. */
export function startStatusServer(host: string, port: number, status: () => unknown): Promise<HttpServerHandle> {
  return startHttpServer(host, port, (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && (path === "/status" || path === "/")) return sendJson(res, 200, status());
    sendJson(res, 404, { error: { message: `no such page: ${path}; try GET /status`, type: "not_found" } });
  });
}

export function parseHostPort(value: string, defaultPort: number): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?(?::(\d+))?$/.exec(value.trim());
  const host = m?.[1] || "127.0.0.1";
  const port = m?.[2] ? Number(m[2]) : defaultPort;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid port in "${value}"; use HOST:PORT`);
  return { host, port };
}
