// Test helper: runs `cocoon` commands as real child processes (the CLI the tests were built with: compiled, or the
// source through tsx; never a stale dist/) and collects what they report.
import { fork, type ChildProcess } from "node:child_process";
import { nodeEntry } from "./entry.js";

/** The CLI's entry point and the node options it needs: spawn(process.execPath, [...CLI.execArgv, CLI.file, ...]). */
export const CLI = nodeEntry(new URL("../../src/cli/main.ts", import.meta.url));

export interface RoleProcess {
  proc: ChildProcess;
  ready: Promise<Record<string, unknown>>;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts a role; `ready` resolves with its IPC ready message. */
export function startRole(args: string[], env: Record<string, string> = {}): RoleProcess {
  const proc = fork(CLI.file, args, { execArgv: CLI.execArgv, stdio: ["ignore", "pipe", "pipe", "ipc"], env: { ...process.env, COCOON_LOG: "info", ...env } });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    proc.on("message", (m: Record<string, unknown>) => m?.type === "ready" && resolve(m));
    proc.once("exit", (code) => reject(new Error(`cocoon ${args[0]} exited with ${code} before it was ready:\n${out}`)));
  });
  ready.catch(() => {});
  return {
    proc,
    ready,
    output: () => out,
    stop: (signal = "SIGTERM") =>
      new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode);
        proc.once("exit", (code) => resolve(code));
        proc.kill(signal);
      }),
  };
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}
