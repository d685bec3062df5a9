// The soak: a paid network of real processes (client, proxy, workers on fast fake engines or the embedded model, a
// local TON chain) under steady streaming load with app cancels at random moments (including right before the last
// chunk), workers SIGKILLed and restarted and a proxy restart; then the books of every party are checked against each
// other to the nanoTON. `npm run soak` runs it (bench/soak.ts); a short run is part of `npm test`.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toNano } from "@ton/core";
import { startDevnetChain, type DevnetChain } from "../../src/payments/devnet.js";
import { makeTonClient } from "../../src/chain/network.js";
import { TonAccess } from "../../src/payments/ton.js";
import { loadPaymentsConfig } from "../../src/payments/config.js";
import Database from "better-sqlite3";
import { forkReady, freePort, stopAll, waitUntil, type Child } from "../lib/procs.js";
import { percentile } from "../lib/stats.js";

/** Percentile (0..1) of samples, 0 when there are none (a quiet interval). */
const quantile = (xs: number[], q: number): number => (xs.length ? percentile(xs, q * 100) : 0);

export interface SoakOptions {
  /** The CLI to run the roles with: the compiled bin/cocoon.js (as users do) or src/cli/main.ts through tsx. */
  cli: string;
  durationS: number;
  /** Requests the load generator keeps in flight. */
  concurrency: number;
  workers: number;
  /** "fake": fast OpenAI-compatible stand-in engines; "embedded": the shipped model through llama.cpp. */
  backend: "fake" | "embedded";
  /** Share of streaming requests the app abandons at a random moment. */
  cancelRate: number;
  /** Share of requests sent without streaming. */
  nonStreamingRate: number;
  /** Kill and restart workers, restart the proxy, during the run. */
  faults: boolean;
  /** Seconds between result rows (per-minute results for long runs). */
  intervalS: number;
  tokens: number;
  tokenDelayMs: number;
  workerCapacity: number;
  /** The proxy's bound on unsigned exposure per channel (nanoTON); its default when absent. */
  maxUnsignedNano?: string;
  log?: (line: string) => void;
}

export interface SoakRow {
  atS: number;
  served: number;
  cancelled: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  rssMb: Record<string, number>;
}

export interface SoakReport {
  options: Omit<SoakOptions, "log" | "cli">;
  rows: SoakRow[];
  served: number;
  cancelled: number;
  errorsByKind: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  events: string[];
  books: Record<string, string>;
  checks: { name: string; ok: boolean; detail: string }[];
  ok: boolean;
}

const FAKE_MODEL = "soak-model";
/** Settlement timers of the run: short, so redemption, payouts and claims happen during it (and around the kills). */
const BATCH = { redeemThreshold: toNano("1000").toString(), redeemIntervalMs: 2_000, payoutThreshold: toNano("1000").toString(), payoutIntervalMs: 2_000, claimThreshold: toNano("1000").toString(), claimIntervalMs: 3_000 };
const big = (v: unknown): bigint => (typeof v === "string" && /^[0-9]+$/.test(v) ? BigInt(v) : 0n);

async function json(url: string): Promise<Record<string, any>> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return (await r.json()) as Record<string, any>;
}

