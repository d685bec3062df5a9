// Structured logs (pino): one JSON object per line when stderr is not a terminal (or COCOON_LOG_FORMAT=json), for
// log collectors; a readable line (time, role, message, request id) on a terminal or with COCOON_LOG_FORMAT=pretty.
// COCOON_LOG=debug|info|warn|error|quiet sets the detail. A request's logs carry its id in `requestId`, the same id
// in every role (client, proxy, worker) and in the app's `x-request-id` response header.
import { pino, type Logger as PinoLogger, type DestinationStream } from "pino";

export type Level = "debug" | "info" | "warn" | "error";
/** Structured fields of one log line (requestId, workerId, …). */
export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger whose lines all carry these fields (e.g. one request's id). */
  child?(fields: LogFields): Logger;
}

/** `log` with `fields` on every line; a logger without child() (a test's) is returned as it is. */
export function withFields(log: Logger, fields: LogFields): Logger {
  return log.child ? log.child(fields) : log;
}

function level(): string {
  const env = (process.env.COCOON_LOG ?? "info").toLowerCase();
  if (env === "quiet" || env === "silent") return "silent";
  return ["debug", "info", "warn", "error"].includes(env) ? env : "info";
}

/** json when asked, or when stderr is not a terminal (a pipe, a file, a collector); pretty otherwise. */
export function logFormat(): "json" | "pretty" {
  const env = (process.env.COCOON_LOG_FORMAT ?? "").toLowerCase();
  if (env === "json" || env === "pretty") return env;
  return process.stderr.isTTY ? "pretty" : "json";
}

/**
 * The readable line, as before pino: `12:03:04.567 [proxy] WARN message (request chatcmpl-…) key=value`. Formatted
 * here from pino's own JSON line (synchronously, one write per line) instead of through a transport thread.
 */
export function prettyLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.replace(/\n$/, "");
  }
  const { level: lvl, time, name, msg, requestId, ...rest } = o;
  const clock = typeof time === "string" ? time.slice(11, 23) : new Date().toISOString().slice(11, 23);
  const tag = lvl === "info" ? "" : ` ${String(lvl).toUpperCase()}`;
  const extra = Object.entries(rest).map(([k, v]) => ` ${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join("");
  return `${clock} [${String(name ?? "")}]${tag} ${String(msg ?? "")}${requestId ? ` (request ${String(requestId)})` : ""}${extra}`;
}

const roots = new Map<string, PinoLogger>();
function rootLogger(sink?: (line: string) => void): PinoLogger {
  const lvl = level();
  const format = logFormat();
  const options = { level: lvl, base: undefined, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label: string) => ({ level: label }) } };
  if (sink) {
    const dest: DestinationStream = { write: (s: string) => sink(format === "pretty" ? prettyLine(s) : s.replace(/\n$/, "")) };
    return pino(options, dest);
  }
  const key = `${lvl}|${format}`;
  let root = roots.get(key);
  if (!root) {
    const fd2 = pino.destination({ fd: 2, sync: true });
    root = pino(options, format === "pretty" ? { write: (s: string) => fd2.write(prettyLine(s) + "\n") } : fd2);
    roots.set(key, root);
  }
  return root;
}

function wrap(p: PinoLogger): Logger {
  const at = (lvl: Level) => (msg: string, fields?: LogFields) => (fields ? p[lvl](fields, msg) : p[lvl](msg));
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), child: (fields) => wrap(p.child(fields)) };
}

/** A logger for one node or component; `sink` takes each finished line instead of stderr (tests). */
export function createLogger(name: string, sink?: (line: string) => void): Logger {
  return wrap(rootLogger(sink).child({ name }));
}

/** A logger that drops everything, for tests and embedded use. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/**
 * Reports events of one kind at most once per interval: the first at once, the rest summed into one line with
 * their count when the interval ends. For events a stranger can trigger at line rate (refused handshakes), so that
 * they cannot flood the log. Keys should be a small fixed set (kinds of event), not addresses.
 */
export class RateLimitedReporter {
  private readonly kinds = new Map<string, { last: number; suppressed: number; lastMessage: string; lastRemote: string; timer?: NodeJS.Timeout }>();

  /** emit(message, remote, count): count is how many events the line stands for (1, or 1 + those suppressed). */
  constructor(
    private readonly intervalMs: number,
    private readonly emit: (message: string, remote: string, count: number) => void,
  ) {}

  report(kind: string, message: string, remote: string): void {
    const now = Date.now();
    let k = this.kinds.get(kind);
    if (!k) {
      k = { last: -Infinity, suppressed: 0, lastMessage: "", lastRemote: "" };
      this.kinds.set(kind, k);
    }
    if (now - k.last >= this.intervalMs && k.suppressed === 0) {
      k.last = now;
      this.emit(message, remote, 1);
      return;
    }
    k.suppressed++;
    k.lastMessage = message;
    k.lastRemote = remote;
    if (!k.timer) {
      k.timer = setTimeout(() => this.flush(kind), Math.max(0, k.last + this.intervalMs - now));
      k.timer.unref();
    }
  }

  /** Emits the pending summaries now (e.g. on shutdown). */
  flushAll(): void {
    for (const kind of this.kinds.keys()) this.flush(kind);
  }

  private flush(kind: string): void {
    const k = this.kinds.get(kind);
    if (!k) return;
    clearTimeout(k.timer);
    k.timer = undefined;
    if (k.suppressed === 0) return;
    const n = k.suppressed;
    k.suppressed = 0;
    k.last = Date.now();
    const secs = Math.round(this.intervalMs / 1000);
    this.emit(`${k.lastMessage} (${n} like it in the last ${secs} s; showing the latest)`, k.lastRemote, n);
  }
}

/** A warn-only logger that passes at most one line per kind per interval, with counts of those it held back. */
export function rateLimitedWarn(log: Logger, intervalMs = 10_000): (kind: string, message: string) => void {
  const r = new RateLimitedReporter(intervalMs, (message) => log.warn(message));
  return (kind, message) => r.report(kind, message, "");
}
