// The peers of the overhead benchmark, all pointed at one fake upstream on loopback:
//   direct   the upstream itself;
//   portkey  @portkey-ai/gateway (open-source AI gateway in Node), routed by x-portkey-* headers;
//   nginx    Debian nginx as a plain reverse proxy (own temp prefix and config, daemon off), if installed;
//   cocoon   client -> proxy -> worker as separate CLI processes (sim RA-TLS, attestation, sealing, metering
//            as the CLI roles do them at the time of the run), worker on --backend openai.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { forkReady, freePort, spawnChild, waitUntil, type Child } from "./procs.js";
import { toNano } from "@ton/core";
import { startDevnetChain, type DevnetChain } from "../../src/payments/devnet.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The `cocoon` command as users run it: the compiled CLI (`npm run bench` builds dist/ first). */
export const CLI = join(ROOT, "bin/cocoon.js");
export const MODEL = "fake-model";
export const NGINX_BIN = "/usr/sbin/nginx";
/** Concurrency the benchmark asks of the Cocoon worker: an engine like vLLM batches far more than this. */
export const BENCH_WORKER_CAPACITY = 128;
/** The bench client's channel deposit: enough for every request of a full run at devnet prices. */
const BENCH_DEPOSIT_TON = "900";

export interface Peer {
  name: "direct" | "portkey" | "nginx" | "cocoon" | "cocoon-unbilled";
  label: string;
  baseUrl: string;
  headers: Record<string, string>;
  /** Facts about how it ran (workers, options). */
  notes: string[];
  children: Child[];
  /** Stops what the peer runs in this process (the Cocoon path's local chain). */
  close?: () => Promise<void>;
  /** The Cocoon worker's and proxy's status pages (their counters: answer chunks, vouchers verified). */
  workerStatus?: string;
  proxyStatus?: string;
}

export interface Skipped {
  name: Peer["name"];
  reason: string;
}

const get = async (url: string): Promise<Response> => fetch(url, { signal: AbortSignal.timeout(2_000) });

export async function startUpstream(tokens: number, tokenDelayMs = 0): Promise<{ url: string; child: Child }> {
  const { child, ready } = await forkReady("fake upstream", join(ROOT, "bench/lib/upstream-process.ts"), [String(tokens), String(tokenDelayMs)]);
  return { url: String(ready.url), child };
}

export function directPeer(upstreamUrl: string): Peer {
  return { name: "direct", label: "direct (no gateway)", baseUrl: upstreamUrl, headers: {}, notes: ["the fake upstream itself"], children: [] };
}

export async function startPortkey(upstreamUrl: string): Promise<Peer> {
  const script = join(ROOT, "node_modules/@portkey-ai/gateway/build/start-server.js");
  if (!existsSync(script)) throw new Error(`@portkey-ai/gateway is not installed (${script} missing); run npm ci`);
  const port = await freePort();
  // --headless: no UI routes; NODE_ENV=production keeps its console quieter. Trusted hosts include 127.0.0.1 by default.
  const child = spawnChild("portkey", process.execPath, [script, `--port=${port}`, "--headless"], { cwd: ROOT, env: { NODE_ENV: "production" } });
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitUntil("portkey gateway to answer", async () => (await (await get(baseUrl)).text()).includes("AI Gateway"));
  return {
    name: "portkey",
    label: "portkey gateway 1.15.2",
    baseUrl,
    headers: { "x-portkey-provider": "openai", "x-portkey-custom-host": `${upstreamUrl}/v1`, authorization: "Bearer bench-not-a-key" },
    notes: ["one Node process, provider openai with x-portkey-custom-host = the fake upstream"],
    children: [child],
  };
}

export async function startNginx(upstreamUrl: string): Promise<Peer | Skipped> {
  if (!existsSync(NGINX_BIN)) return { name: "nginx", reason: `${NGINX_BIN} is not installed (apt-get install nginx to include it)` };
  const prefix = mkdtempSync(join(tmpdir(), "cocoon-bench-nginx-"));
  const port = await freePort();
  const up = new URL(upstreamUrl);
  // One worker process (like each single-threaded Node peer), upstream keep-alive, no buffering so SSE flows.
  const conf = `
worker_processes 1;
daemon off;
master_process on;
user root;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  keepalive_requests 1000000;
  upstream fake { server ${up.hostname}:${up.port}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`;
  writeFileSync(join(prefix, "nginx.conf"), conf);
  const child = spawnChild("nginx", NGINX_BIN, ["-p", prefix, "-c", join(prefix, "nginx.conf"), "-e", join(prefix, "error.log")], { stopSignal: "SIGQUIT" });
  child.proc.once("exit", () => rmSync(prefix, { recursive: true, force: true }));
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitUntil("nginx to answer", async () => (await get(`${baseUrl}/v1/models`)).ok, 10_000);
  } catch (err) {
    await child.stop();
    return { name: "nginx", reason: `nginx did not start: ${(err as Error).message}\n${child.output()}` };
  }
  return { name: "nginx", label: "nginx 1.22 reverse proxy", baseUrl, headers: {}, notes: ["worker_processes 1, upstream keepalive, proxy_buffering off"], children: [child] };
}

/** The full network as separate CLI processes, as users run it. */
/**
 * The full Cocoon path as users run it: three CLI processes with sim RA-TLS and sealing, and (unless
 * `payments: false`) billing on a local TON chain, with contracts deployed exactly as `cocoon devnet` does.
 */