function rssMb(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

interface Outcome {
  kind: "served" | "cancelled" | string;
  ms: number;
  /** total_cost the app saw (served answers only). */
  cost: bigint;
}

/** One app request: streaming (maybe abandoned at a random moment) or not; never throws. */
async function oneRequest(api: string, model: string, o: SoakOptions): Promise<Outcome> {
  const started = Date.now();
  const stream = Math.random() >= o.nonStreamingRate;
  // Cancel points: anywhere, with extra weight right before the last chunk (the race that used to desync the books).
  const cancelAt = stream && Math.random() < o.cancelRate ? (Math.random() < 0.4 ? o.tokens - 1 : Math.floor(Math.random() * o.tokens)) : -1;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 60_000);
  try {
    const res = await fetch(`${api}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: `soak ${Math.random().toString(36).slice(2)} alpha beta` }], max_tokens: o.tokens, stream, ...(stream ? { stream_options: { include_usage: true } } : {}) }),
      signal: ac.signal,
    });
    if (res.status !== 200) {
      const body = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
      return { kind: `HTTP ${res.status} ${body.error?.code ?? ""}`.trim(), ms: Date.now() - started, cost: 0n };
    }
    if (!stream) {
      const body = (await res.json()) as { usage?: { total_cost?: number } };
      return { kind: "served", ms: Date.now() - started, cost: BigInt(body.usage?.total_cost ?? 0) };
    }
    let deltas = 0;
    let cost: bigint | undefined;
    let failed: string | undefined;
    let buf = "";
    const decoder = new TextDecoder();
    if (cancelAt === 0) {
      ac.abort();
      return { kind: "cancelled", ms: Date.now() - started, cost: 0n };
    }
    for await (const part of res.body!) {
      buf += decoder.decode(part as Uint8Array, { stream: true });
      for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (!ev.startsWith("data: ") || ev.includes("[DONE]")) continue;
        const j = JSON.parse(ev.slice(6)) as { error?: { code?: string }; usage?: { total_cost?: number }; choices?: { delta?: { content?: string } }[] };
        if (j.error) failed = `stream error ${j.error.code ?? ""}`.trim();
        if (j.usage?.total_cost !== undefined) cost = BigInt(j.usage.total_cost);
        if (j.choices?.[0]?.delta?.content) deltas++;
        if (cancelAt > 0 && deltas >= cancelAt) {
          ac.abort();
          return { kind: "cancelled", ms: Date.now() - started, cost: 0n };
        }
      }
    }
    if (failed) return { kind: failed, ms: Date.now() - started, cost: 0n };
    if (cost === undefined) return { kind: "stream ended without usage", ms: Date.now() - started, cost: 0n };
    return { kind: "served", ms: Date.now() - started, cost };
  } catch (err) {
    if (ac.signal.aborted && cancelAt >= 0) return { kind: "cancelled", ms: Date.now() - started, cost: 0n };
    return { kind: `${(err as Error).name}: ${(err as Error).message}`.slice(0, 80), ms: Date.now() - started, cost: 0n };
  } finally {
    clearTimeout(timer);
  }
}

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const log = o.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), "cocoon-soak-"));
  const env = { COCOON_LOG: "warn" };
  const events: string[] = [];
  const event = (s: string) => {
    events.push(s);
    log(s);
  };
  let chain: DevnetChain | undefined;
  try {
    let modelFile: string | undefined;
    if (o.backend === "fake") {
      modelFile = join(dir, `${FAKE_MODEL}.gguf`);
      writeFileSync(modelFile, "soak stand-in: only this file's digest is used, to price the fake model");
    }
    log(`starting a local chain and deploying the contracts (${o.workers} workers)…`);
    chain = await startDevnetChain({ dir, workers: o.workers, ...(modelFile ? { modelFile } : {}), deposit: toNano("900") });
    const model = chain.model.name;
    for (const f of [chain.files.proxy, chain.files.client, ...chain.files.workers]) {
      const cfg = JSON.parse(readFileSync(f, "utf8")) as Record<string, unknown>;
      writeFileSync(f, JSON.stringify({ ...cfg, batch: BATCH, ...(o.maxUnsignedNano && f === chain.files.proxy ? { maxUnsignedNano: o.maxUnsignedNano } : {}) }, null, 2), { mode: 0o600 });
    }
    const upstreams: string[] = [];
    if (o.backend === "fake") {
      for (let i = 0; i < o.workers; i++) {
        const up = await forkReady(`fake engine ${i + 1}`, join(import.meta.dirname, "../lib/upstream-process.ts"), [String(o.tokens), String(o.tokenDelayMs), FAKE_MODEL]);
        upstreams.push(String(up.ready.url));
      }
    }
    // Fixed ports: the restarted proxy comes back where workers and client keep dialing.
    const [workerPort, clientPort, statusPort] = [await freePort(), await freePort(), await freePort()];
    const startProxy = () => forkReady("cocoon proxy", o.cli, ["proxy", "--worker-port", String(workerPort), "--client-port", String(clientPort), "--status-port", String(statusPort), "--payments", chain!.files.proxy], env, 60_000);
    const startWorker = (i: number) =>
      forkReady(`cocoon worker w${i + 1}`, o.cli, [
        "worker", "--proxy", `127.0.0.1:${workerPort}`, "--name", `w${i + 1}`, "--status-port", "0", "--capacity", String(o.workerCapacity), "--payments", chain!.files.workers[i]!,
        ...(o.backend === "fake" ? ["--backend", "openai", "--upstream", upstreams[i]!, "--model", FAKE_MODEL] : []),
      ], env, 60_000);
    let proxy = await startProxy();
    const workers: { child: Child; ready: Record<string, unknown> }[] = [];
    for (let i = 0; i < o.workers; i++) workers.push(await startWorker(i));
    const client = await forkReady("cocoon client", o.cli, ["client", "--port", "0", "--proxy", `127.0.0.1:${clientPort}`, "--payments", chain.files.client], env, 60_000);
    const api = String(client.ready.api);
    const proxyStatus = `http://127.0.0.1:${statusPort}/status`;
    const clientStatus = api.replace(/\/v1$/, "/status");
    const allWorkersIn = async () => ((await json(proxyStatus)).peers.workers as { enabled: boolean }[]).filter((w) => w.enabled).length === o.workers;
    await waitUntil("every worker to join the proxy", allWorkersIn, 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\n--- proxy ---\n${proxy.child.output().slice(-2_000)}\n--- workers ---\n${workers.map((w) => w.child.output().slice(-2_000)).join("\n")}`);
    });
    await waitUntil("the client to list the model", async () => ((await json(`${api}/models`)).data as { id: string }[]).some((m) => m.id === model), 30_000);
    log(`network up: proxy, ${o.workers} worker(s) (${o.backend}), client at ${api}; ${o.concurrency} requests in flight for ${o.durationS} s`);

    // ---- load ----
    const started = Date.now();
    const end = started + o.durationS * 1000;
    const all: Outcome[] = [];
    let window: Outcome[] = [];
    let appCost = 0n;
    const rows: SoakRow[] = [];
    let faultsDone = !o.faults;
    const loop = async () => {
      // The load lasts the whole run, and at least until every fault was injected (a restart can be slow here).
      while (Date.now() < end || !faultsDone) {
        const r = await oneRequest(api, model, o);
        all.push(r);
        window.push(r);
        appCost += r.cost;
        if (r.kind !== "served" && r.kind !== "cancelled") await new Promise((res) => setTimeout(res, 50)); // no hot error loop
      }
    };
    // /v1/models and every /status page polled, as dashboards and SDKs do.
    const poller = setInterval(() => {
      void fetch(`${api}/models`).then((r) => r.arrayBuffer()).catch(() => {});
      void fetch(clientStatus).then((r) => r.arrayBuffer()).catch(() => {});
      void fetch(proxyStatus).then((r) => r.arrayBuffer()).catch(() => {});
    }, 1_000);
    const sampler = setInterval(() => {
      const w = window;
      window = [];
      const lat = w.filter((x) => x.kind === "served").map((x) => x.ms).sort((a, b) => a - b);
      const row: SoakRow = {
        atS: Math.round((Date.now() - started) / 1000),
        served: w.filter((x) => x.kind === "served").length,
        cancelled: w.filter((x) => x.kind === "cancelled").length,
        errors: w.filter((x) => x.kind !== "served" && x.kind !== "cancelled").length,
        p50Ms: Math.round(quantile(lat, 0.5)),
        p99Ms: Math.round(quantile(lat, 0.99)),
        rssMb: {
          soak: Math.round(process.memoryUsage().rss / 1048576),
          client: rssMb(client.child.proc.pid),
          proxy: rssMb(proxy.child.proc.pid),
          ...Object.fromEntries(workers.map((w, i) => [`w${i + 1}`, rssMb(w.child.proc.pid)])),
        },
      };
      rows.push(row);
      if (row.served + row.cancelled + row.errors === 0) {
        // Nothing ended in a whole interval: say where the requests are (proxy queue and workers, engine slots).
        void Promise.all([json(proxyStatus), ...workers.map((w) => json(String(w.ready.status)))])
          .then(([p, ...ws]) => event(`${row.atS} s: stalled, nothing ended for ${o.intervalS} s; proxy queue ${JSON.stringify(p!.queue?.waiting)}, workers at the proxy ${JSON.stringify((p!.peers.workers as { id: string; active: number; capacity: number; enabled: boolean }[]).map((w) => `${w.id} ${w.active}/${w.capacity}${w.enabled ? "" : " disabled"}`))}, workers' own count ${JSON.stringify(ws.map((w) => w.activeRequests))}`))
          .catch((err: Error) => event(`${row.atS} s: stalled, and the status pages did not answer: ${err.message}`));
      }
      log(`${String(row.atS).padStart(5)} s: ${row.served} served, ${row.cancelled} cancelled, ${row.errors} errors, p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms, RSS MB ${JSON.stringify(row.rssMb)}`);
    }, o.intervalS * 1000);
    const faults = (async () => {
      if (!o.faults) return;
      const at = (f: number) => new Promise((r) => setTimeout(r, Math.max(0, started + o.durationS * 1000 * f - Date.now())));
      const killWorker = async (i: number) => {
        workers[i]!.child.proc.kill("SIGKILL");
        await workers[i]!.child.stop();
        event(`${Math.round((Date.now() - started) / 1000)} s: worker w${i + 1} SIGKILLed`);
        await new Promise((r) => setTimeout(r, 1_000));
        workers[i] = await startWorker(i);
        event(`${Math.round((Date.now() - started) / 1000)} s: worker w${i + 1} restarted`);
      };
      await at(0.25);
      await killWorker(0);
      await at(0.5);
      proxy.child.proc.kill("SIGKILL");
      await proxy.child.stop();
      event(`${Math.round((Date.now() - started) / 1000)} s: proxy SIGKILLed`);
      proxy = await startProxy();
      event(`${Math.round((Date.now() - started) / 1000)} s: proxy restarted on the same ports and ledger`);
      await at(0.75);
      await killWorker(Math.min(1, o.workers - 1));
      // A little load after the last restart, so the restarted worker serves too.
      await new Promise((r) => setTimeout(r, 3_000));
    })().finally(() => (faultsDone = true));
    await Promise.all([...Array.from({ length: o.concurrency }, loop), faults]);
    clearInterval(poller);
    clearInterval(sampler);
    log(`load stopped after ${Math.round((Date.now() - started) / 1000)} s: ${all.length} requests; settling…`);

    // ---- books ----
    // Everything in flight has ended; the client hands over its newest voucher, the proxy redeems and pays out.
    const ton = new TonAccess(makeTonClient("devnet", chain.server.url, {}), "devnet");
    let cs: Record<string, any> = {};
    let ps: Record<string, any> = {};
    const settled = async () => {
      cs = (await json(clientStatus)).payments;
      ps = (await json(proxyStatus)).payments;
      const charged = big(ps.charged) - big(ps.writtenOff);
      return big(cs.signed) === big(ps.signed) && big(ps.signed) === charged && big(ps.redeemed) === big(ps.signed);
    };
    await waitUntil("client, proxy and chain to settle (voucher handed over, everything redeemed)", settled, 120_000).catch((e: Error) => event(`not settled: ${e.message}`));
    const onChain = await ton.channelState(chain.boot.channel);
    const workerEarned = await Promise.all(workers.map(async (w) => big((await json(String(w.ready.status))).payments?.earned)));
    const sumW = workerEarned.reduce((s, x) => s + x, 0n);
    const clientSpent = big(cs.spent);
    const costs = (await json(clientStatus)).costs as { delivered: { count: number; nano: string }; cancelledByApp: { count: number; nano: string } };
    const delivered = big(costs.delivered.nano);
    const cancelledPaid = big(costs.cancelledByApp.nano);
    const reconciledPaid = big(cs.reconciliation?.paidNano);
    const checks = [
      { name: "costs in answers + answers the app left (still paid) + answers paid on reconciliation = client spent", ok: delivered + cancelledPaid + reconciledPaid === clientSpent, detail: `${delivered} + ${cancelledPaid} + ${reconciledPaid} vs ${clientSpent}` },
      // The app may abandon a stream after the client wrote its cost (it stopped reading), never the other way round.
      { name: "costs the app read <= costs the client put in answers", ok: appCost <= delivered, detail: `${appCost} vs ${delivered}` },
      { name: "client signed = client spent", ok: big(cs.signed) === clientSpent, detail: `${cs.signed} vs ${clientSpent}` },
      { name: "proxy charged - written off = client spent", ok: big(ps.charged) - big(ps.writtenOff) === clientSpent, detail: `${ps.charged} - ${ps.writtenOff} vs ${clientSpent}` },
      { name: "nothing written off (no answer the client could not verify)", ok: big(ps.writtenOff) === 0n, detail: String(ps.writtenOff) },
      { name: "proxy holds the client's newest voucher", ok: big(ps.signed) === big(cs.signed), detail: `${ps.signed} vs ${cs.signed}` },
      { name: "redeemed on chain = signed (redeemed + unredeemed = signed, nothing left)", ok: onChain.redeemed === big(cs.signed) && big(ps.redeemed) === onChain.redeemed, detail: `chain ${onChain.redeemed}, proxy ${ps.redeemed}, signed ${cs.signed}` },
      { name: "worker credit + proxy fee = proxy charged", ok: big(ps.workersEarned) + big(ps.fees) === big(ps.charged), detail: `${ps.workersEarned} + ${ps.fees} vs ${ps.charged}` },
      { name: "workers hold payout vouchers for at most their credit", ok: sumW <= big(ps.workersEarned), detail: `${workerEarned.join(" + ")} vs ${ps.workersEarned}` },
    ];
    const served = all.filter((x) => x.kind === "served");
    const errorsByKind: Record<string, number> = {};
    for (const x of all) if (x.kind !== "served" && x.kind !== "cancelled") errorsByKind[x.kind] = (errorsByKind[x.kind] ?? 0) + 1;
    const lat = served.map((x) => x.ms).sort((a, b) => a - b);
    const { log: _l, cli: _c, ...options } = o;
    const report: SoakReport = {
      options,
      rows,
      served: served.length,
      cancelled: all.filter((x) => x.kind === "cancelled").length,
      errorsByKind,
      p50Ms: Math.round(quantile(lat, 0.5)),
      p99Ms: Math.round(quantile(lat, 0.99)),
      events,
      books: {
        "app saw (served answers)": appCost.toString(),
        "client spent": clientSpent.toString(),
        "client signed": String(cs.signed),
        "client: costs put in answers": `${delivered} (${costs.delivered.count} answers)`,
        "client: answers the app left, paid for what was produced": `${cancelledPaid} (${costs.cancelledByApp.count} answers)`,
        "client: paid on reconciliation": `${reconciledPaid} (${cs.reconciliation?.paid ?? 0} answers; ${cs.reconciliation?.disputed ?? 0} disputed)`,
        "proxy charged": String(ps.charged),
        "proxy written off": String(ps.writtenOff),
        "proxy signed": String(ps.signed),
        "proxy redeemed": String(ps.redeemed),
        "redeemed on chain": onChain.redeemed.toString(),
        "workers' credit at the proxy": String(ps.workersEarned),
        "proxy fees": String(ps.fees),
        "payout vouchers held by workers": sumW.toString(),
      },
      checks,
      ok: checks.every((c) => c.ok),
    };
    if (!report.ok) {
      for (const [name, c] of [["client", client.child], ["proxy", proxy.child]] as const) log(`--- last output of the ${name} ---\n${c.output().slice(-4_000)}`);
      // Which answers the two ledgers disagree on (read-only, while the roles still run).
      try {
        const open = (f: string) => new Database(loadPaymentsConfig(f).ledger, { readonly: true });
        const [pl, cl] = [open(chain.files.proxy), open(chain.files.client)];
        const ids = (db: Database.Database) => new Set((db.prepare("SELECT request_id FROM receipts").all() as { request_id: string }[]).map((r) => r.request_id));
        const [pIds, cIds] = [ids(pl), ids(cl)];
        const onlyProxy = [...pIds].filter((i) => !cIds.has(i));
        const onlyClient = [...cIds].filter((i) => !pIds.has(i));
        log(`ledger diff: ${onlyProxy.length} answer(s) only the proxy charged ${JSON.stringify(onlyProxy.slice(0, 5))}, ${onlyClient.length} only the client paid ${JSON.stringify(onlyClient.slice(0, 5))}`);
        for (const id of onlyProxy.slice(0, 5)) log(`  ${id} in the client's output: ${client.child.output().split("\n").filter((l) => l.includes(id)).join(" | ") || "(nothing)"}`);
        pl.close();
        cl.close();
      } catch (err) {
        log(`ledger diff unavailable: ${(err as Error).message}`);
      }
    }
    return report;
  } finally {
    await stopAll();
    await chain?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The report as Markdown (docs/reliability.md). */
export function soakMarkdown(r: SoakReport, when: Date, machine: string): string {
  const o = r.options;
  const L: string[] = [];
  L.push("# Reliability: the soak", "");
  L.push(`Written by \`npm run soak\` on ${when.toISOString()} (${machine}). Rerun it to refresh this page; \`npm run soak -- --help\` lists the knobs.`, "");
  L.push(
    `Setup: a local TON chain with the devnet contracts; \`cocoon proxy\`, ${o.workers} \`cocoon worker\` (${o.backend === "fake" ? `fast fake engines (a stand-in: ${o.tokens} tokens, ${o.tokenDelayMs} ms apart)` : "the embedded model through llama.cpp"}, capacity ${o.workerCapacity} each) and \`cocoon client\` as separate processes with payments on; ` +
      `${o.concurrency} requests in flight for ${o.durationS} s (${Math.round(o.nonStreamingRate * 100)}% non-streaming; ${Math.round(o.cancelRate * 100)}% of streams abandoned by the app at a random moment, 40% of those right before the last chunk); /v1/models and every /status polled each second` +
      (o.faults ? "; a worker SIGKILLed and restarted at 25% and 75% of the run, the proxy SIGKILLed and restarted at 50%" : "") +
      `; the proxy's credit bound per channel ${o.maxUnsignedNano ? `${o.maxUnsignedNano} nanoTON (--max-unsigned)` : "at its default"}.`,
    "",
  );
  L.push(`**Verdict: ${r.ok ? "every check passed" : "FAILED"}.** ${r.served} answers served, ${r.cancelled} cancelled by the app, ${Object.values(r.errorsByKind).reduce((s, n) => s + n, 0)} errors; latency of served answers p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms.`, "");
  L.push("## Accounting (nanoTON)", "", "| check | result | numbers |", "|---|---|---|");
  for (const c of r.checks) L.push(`| ${c.name} | ${c.ok ? "ok" : "**FAILED**"} | ${c.detail} |`);
  L.push("", "| book | value |", "|---|---:|");
  for (const [k, v] of Object.entries(r.books)) L.push(`| ${k} | ${v} |`);
  L.push("", "## Errors by kind", "");
  const errs = Object.entries(r.errorsByKind).sort((a, b) => b[1] - a[1]);
  if (errs.length === 0) L.push("None.");
  else {
    L.push("| kind | count |", "|---|---:|");
    for (const [k, n] of errs) L.push(`| ${k} | ${n} |`);
  }
  if (r.events.length) L.push("", "## Faults injected", "", ...r.events.map((e) => `- ${e}`));
  L.push("", `## Over time (every ${o.intervalS} s)`, "");
  const procs = Object.keys(r.rows[0]?.rssMb ?? {});
  L.push(`| at (s) | served | cancelled | errors | p50 (ms) | p99 (ms) | ${procs.map((p) => `RSS ${p} (MB)`).join(" | ")} |`);
  L.push(`|---:|---:|---:|---:|---:|---:|${procs.map(() => "---:").join("|")}|`);
  for (const row of r.rows) L.push(`| ${row.atS} | ${row.served} | ${row.cancelled} | ${row.errors} | ${row.p50Ms} | ${row.p99Ms} | ${procs.map((p) => row.rssMb[p] ?? 0).join(" | ")} |`);
  L.push("");
  return L.join("\n");
}
