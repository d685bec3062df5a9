// Process lifecycle shared by every long-running command: tell a parent (devnet) we are ready,
// and stop on signals:
//   SIGTERM   graceful: stop taking new work, let running requests finish (at most the drain timeout), exit 0
//   SIGINT    (Ctrl-C) stop now: running requests are cut off, state is saved, exit 0
//   a second signal while draining stops at once; one while stopping exits at once (130)
//   the devnet parent going away stops at once (its children must not outlive it)

/** Default bound on a graceful (SIGTERM) stop's wait for running requests, in seconds (`--drain-timeout`). */
export const DEFAULT_DRAIN_TIMEOUT_S = 30;
/** How long stopping itself (closing connections, saving state) may take before the process exits anyway. */
export const STOP_GRACE_MS = 5_000;

/** Prints the human line, and sends the machine-readable one to a parent process over IPC if any. */
export function reportReady(info: Record<string, unknown>, line: string): void {
  console.log(line);
  if (process.send) process.send({ type: "ready", ...info });
}

/** What a role offers to the signal handling: a graceful drain, and a stop. */
export interface Stoppable {
  /** Stops taking new work and resolves once running work ended or `timeoutMs` passed. */
  drain?(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export interface ServeOptions {
  /** Longest a SIGTERM waits for running requests, in milliseconds (default DEFAULT_DRAIN_TIMEOUT_S). */
  drainTimeoutMs?: number;
}

/** `--drain-timeout` parsed: a number of seconds (0 allowed: stop without waiting). */
export function parseDrainTimeout(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 24 * 3600) throw new Error(`--drain-timeout is a number of seconds from 0 to 86400, got "${value}"`);
  return n;
}

export async function serveUntilSignal(node: Stoppable | (() => Promise<void>), o: ServeOptions = {}): Promise<void> {
  const role: Stoppable = typeof node === "function" ? { stop: node } : node;
  const drainMs = o.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_S * 1000;
  await new Promise<void>((resolve) => {
    let phase: "serving" | "draining" | "stopping" = "serving";
    const stopNow = () => {
      phase = "stopping";
      setTimeout(() => {
        console.error(`still stopping after ${STOP_GRACE_MS / 1000} s; exiting anyway`);
        process.exit(1);
      }, STOP_GRACE_MS).unref();
      role.stop().then(resolve, (err: Error) => {
        console.error(`error while stopping: ${err.message}`);
        resolve();
      });
    };
    const onSignal = (sig: string) => {
      if (phase === "stopping") {
        console.error(`received ${sig} while stopping: exiting now`);
        process.exit(130);
      }
      if (phase === "draining") {
        console.error(`received ${sig} while draining: stopping now, running requests are cut off`);
        stopNow();
        return;
      }
      if (sig === "SIGTERM" && role.drain && drainMs > 0) {
        phase = "draining";
        console.error(`received SIGTERM: taking no new requests, letting running ones finish (at most ${drainMs / 1000} s; send SIGINT to stop at once)`);
        role.drain(drainMs).then(
          () => phase === "draining" && stopNow(),
          (err: Error) => {
            console.error(`error while draining: ${err.message}; stopping`);
            if (phase === "draining") stopNow();
          },
        );
        return;
      }
      console.error(`received ${sig}, stopping (press Ctrl-C again to force)`);
      stopNow();
    };
    process.on("SIGINT", () => onSignal("SIGINT"));
    process.on("SIGTERM", () => onSignal("SIGTERM"));
    // A devnet parent that dies takes its children with it.
    process.on("disconnect", () => onSignal("parent exit"));
  });
  process.exit(0);
}
