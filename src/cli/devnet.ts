// `cocoon devnet`: the whole network on one machine, each role in its own process (so a worker can be
// killed and the rest carries on), wired on loopback with free ports, and a readable start-up report.
import { fork, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDevnetChain, type DevnetChain } from "../payments/devnet.js";
import { DEFAULT_DRAIN_TIMEOUT_S, STOP_GRACE_MS } from "./lifecycle.js";
import { registerProxyCommand } from "./proxy-admin.js";
import { startDevnetPage, type DevnetNode } from "../dashboard/devnet-server.js";
import type { HttpServerHandle } from "../util/http.js";

export interface DevnetOptions {
  apiPort: number;
  workers: number;
  /** Proxies (default 2 with payments: registered on the root, found there by workers and the client; 1 without). */
  proxies?: number;
  modelFile?: string;
  /** Start the local chain and pay per token (default true; --no-payments keeps the network free). */
  payments?: boolean;
  /** Where chain state, ledgers and payments configs go (default: a fresh temporary folder). */
  dataDir?: string;
  /** On SIGTERM, how long each role may let running requests finish (seconds; default 30). */
  drainTimeoutS?: number;
  /** Port of the devnet page (every node, balances, a chat box); 0 picks a free one (the default). */
  dashboardPort?: number;
}

interface Child {
  name: string;
  proc: ChildProcess;
  ready: Promise<Record<string, unknown>>;
  /** The stop signals sent so far (a role takes a second one as "hurry": see lifecycle.ts). */
  signalled: NodeJS.Signals[];
}

const out = (s: string) => process.stdout.write(s);

/** A child killed by a signal keeps exitCode null: it is gone once either code is set. */
const alive = (c: Child) => c.proc.exitCode === null && c.proc.signalCode === null;
const exited = (c: Child) => (alive(c) ? new Promise<void>((r) => c.proc.once("exit", () => r())) : Promise.resolve());

/** Resolves true when `p` settled within `ms`, false otherwise. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const done = await Promise.race([p.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
  clearTimeout(timer);
  return done;
}

/** Sends `signal` (unless the child already got a stop signal) and waits for the child; past `ms` it is killed. */
async function stopChild(c: Child, signal: NodeJS.Signals, ms: number): Promise<void> {
  if (!alive(c)) return;
  const gone = exited(c);
  if (c.signalled.length === 0) {
    c.signalled.push(signal);
    c.proc.kill(signal);
  }
  if (await within(gone, ms)) return;
  if (alive(c)) {
    out(`${c.name} (pid ${c.proc.pid}) did not stop within ${Math.round(ms / 1000)} s; killing it\n`);
    c.proc.kill("SIGKILL");
  }
  await gone;
}

function startChild(name: string, args: string[]): Child {
  // Its own process group: a Ctrl-C in the terminal reaches only the devnet, which stops the children in order
  // (a child that got the terminal's SIGINT and then ours would take the second one as "force").
  // Children log to a pipe (JSON by default); on a terminal the devnet asks them for readable lines instead.
  const format = process.env.COCOON_LOG_FORMAT ?? (process.stderr.isTTY ? "pretty" : undefined);
  const env = { ...process.env, ...(format ? { COCOON_LOG_FORMAT: format } : {}) };
  const proc = fork(process.argv[1]!, args, { execArgv: process.execArgv, stdio: ["ignore", "pipe", "pipe", "ipc"], env, detached: true });
  // Children's logs go to our stderr with their name; their own "ready" lines are replaced by our report.
  createInterface({ input: proc.stderr! }).on("line", (l) => process.stderr.write(`  ${l}\n`));
  createInterface({ input: proc.stdout! }).on("line", () => {});
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    proc.on("message", (m: Record<string, unknown>) => m?.type === "ready" && resolve(m));
    proc.once("exit", (code, signal) => reject(new Error(`${name} exited during start-up (${signal ?? `code ${code}`}); its log is above`)));
  });
  ready.catch(() => {});
  return { name, proc, ready, signalled: [] };
}

async function step<T>(label: string, n: number, total: number, work: Promise<T>, detail: (v: T) => string): Promise<T> {
  const t0 = Date.now();
  out(`[${n}/${total}] ${label.padEnd(10)} starting…\n`);
  const v = await work;
  out(`[${n}/${total}] ${label.padEnd(10)} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s ${detail(v)}\n`);
  return v;
}

