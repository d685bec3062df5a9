// Human-readable logs: one line per event, time, role, message. COCOON_LOG=debug shows more; quiet mutes info.
export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

function threshold(): number {
  const env = (process.env.COCOON_LOG ?? "info").toLowerCase();
  if (env === "quiet" || env === "silent") return 100;
  return ORDER[env as Level] ?? ORDER.info;
}

export function createLogger(name: string, sink: (line: string) => void = (l) => process.stderr.write(l + "\n")): Logger {
  const min = threshold();
  const emit = (level: Level, msg: string) => {
    if (ORDER[level] < min) return;
    const time = new Date().toISOString().slice(11, 23);
    const tag = level === "info" ? "" : ` ${level.toUpperCase()}`;
    sink(`${time} [${name}]${tag} ${msg}`);
  };
  return {
    debug: (m) => emit("debug", m),
    info: (m) => emit("info", m),
    warn: (m) => emit("warn", m),
    error: (m) => emit("error", m),
  };
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
