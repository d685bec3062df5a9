// Starting and stopping the peer processes of a benchmark run: each child is tracked so that it is always
// stopped (by its own pid) when the run ends, even after an error.
import { fork, spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { existsSync } from "node:fs";

export interface Child {
  name: string;
  proc: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** Bytes of a child's output kept for error messages. */
const OUTPUT_KEEP = 8_000;
const STOP_GRACE_MS = 3_000;

const children = new Set<Child>();

function track(name: string, proc: ChildProcess, stopSignal: NodeJS.Signals): Child {
  let out = "";
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-OUTPUT_KEEP);
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  const child: Child = {
    name,
    proc,
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        children.delete(child);
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        const force = setTimeout(() => proc.kill("SIGKILL"), STOP_GRACE_MS);
        proc.once("exit", () => {
          clearTimeout(force);
          resolve();
        });
        proc.kill(stopSignal);
      }),
  };
  children.add(child);
  return child;
}

/**
 * Forks a module that reports {type:"ready", ...} over IPC; resolves with that message. TypeScript modules run
 * through tsx; JavaScript ones (the compiled CLI, as users run it) run on plain node.
 */
export async function forkReady(name: string, module: string, args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<{ child: Child; ready: Record<string, unknown> }> {
  // BENCH_PROFILE_DIR=dir writes a V8 CPU profile of every forked peer there when it exits (open in Chrome DevTools).
  const profile = process.env.BENCH_PROFILE_DIR ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];
  // Run from the tests' compiled tree (scripts/run-tests.mjs: .test-build/), a .ts module is the .js beside its path.
  if (module.endsWith(".ts") && !existsSync(module) && existsSync(`${module.slice(0, -3)}.js`)) module = `${module.slice(0, -3)}.js`;
  const loader = module.endsWith(".ts") ? ["--import", "tsx"] : [];
  const proc = fork(module, args, { execArgv: [...loader, ...profile], stdio: ["ignore", "pipe", "pipe", "ipc"], env: { ...process.env, ...env } });
  const child = track(name, proc, "SIGTERM");
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} was not ready within ${timeoutMs} ms:\n${child.output()}`)), timeoutMs);
    proc.on("message", (m: Record<string, unknown>) => {
      if (m?.type === "ready") {
        clearTimeout(timer);
        resolve(m);
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before it was ready:\n${child.output()}`));
    });
  });
  return { child, ready };
}

/** Spawns a plain command; the caller decides when it is ready. */
export function spawnChild(name: string, command: string, args: string[], opts: { cwd?: string; env?: Record<string, string>; stopSignal?: NodeJS.Signals } = {}): Child {
  const proc = spawn(command, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
  proc.on("error", () => {});
  return track(name, proc, opts.stopSignal ?? "SIGTERM");
}

/** Stops every child still running (in reverse start order). */
export async function stopAll(): Promise<void> {
  for (const c of [...children].reverse()) await c.stop();
}

/** A free loopback TCP port (bound and released; fine on a machine where we pick all ports ourselves). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Polls `check` every 100 ms until it returns true (errors count as not yet), or throws after timeoutMs. */
export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < end) {
    try {
      if (await check()) return;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ""}`);
}