export async function runDevnet(o: DevnetOptions): Promise<void> {
  const children: Child[] = [];
  let chain: DevnetChain | undefined;
  let page: HttpServerHandle | undefined;
  /** A temporary folder made for this run: removed at exit (with --data-dir the state stays). */
  let tempDir: string | undefined;
  const drainMs = (o.drainTimeoutS ?? DEFAULT_DRAIN_TIMEOUT_S) * 1000;
  /** Past this, a child asked to stop is killed (its own stop is bounded by STOP_GRACE_MS). */
  const stopMs = STOP_GRACE_MS + 1_000;
  let stopping: "stop" | "drain" | undefined;
  let userSignals = 0;

  /** The chain (in this process) goes last: roles still settle on it while they stop. */
  const cleanUp = async () => {
    await page?.close();
    if (chain && !(await within(chain.close().catch(() => undefined), 3_000))) out("the local chain did not close within 3 s; exiting anyway\n");
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  };
  /**
   * "stop": every role stops at once (Ctrl-C, or a role the network needs died). "drain" (SIGTERM): the client
   * first, letting the apps' running requests finish and handing the proxy its newest voucher, then the others.
   */
  const shutdown = async (code: number, how: "stop" | "drain") => {
    if (stopping) return;
    stopping = how;
    if (how === "drain") {
      const client = children.filter((c) => c.name === "client");
      await Promise.all(client.map((c) => stopChild(c, "SIGTERM", drainMs + stopMs)));
      await Promise.all(children.filter((c) => !client.includes(c)).map((c) => stopChild(c, "SIGTERM", drainMs + stopMs)));
    } else {
      await Promise.all(children.map((c) => stopChild(c, "SIGINT", stopMs)));
    }
    await cleanUp();
    process.exit(code);
  };
  /** A second Ctrl-C while stopping: kill what is left, clean up, exit. */
  const force = async () => {
    out("stopping now: killing the remaining processes\n");
    for (const c of children) if (alive(c)) c.proc.kill("SIGKILL");
    await Promise.all(children.map(exited));
    await cleanUp();
    process.exit(130);
  };
  /** Ctrl-C while draining: every role stops now (a role that drains takes a second signal as "stop now"). */
  const hurry = () => {
    stopping = "stop";
    out("\nstopping now: running requests are cut off (press Ctrl-C again to kill what is left)\n");
    for (const c of children) {
      if (!alive(c) || c.signalled.includes("SIGINT")) continue;
      c.signalled.push("SIGINT");
      c.proc.kill("SIGINT");
    }
  };
  const onSignal = (sig: NodeJS.Signals) => {
    userSignals++;
    if (stopping === "drain") return hurry();
    if (stopping) {
      if (userSignals >= 2) void force();
      else out(`\nreceived ${sig}: the devnet is already stopping (press Ctrl-C again to kill what is left)\n`);
      return;
    }
    if (sig === "SIGTERM") {
      out(`\nreceived SIGTERM: stopping the devnet after running requests finish (at most ${drainMs / 1000} s; Ctrl-C stops at once)…\n`);
      void shutdown(0, "drain");
    } else {
      out(`\nstopping the devnet…\n`);
      void shutdown(0, "stop");
    }
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);

  const nProxies = o.proxies ?? (o.payments === false ? 1 : 2);
  const total = nProxies + 1 + o.workers;
  out(`cocoon devnet: a whole network on this machine (attestation: sim, a development stand-in — INSECURE)\n`);
  try {
    if (o.payments === false && nProxies > 1) {
      throw new Error("--proxies above 1 needs payments: the proxies are registered on the devnet's root contract, where the workers and the client find them (drop --no-payments)");
    }
    if (o.payments !== false) {
      const t0 = Date.now();
      const dir = o.dataDir ?? (tempDir = mkdtempSync(join(tmpdir(), "cocoon-devnet-")));
      out(`[chain]    starting the local TON chain and setting up contracts…\n`);
      chain = await startDevnetChain({ dir, workers: o.workers, proxies: nProxies, modelFile: o.modelFile, progress: (l) => out(`[chain]    ${l}\n`) });
      out(`[chain]    ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (${chain.server.url}; state and ledgers in ${dir})\n`);
    }
    // Every role gets the payments file (if any), the drain bound this devnet waits for on SIGTERM, and one admin
    // token file for the operator controls (cocoon admin …, or the dashboards' buttons).
    const adminToken = join(o.dataDir ?? (tempDir ??= mkdtempSync(join(tmpdir(), "cocoon-devnet-"))), "admin-token");
    const pay = (args: string[], file: string | undefined) => [...args, ...(file ? ["--payments", file] : []), "--drain-timeout", String(drainMs / 1000), "--admin-token-file", adminToken];
    const proxyNames = Array.from({ length: nProxies }, (_, i) => (i === 0 ? "proxy" : `proxy-${i + 1}`));
    const proxies = proxyNames.map((name, i) => {
      const c = startChild(name, pay(["proxy", "--name", name, "--worker-port", "0", "--client-port", "0", "--status-port", "0"], chain?.files.proxies[i]));
      children.push(c);
      return c;
    });
    const ps = await Promise.all(proxies.map((px, i) => step(px.name, 1 + i, total, px.ready, (v) => `(workers :${v.workerPort}, clients :${v.clientPort})`)));
    // With a chain, the proxies register on the root (as `cocoon proxy register` does) and everyone finds them there.
    if (chain) {
      for (const [i, p] of ps.entries()) {
        await registerProxyCommand(chain.files.owner, {
          proxyContract: chain.boot.proxies[i]!.contract.toString(), clients: `127.0.0.1:${p.clientPort}`, workers: `127.0.0.1:${p.workerPort}`,
        }, { print: (l) => out(`[chain]    ${l}\n`) });
      }
    }
    const where = (kind: "workerPort" | "clientPort") => (chain ? ["--root", chain.boot.root.toString()] : ["--proxy", `127.0.0.1:${ps[0]![kind]}`]);

    const workers = Array.from({ length: o.workers }, (_, i) => {
      const name = `worker-${i + 1}`;
      const args = ["worker", ...where("workerPort"), "--name", name, "--status-port", "0", "--capacity", "4"];
      if (o.modelFile) args.push("--model-file", o.modelFile);
      const c = startChild(name, pay(args, chain?.files.workers[i]));
      children.push(c);
      return c;
    });
    const client = startChild("client", pay(["client", "--port", String(o.apiPort), ...where("clientPort")], chain?.files.client));
    children.push(client);
    const ws = await Promise.all(workers.map((w, i) => step(w.name, 1 + nProxies + i, total, w.ready, (v) => `(status ${v.status})`)));
    const c = await step("client", total, total, client.ready, (v) => `(API ${v.api})`);

    // Ready means a request can be served: wait until the workers have joined the proxy.
    const api = String(c.api);
    let models: string[] = [];
    for (let i = 0; i < 100; i++) {
      try {
        const r = (await (await fetch(`${api}/models`)).json()) as { data?: { id: string; workers: number }[] };
        const joined = r.data?.reduce((s, m) => s + m.workers, 0) ?? 0;
        models = r.data?.map((m) => m.id) ?? [];
        if (joined >= o.workers) break;
      } catch {
        /* not yet */
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const model = models[0] ?? "kjv-char-llama";
    const base = (url: unknown) => String(url).replace(/\/(status|v1)$/, "");
    const nodes: DevnetNode[] = [
      { name: "client", role: "client", base: base(api) },
      ...ps.map((p, i): DevnetNode => ({ name: proxyNames[i]!, role: "proxy", base: base(p.status) })),
      ...ws.map((w, i): DevnetNode => ({ name: `worker-${i + 1}`, role: "worker", base: base(w.status) })),
    ];
    page = await startDevnetPage({ host: "127.0.0.1", port: o.dashboardPort ?? 0, api, models, nodes });
    out(`
Network ready. Send OpenAI-compatible requests to:

  ${api}

Try:
  curl ${api}/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"${model}","messages":[{"role":"user","content":"And God said"}],"max_tokens":60}'

Dashboard (every node, balances, a chat box): ${page.url}/

Dashboards (/status JSON, /metrics for Prometheus on the same ports):
${nodes.map((n) => `  ${n.name.padEnd(9)}${n.base}/`).join("\n")}
Operator controls: cocoon admin drain|enable|disable|payout|redeem --status URL --token-file ${adminToken}

${chain ? `Payments (devnet TON, per token; costs in usage.total_cost, nanoTON):
  chain    ${chain.server.url}
  root     ${chain.boot.root.toString()} (the directory: ${nProxies} registered prox${nProxies === 1 ? "y" : "ies"}; cocoon proxy status --payments ${chain.files.owner})
${chain.boot.proxies.map((p, i) => `  channel  ${p.channel.toString()} (pays ${proxyNames[i]})`).join("\n")}
  client   cocoon client deposit|close|withdraw|channels --payments ${chain.files.client}

` : ""}Processes: ${children.map((ch) => `${ch.name} pid ${ch.proc.pid}`).join(", ")}
Press Ctrl-C to stop (or send SIGTERM to let running requests finish first).
`);
    for (const ch of children) {
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        if (stopping) return;
        const how = signal ?? `code ${code}`;
        const proxiesLeft = children.filter((x) => proxyNames.includes(x.name) && alive(x)).length;
        if (ch.name.startsWith("worker")) {
          const left = children.filter((x) => x.name.startsWith("worker") && alive(x)).length;
          out(`${ch.name} (pid ${ch.proc.pid}) exited (${how}); the network goes on with ${left} worker(s).\n`);
        } else if (proxyNames.includes(ch.name) && proxiesLeft > 0) {
          out(`${ch.name} (pid ${ch.proc.pid}) exited (${how}); the network goes on with ${proxiesLeft} prox${proxiesLeft === 1 ? "y" : "ies"} (the client and workers use the others).\n`);
        } else {
          out(`${ch.name} (pid ${ch.proc.pid}) exited (${how}); the devnet cannot work without it and stops.\n`);
          void shutdown(1, "stop");
        }
      };
      // One that died while the report was printed is handled too.
      if (alive(ch)) ch.proc.once("exit", onExit);
      else onExit(ch.proc.exitCode, ch.proc.signalCode);
    }
    await new Promise(() => {});
  } catch (err) {
    if (stopping) return;
    out(`devnet failed to start: ${(err as Error).message}\n`);
    await shutdown(1, "stop");
  }
}
