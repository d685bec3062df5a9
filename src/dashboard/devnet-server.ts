// The devnet page's server (`cocoon devnet` starts it): the page, each node's status relayed under /api/status/NAME
// (one origin for the page's script), and /api/chat relayed to the client's API with its streamed answer and the
// headers that say who served it.
import type http from "node:http";
import { sendJson, startHttpServer, type HttpServerHandle } from "../util/http.js";
import { devnetHtml } from "./devnet-page.js";

export interface DevnetNode {
  name: string;
  role: "client" | "proxy" | "worker";
  /** The node's status port base URL (client: its API port), without a path. */
  base: string;
}

const RELAYED_HEADERS = ["content-type", "x-request-id", "x-cocoon-worker", "x-cocoon-attestation", "x-cocoon-sealed", "retry-after"];
const MAX_CHAT_BODY = 64 * 1024;

export async function startDevnetPage(o: { host: string; port: number; api: string; models: string[]; nodes: DevnetNode[] }): Promise<HttpServerHandle> {
  const html = devnetHtml();
  const byName = new Map(o.nodes.map((n) => [n.name, n]));
  return startHttpServer(o.host, o.port, (req, res) => {
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) sendJson(res, 502, { error: { message: err.message, type: "devnet_page" } });
      else res.destroy();
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0]!;
    if (req.method === "GET" && path === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-security-policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'" });
      res.end(html);
      return;
    }
    if (req.method === "GET" && path === "/favicon.ico") {
      res.writeHead(204, { "cache-control": "max-age=86400" }).end();
      return;
    }
    if (req.method === "GET" && path === "/api/nodes") {
      return sendJson(res, 200, { api: o.api, models: o.models, nodes: o.nodes.map((n) => ({ name: n.name, role: n.role, dashboard: `${n.base}/`, status: `${n.base}/status` })) });
    }
    if (req.method === "GET" && path.startsWith("/api/status/")) {
      const node = byName.get(decodeURIComponent(path.slice("/api/status/".length)));
      if (!node) return sendJson(res, 404, { error: { message: `no node named ${path.slice(12)} in this devnet`, type: "not_found" } });
      const r = await fetch(`${node.base}/status`, { signal: AbortSignal.timeout(3_000) });
      const text = await r.text();
      res.writeHead(r.status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(text);
      return;
    }
    if (req.method === "POST" && path === "/api/chat") {
      const parts: Buffer[] = [];
      let size = 0;
      for await (const c of req) {
        size += (c as Buffer).length;
        if (size > MAX_CHAT_BODY) return sendJson(res, 413, { error: { message: `a chat from this page is at most ${MAX_CHAT_BODY} bytes`, type: "invalid_request_error" } });
        parts.push(c as Buffer);
      }
      const abort = new AbortController();
      res.on("close", () => abort.abort());
      const r = await fetch(`${o.api}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: Buffer.concat(parts), signal: abort.signal });
      const headers: Record<string, string> = { "cache-control": "no-store" };
      for (const h of RELAYED_HEADERS) {
        const v = r.headers.get(h);
        if (v) headers[h] = v;
      }
      res.writeHead(r.status, headers);
      if (r.body) for await (const chunk of r.body) res.write(chunk);
      res.end();
      return;
    }
    sendJson(res, 404, { error: { message: `no such page: ${path}; the devnet page is at /`, type: "not_found" } });
  }
}
