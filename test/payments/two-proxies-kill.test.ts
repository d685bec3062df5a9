// Acceptance check for a network of several proxies: two proxies registered on the devnet's root, a worker and a client
// that find them there (--root), real processes, a fake OpenAI engine. Under load, one proxy is SIGKILLed: no request
// sent after the kill fails (requests that had not started move to the other proxy), requests in flight through the
// dead proxy end with a clean OpenAI error, the network keeps serving; the dead proxy comes back on its ledger, and the
// money reconciles PER PROXY to the nanoTON: charged = client signed = redeemed on chain = worker credit + fee.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toNano } from "@ton/core";
import { startDevnetChain, type DevnetChain } from "../../src/payments/devnet.js";
import { makeTonClient } from "../../src/chain/network.js";
import { TonAccess } from "../../src/payments/ton.js";
import { registerProxyCommand } from "../../src/cli/proxy-admin.js";
import { startFakeUpstream, type FakeUpstream } from "../../src/dev/fake-upstream.js";
import { startRole, waitFor, type RoleProcess } from "../helpers/processes.js";
import { freePorts, setBatch } from "../helpers/payments-processes.js";

const MODEL = "two-proxies-model";
const TIMER_MS = 600;
const NEVER = toNano("1000").toString();
const BATCH = { redeemThreshold: NEVER, redeemIntervalMs: TIMER_MS, payoutThreshold: NEVER, payoutIntervalMs: TIMER_MS, claimThreshold: NEVER, claimIntervalMs: TIMER_MS };
const START_MS = 40_000;
const SETTLE_MS = 30_000;
const CONCURRENCY = 4;

