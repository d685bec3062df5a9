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
