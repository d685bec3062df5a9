// Test helper: runs `cocoon devnet` as a real process, as a user does, and reads what it prints: the API, every
// process id, every port it listens on and its temporary folder, so a test can check that nothing outlives it.
import { spawn, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { CLI } from "../helpers/processes.js";

export interface Devnet {
  proc: ChildProcess;
  output: () => string;
  api: string;
  /** Process ids printed by the devnet, by role name (proxy, worker-1, …, client). */
  pids: Record<string, number>;
  /** Every loopback port the devnet printed (API, status pages, chain). */
  ports: number[];
  /** The folder with chain state and ledgers (a temporary one unless --data-dir). */
  dataDir: string | undefined;
  /** Resolves with the exit code (or the signal) once the devnet process exited. */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits until the devnet printed something matching `re`. */
  waitForOutput(re: RegExp, ms?: number): Promise<RegExpExecArray>;
}

export async function startDevnet(args: string[] = [], env: Record<string, string> = {}): Promise<Devnet> {
  const proc = spawn(process.execPath, [...CLI.execArgv, CLI.file, "devnet", "--port", "0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, COCOON_LOG: "info", ...env },
  });
  let out = "";
  const watchers = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d;
    for (const w of [...watchers]) w();
  };
  proc.stdout!.on("data", onData);
  proc.stderr!.on("data", onData);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  const waitForOutput = (re: RegExp, ms = 120_000) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const m = re.exec(out);
        if (!m) return false;
        done();
        resolve(m);
        return true;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`devnet did not print ${re} within ${ms / 1000} s:\n${out.slice(-3000)}`));
      }, ms);
      const exited = () => {
        if (check()) return;
        done();
        reject(new Error(`devnet exited before printing ${re}:\n${out.slice(-3000)}`));
      };
      const done = () => {
        clearTimeout(timer);
        watchers.delete(watcher);
        proc.off("exit", exited);
      };
      const watcher = () => void check();
      if (check()) return;
      watchers.add(watcher);
      proc.once("exit", exited);
    });
  await waitForOutput(/Press Ctrl-C to stop/);
  const api = /Network ready[\s\S]*?(http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(out)![1]!;
  const processes = /Processes: (.*)/.exec(out)?.[1] ?? "";
  const pids = Object.fromEntries([...processes.matchAll(/([\w-]+) pid (\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
  const ports = [...new Set([...out.matchAll(/http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1])))];
  const dataDir = /state and ledgers in (\S+?)\)/.exec(out)?.[1];
  return { proc, output: () => out, api, pids, ports, dataDir, exit, waitForOutput };
}

/** Whether a process with this id exists (signal 0 probes without sending anything). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function portListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}