const big = (v: unknown, what: string): bigint => {
  if (typeof v !== "string" || !/^[0-9]+$/.test(v)) throw new Error(`${what} should be a decimal string, got ${JSON.stringify(v)}`);
  return BigInt(v);
};
const show = (x: unknown) => JSON.stringify(x, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
const json = async (url: string) => (await fetch(url, { signal: AbortSignal.timeout(5_000) })).json() as Promise<any>;

interface Outcome {
  sentAt: number;
  status: number;
  proxy: string | null;
  cost: bigint;
  error?: { code?: string; message?: string };
}

test("two proxies on the root, one SIGKILLed under load: nothing unstarted is lost, money reconciles per proxy", { timeout: 170_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-two-proxies-"));
  const modelFile = join(dir, `${MODEL}.gguf`);
  writeFileSync(modelFile, randomBytes(64));
  const live = new Set<RoleProcess>();
  let chain: DevnetChain | undefined;
  let upstream: FakeUpstream | undefined;
  try {
    chain = await startDevnetChain({ dir, workers: 1, proxies: 2, modelFile, deposit: toNano("10") });
    for (const f of [...chain.files.proxies, chain.files.workers[0]!, chain.files.client]) setBatch(f, BATCH);
    upstream = await startFakeUpstream({ model: MODEL, tokens: 6, tokenDelayMs: 15 });
    const ton = new TonAccess(makeTonClient("devnet", chain.server.url, {}), "devnet");
    const contracts = chain.boot.proxies.map((p) => p.contract.toString());
    const feeBps = chain.boot.params.proxyFeeBps;

    const role = async (args: string[]) => {
      const r = startRole(args);
      live.add(r);
      r.proc.once("exit", () => live.delete(r));
      const info = await Promise.race([r.ready, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`cocoon ${args[0]} not ready within ${START_MS} ms:\n${r.output()}`)), START_MS).unref())]);
      return { r, info };
    };
    const ports = await freePorts(6);
    const startProxy = (i: number) => role(["proxy", "--worker-port", String(ports[3 * i]), "--client-port", String(ports[3 * i + 1]), "--status-port", String(ports[3 * i + 2]), "--payments", chain!.files.proxies[i]!]);
    const proxies = await Promise.all([startProxy(0), startProxy(1)]);
    const proxyStatus = proxies.map((p) => String(p.info.status));
    // Registered on the root with their public endpoints: from here on, clients and workers find them there.
    for (let i = 0; i < 2; i++) {
      await registerProxyCommand(chain.files.owner, { proxyContract: contracts[i], clients: `127.0.0.1:${ports[3 * i + 1]}`, workers: `127.0.0.1:${ports[3 * i]}` }, { print: () => {} });
    }
    const root = chain.boot.root.toString();
    const [worker, client] = await Promise.all([
      role(["worker", "--root", root, "--backend", "openai", "--upstream", upstream.url, "--model", MODEL, "--name", "w1", "--status-port", "0", "--capacity", "8", "--payments", chain.files.workers[0]!]),
      role(["client", "--port", "0", "--root", root, "--payments", chain.files.client]),
    ]);
    const api = String(client.info.api);
    const clientStatus = `${api.replace(/\/v1$/, "")}/status`;
    const workerStatus = String(worker.info.status);
    await waitFor("both proxies linked to the client and serving the worker", async () => {
      const c = await json(clientStatus);
      const ps = await Promise.all(proxyStatus.map(json));
      const ok = c.peers.length === 2 && c.peers.every((p: any) => p.connected) && ps.every((p) => p.peers.workers.some((w: any) => w.id === "w1" && w.enabled));
      return ok ? true : undefined;
    }, START_MS);

    const outcomes: Outcome[] = [];
    const one = async (): Promise<void> => {
      const sentAt = Date.now();
      const res = await fetch(`${api}/chat/completions`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "alpha beta gamma" }], max_tokens: 6 }),
        signal: AbortSignal.timeout(30_000),
      });
      const body = (await res.json()) as any;
      outcomes.push({ sentAt, status: res.status, proxy: res.headers.get("x-cocoon-proxy"), cost: res.status === 200 ? BigInt(body.usage.total_cost) : 0n, ...(res.status === 200 ? {} : { error: body.error }) });
    };
    let running = true;
    const loops = Array.from({ length: CONCURRENCY }, async () => {
      while (running) await one();
    });
    await waitFor("answers through both proxies", async () => (contracts.every((c) => outcomes.some((o) => o.proxy === c && o.status === 200)) ? true : undefined), SETTLE_MS);
    await new Promise((r) => setTimeout(r, 300));
    const killedAt = Date.now();
    await proxies[0]!.r.stop("SIGKILL");
    await new Promise((r) => setTimeout(r, 2_000)); // load goes on through proxy 2 only
    running = false;
    await Promise.all(loops);

    const failed = outcomes.filter((o) => o.status !== 200);
    t.diagnostic(`${outcomes.length} requests, ${failed.length} failed (in flight through the killed proxy): ${JSON.stringify(failed.map((f) => f.error?.code))}`);
    // In flight through the dead proxy: a clean OpenAI error (JSON, a code), never a hang; at most one per loop.
    assert.ok(failed.length <= CONCURRENCY, `${failed.length} failures for ${CONCURRENCY} requests in flight`);
    for (const f of failed) {
      assert.ok(f.sentAt < killedAt, "only requests sent before the kill may fail");
      assert.equal(f.status, 502, show(f));
      assert.ok(f.error?.code && f.error.message, `a clean error body: ${show(f)}`);
    }
    const afterKill = outcomes.filter((o) => o.sentAt > killedAt + 50);
    assert.ok(afterKill.length >= CONCURRENCY, "the network kept serving after the kill");
    assert.ok(afterKill.every((o) => o.status === 200 && o.proxy === contracts[1]), "every request sent after the kill was served by the other proxy");

    // The dead proxy comes back on its ports and ledger; the client and the worker redial; then settlement runs.
    proxies[0] = await startProxy(0);
    await waitFor("the restarted proxy linked again", async () => ((await json(clientStatus)).peers.every((p: any) => p.connected) ? true : undefined), START_MS);

    const received = contracts.map((c) => outcomes.filter((o) => o.proxy === c).reduce((s, o) => s + o.cost, 0n));
    const snapshot = async (i: number) => {
      const [c, p, w, st, paid] = await Promise.all([
        json(clientStatus).then((s) => s.paymentsByProxy[contracts[i]!]),
        json(proxyStatus[i]!).then((s) => s.payments),
        json(workerStatus).then((s) => s.paymentsByProxy[contracts[i]!]),
        ton.channelState(chain!.boot.proxies[i]!.channel),
        ton.paidTo(chain!.boot.proxies[i]!.contract, chain!.boot.wallets.workers[0]!),
      ]);
      return { c, p, w, redeemed: st.redeemed, paid };
    };
    for (let i = 0; i < 2; i++) {
      let s = await snapshot(i);
      try {
        s = await waitFor(`proxy ${i + 1}: everything charged signed, redeemed and paid out`, async () => {
          const x = await snapshot(i);
          s = x;
          const charged = big(x.p.charged, "charged");
          const done = charged > 0n && big(x.c.signed, "client signed") === charged && big(x.p.signed, "proxy signed") === charged &&
            x.redeemed === charged && big(x.p.redeemed, "proxy redeemed") === charged && x.w && big(x.w.earned, "worker earned") === big(x.p.workersEarned, "workers earned") && x.paid === big(x.w.earned, "worker earned");
          return done ? x : undefined;
        }, SETTLE_MS);
      } catch (e) {
        throw new Error(`${(e as Error).message}: ${show({ received: received[i]!.toString(), client: s.c, proxy: { charged: s.p.charged, signed: s.p.signed, redeemed: s.p.redeemed, earned: s.p.workersEarned, fees: s.p.fees, writtenOff: s.p.writtenOff }, worker: s.w, onChain: { redeemed: s.redeemed.toString(), paid: s.paid.toString() } })}`);
      }
      const charged = big(s.p.charged, "charged");
      // The client paid this proxy for what it received through it, plus (for the killed one) the answers its worker
      // finished and receipted that never reached the client: reconciliation paid those after verifying each receipt.
      const reconciled = big(s.c.reconciliation.paidNano, "reconciled");
      assert.equal(big(s.c.spent, "client spent"), received[i]! + reconciled, `proxy ${i + 1}: client spent ${s.c.spent} != received ${received[i]} + reconciled ${reconciled}`);
      assert.equal(big(s.c.spent, "client spent"), charged, `proxy ${i + 1}: client spent ${s.c.spent} != proxy charged ${charged}`);
      assert.equal(big(s.p.fees, "fees") + big(s.p.workersEarned, "earned"), charged, `proxy ${i + 1}: fees + worker credit != charged`);
      assert.equal(big(s.p.writtenOff, "written off"), 0n, `proxy ${i + 1}: nothing disputed`);
      assert.ok(big(s.p.fees, "fees") * 10_000n >= charged * BigInt(feeBps) - 10_000n * 1_000n, "the fee is the root's share");
      if (i === 1) assert.equal(reconciled, 0n, "the proxy that never died needed no reconciliation");
      t.diagnostic(`proxy ${i + 1}: charged = signed = redeemed = ${charged} nanoTON (received ${received[i]}, reconciled ${reconciled}); worker ${s.w.earned}, fees ${s.p.fees}`);
    }
  } finally {
    await Promise.all([...live].map((r) => r.stop("SIGKILL")));
    await upstream?.close();
    await chain?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
