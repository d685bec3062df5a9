// Everything a node shows about itself on its status port: the JSON status (with windowed rates), Prometheus
// metrics, the live dashboard (a page and its event stream) and the operator controls. One per node instance.
import type http from "node:http";
import { AdminControls } from "./admin.js";
import { History } from "./history.js";
import { NodeMetrics, type NodeRole, type RequestObservation, type StatusObject } from "./metrics.js";
import { dashboardHtml } from "../dashboard/page.js";
import type { Stream } from "../protocol/connection.js";
import type { ErrorCode } from "../protocol/errors.js";
import { silentLogger, type Logger } from "../util/log.js";

/** Requests kept for the dashboard's recent list. */
export const RECENT_REQUESTS = 20;
/** Refusals before any work (the request may succeed elsewhere or later), as opposed to failures. */
const REJECTIONS: ReadonlySet<string> = new Set<ErrorCode>(["overloaded", "bad_request", "model_not_found", "replayed", "stale_keys", "voucher_missing", "insufficient_funds", "too_large", "no_worker"]);

/** Most dashboards one node feeds at once; more get 503 (each holds a connection open). */
export const MAX_EVENT_STREAMS = 32;

export class NodeObservability {
  readonly metrics: NodeMetrics;
  readonly admin = new AdminControls();
  private history?: History;
  private status: () => StatusObject = () => ({});
  private readonly streams = new Set<http.ServerResponse>();

  /** The last requests, newest first (the client's dashboard lists them with cost, worker and evidence). */
  private readonly recent: RequestObservation[] = [];

  constructor(
    readonly role: NodeRole,
    private readonly log: Logger = silentLogger,
  ) {
    this.metrics = new NodeMetrics(role);
  }

  /** Starts sampling the node's counters (rates, charts). Idempotent. */
  attach(status: () => StatusObject): void {
    if (this.history) return;
    this.status = status;
    this.metrics.attachStatus(status);
    this.history = new History(this.role, this.metrics, status);
    this.history.start();
  }

  /** One finished request (see NodeMetrics.observeRequest). */
  request(o: RequestObservation): void {
    this.metrics.observeRequest(o);
    this.recent.unshift(o);
    if (this.recent.length > RECENT_REQUESTS) this.recent.length = RECENT_REQUESTS;
    const what = o.outcome === "completed" ? `${o.promptTokens ?? 0}+${o.completionTokens ?? 0} tokens${o.totalMs !== undefined ? ` in ${o.totalMs} ms` : ""}` : (o.code ?? "");
    this.log.debug(`request ${o.outcome}: ${o.model} ${what}${o.worker ? ` on ${o.worker}` : ""}${o.costNano ? `, ${o.costNano} nanoTON` : ""}`, { ...(o.requestId ? { requestId: o.requestId } : {}) });
  }

  /**
   * An inference stream this node answered has ended: one that failed or was refused (the stream carries its reset
   * code) is counted here; a completed one was counted by request() where the role had its usage.
   */
  streamEnded(stream: Stream): void {
    const err = stream.error;
    const head = stream.head;
    if (!err || head?.op !== "inference") return;
    const code = err.code;
    const outcome = code === "cancelled" ? "cancelled" : REJECTIONS.has(code) ? "rejected" : "failed";
    this.request({ model: typeof head.model === "string" ? head.model : "unknown", outcome, code, ...(typeof head.requestId === "string" ? { requestId: head.requestId } : {}) });
  }

  /** The node's status with its windowed rates and operator state. */
  statusJson(base: StatusObject = this.status()): StatusObject {
    // Recent requests only on the client (the app developer's own page): a proxy's or worker's status port may be
    // public, and per-request ids, timings and costs are no one else's business.
    return { ...base, rates: this.history?.rates() ?? {}, ...(this.role === "client" ? { recentRequests: this.recent } : {}), admin: this.admin.summary() };
  }

  /**
   * Serves GET / (dashboard), /status, /metrics, /events (the dashboard's live feed, server-sent events) and
   * POST /admin/<action>; false for any other request (the caller answers it).
   */
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const path = (req.url ?? "/").split("?")[0]!.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    if (method === "GET" && path === "/status") {
      send(res, 200, "application/json", JSON.stringify(this.statusJson(), null, 2));
      return true;
    }
    if (method === "GET" && (path === "/" || path === "/dashboard")) {
      send(res, 200, "text/html; charset=utf-8", dashboardHtml(this.role), { "content-security-policy": CSP });
      return true;
    }
    if (method === "GET" && path === "/favicon.ico") {
      res.writeHead(204, { "cache-control": "max-age=86400" }).end();
      return true;
    }
    if (method === "GET" && path === "/metrics") {
      this.metrics.text().then(
        (text) => send(res, 200, this.metrics.contentType, text),
        (err: Error) => send(res, 500, "text/plain", `metrics failed: ${err.message}\n`),
      );
      return true;
    }
    if (method === "GET" && path === "/events") {
      this.events(res);
      return true;
    }
    if (path.startsWith("/admin/")) {
      if (method !== "POST") {
        send(res, 405, "application/json", JSON.stringify({ ok: false, message: `use POST ${path} with 'Authorization: Bearer <token>'` }), { allow: "POST" });
        return true;
      }
      req.resume(); // the body is not used: the action is in the path
      this.admin.run(decodeURIComponent(path.slice("/admin/".length)), req.headers.authorization).then(
        (r) => send(res, r.status, "application/json", JSON.stringify(r.body)),
        (err: Error) => send(res, 500, "application/json", JSON.stringify({ ok: false, message: err.message })),
      );
      return true;
    }
    return false;
  }

  /** The live feed: the last hour of samples at once, then each new sample with the full status. */
  private events(res: http.ServerResponse): void {
    if (!this.history) return void send(res, 503, "text/plain", "this node is still starting\n");
    if (this.streams.size >= MAX_EVENT_STREAMS) return void send(res, 503, "text/plain", `at most ${MAX_EVENT_STREAMS} dashboards at once; close one\n`, { "retry-after": "10" });
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    const push = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    push("history", { samples: this.history.series(), status: this.statusJson() });
    const off = this.history.onSample((sample, status) => push("sample", { sample, status: this.statusJson(status) }));
    this.streams.add(res);
    res.on("close", () => {
      off();
      this.streams.delete(res);
    });
  }

  close(): void {
    this.history?.stop();
    for (const s of this.streams) s.end();
    this.streams.clear();
  }
}

/** Pages are self-contained: inline script and style, nothing from any other origin. */
const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

function send(res: http.ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body), "cache-control": "no-store", ...headers });
  res.end(body);
}