export async function startCocoon(
  upstreamUrl: string,
  extraWorkerArgs: string[] = [],
  opts: { payments?: boolean; cli?: string; workers?: number; name?: Peer["name"]; maxUnsignedNano?: bigint; proxyArgs?: string[]; clientArgs?: string[] } = {},
): Promise<Peer> {
  const workers = opts.workers ?? 1;
  const cli = opts.cli ?? CLI;
  const env = { COCOON_LOG: "warn" };
  let chain: DevnetChain | undefined;
  if (opts.payments !== false) {
    const dir = mkdtempSync(join(tmpdir(), "cocoon-bench-chain-"));
    // The proxy prices a model by the digest the devnet root lists for its name: name a file after the fake model.
    const modelFile = join(dir, `${MODEL}.gguf`);
    writeFileSync(modelFile, "benchmark stand-in: only this file's digest is used, to price the fake model");
    chain = await startDevnetChain({ dir, workers, modelFile, deposit: toNano(BENCH_DEPOSIT_TON) });
    if (opts.maxUnsignedNano !== undefined) {
      // The operator's bound on what one channel may owe unsigned (answers not yet paid + the most requests in flight
      // may cost): thousands of concurrent streams from one client need more than the default.
      const config = JSON.parse(readFileSync(chain.files.proxy, "utf8")) as Record<string, unknown>;
      writeFileSync(chain.files.proxy, JSON.stringify({ ...config, maxUnsignedNano: opts.maxUnsignedNano.toString() }, null, 2));
    }
  }
  const pay = (args: string[], file: string | undefined) => (file ? [...args, "--payments", file] : args);
  const proxy = await forkReady("cocoon proxy", cli, pay(["proxy", "--worker-port", "0", "--client-port", "0", "--status-port", "0", ...(opts.proxyArgs ?? [])], chain?.files.proxy), env);
  const children = [proxy.child];
  try {
    let worker: Awaited<ReturnType<typeof forkReady>> | undefined;
    for (let i = 0; i < workers; i++) {
      const w = await forkReady(
        workers > 1 ? `cocoon worker ${i + 1}` : "cocoon worker",
        cli,
        pay(["worker", "--proxy", `127.0.0.1:${proxy.ready.workerPort}`, "--backend", "openai", "--upstream", upstreamUrl, "--capacity", String(BENCH_WORKER_CAPACITY), "--status-port", "0", "--name", `bench-worker${i ? `-${i + 1}` : ""}`, ...extraWorkerArgs], chain?.files.workers[i]),
        env,
      );
      worker ??= w;
      children.push(w.child);
    }
    const client = await forkReady("cocoon client", cli, pay(["client", "--port", "0", "--proxy", `127.0.0.1:${proxy.ready.clientPort}`, ...(opts.clientArgs ?? [])], chain?.files.client), env);
    children.push(client.child);
    const baseUrl = `http://127.0.0.1:${client.ready.port}`;
    await waitUntil("the Cocoon client to list the worker's model", async () => {
      const r = (await (await get(`${baseUrl}/v1/models`)).json()) as { data?: { id: string }[] };
      return !!r.data?.some((m) => m.id === MODEL);
    });
    const status = (await (await get(String(proxy.ready.status))).json()) as Record<string, unknown>;
    const payments = status.payments as { mode?: string } | undefined;
    return {
      name: opts.name ?? "cocoon",
      label: `Cocoon client → proxy → ${workers > 1 ? `${workers} workers` : "worker"}`,
      baseUrl,
      headers: {},
      notes: [
        `${2 + workers} processes of the compiled CLI (client, proxy, ${workers > 1 ? `${workers} workers` : "worker"}), sim RA-TLS with attestation verified on every link, requests HPKE-sealed to the worker`,
        // The last --capacity wins (commander), so the extra arguments say what really ran.
        `worker --backend openai --capacity ${BENCH_WORKER_CAPACITY}${extraWorkerArgs.length ? ` ${extraWorkerArgs.join(" ")}` : ""}`,
        chain
          ? `billing on: per-token prices from a devnet root contract, a client-signed voucher per answer (verified lazily by the proxy), receipts and vouchers durable in SQLite ledgers, batched redemption (proxy reports network ${(status.payments as { network?: string } | undefined)?.network ?? "?"})`
          : `billing off (${payments?.mode ?? "counting only"})`,
        ...(opts.proxyArgs?.length ? [`proxy ${opts.proxyArgs.join(" ")}`] : []),
        ...(opts.clientArgs?.length ? [`client ${opts.clientArgs.join(" ")}`] : []),
        ...(chain && opts.maxUnsignedNano !== undefined ? [`proxy maxUnsignedNano ${opts.maxUnsignedNano} (its credit bound per channel, raised for this many concurrent streams)`] : []),
      ],
      children,
      workerStatus: String(worker!.ready.status),
      proxyStatus: String(proxy.ready.status),
      ...(chain ? { close: () => chain!.close() } : {}),
    };
  } catch (err) {
    for (const c of children.reverse()) await c.stop();
    await chain?.close();
    throw err;
  }
}

export async function stopPeer(p: Peer): Promise<void> {
  for (const c of [...p.children].reverse()) await c.stop();
  await p.close?.();
}
