// Acceptance check: killing (SIGKILL, no clean shutdown) and restarting each process of a paid network mid-run
// loses no voucher and pays nothing twice. Real processes (`cocoon proxy|worker|client --payments FILE`) on the
// devnet's chain (in this test process), a worker on an OpenAI-compatible fake engine, and short batch timers so
// that redemptions, payout vouchers and claims happen during the run, and therefore around the kills.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toNano } from "@ton/core";
import { startDevnetChain, type DevnetChain } from "../../src/payments/devnet.js";
import { loadPaymentsConfig } from "../../src/payments/config.js";
import { makeTonClient } from "../../src/chain/network.js";
import { TonAccess } from "../../src/payments/ton.js";
import { Ledger } from "../../src/payments/ledger.js";
import { workerShare } from "../../src/payments/pricing.js";
import { startFakeUpstream, type FakeUpstream } from "../../src/dev/fake-upstream.js";
import { startRole, waitFor, type RoleProcess } from "../helpers/processes.js";
import { freePorts, paidChat, paymentsStatus, setBatch, type PaidAnswer } from "../helpers/payments-processes.js";

/** The devnet names the model after its file; the fake engine serves the same name, so the root prices it. */
const MODEL = "kill-restart-model";
const WORKER_NAME = "w1";
const MAX_TOKENS = 6;
/** Timers short enough that settlement runs between (and across) the kills; thresholds out of reach. */
const TIMER_MS = 600;
const NEVER = toNano("1000").toString();
const BATCH = {
  redeemThreshold: NEVER, redeemIntervalMs: TIMER_MS,
  payoutThreshold: NEVER, payoutIntervalMs: TIMER_MS,
  claimThreshold: NEVER, claimIntervalMs: TIMER_MS,
};
/** Bounds on waits (a loaded 2-core machine starts a tsx process in a few seconds). */
const START_MS = 40_000;
const SETTLE_MS = 25_000;

const big = (v: unknown, what: string): bigint => {
  if (typeof v !== "string" || !/^[0-9]+$/.test(v)) throw new Error(`${what} should be a decimal string, got ${JSON.stringify(v)}`);
  return BigInt(v);
};
const sum = (xs: bigint[]) => xs.reduce((s, x) => s + x, 0n);

test("SIGKILL and restart of client, proxy and worker mid-run: no voucher lost, nothing redeemed or paid twice", { timeout: 150_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-kill-restart-"));
  const modelFile = join(dir, `${MODEL}.gguf`);
  writeFileSync(modelFile, randomBytes(64)); // only its digest matters: the root prices it
  const live = new Set<RoleProcess>();
  let chain: DevnetChain | undefined;
  let upstream: FakeUpstream | undefined;
  try {
    chain = await startDevnetChain({ dir, workers: 1, modelFile, deposit: toNano("5") });
    assert.equal(chain.model.name, MODEL);
    for (const f of [chain.files.proxy, chain.files.workers[0]!, chain.files.client]) setBatch(f, BATCH);
    assert.ok(MODEL in loadPaymentsConfig(chain.files.proxy).models, "the proxy's config prices the model");
    upstream = await startFakeUpstream({ model: MODEL, tokens: MAX_TOKENS });
    const ton = new TonAccess(makeTonClient("devnet", chain.server.url, {}), "devnet");
    const { channel, proxyContract } = chain.boot;
    const workerWallet = chain.boot.wallets.workers[0]!;
    const feeBps = chain.boot.params.proxyFeeBps;

    // Fixed ports, so that the restarted proxy is where the worker and the client keep dialing.
    const [workerPort, clientPort, statusPort] = await freePorts(3);
    const role = async (args: string[]) => {
      const r = startRole(args);
      live.add(r);
      r.proc.once("exit", () => live.delete(r));
      const info = await Promise.race([
        r.ready,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`cocoon ${args[0]} not ready within ${START_MS} ms:\n${r.output()}`)), START_MS).unref()),
      ]);
      return { r, info };
    };
    const startProxy = () =>
      role(["proxy", "--worker-port", String(workerPort), "--client-port", String(clientPort), "--status-port", String(statusPort), "--payments", chain!.files.proxy]);
    const startWorker = () =>
      role(["worker", "--proxy", `127.0.0.1:${workerPort}`, "--backend", "openai", "--upstream", upstream!.url, "--model", MODEL, "--name", WORKER_NAME, "--status-port", "0", "--payments", chain!.files.workers[0]!]);
    const startClient = () => role(["client", "--port", "0", "--proxy", `127.0.0.1:${clientPort}`, "--payments", chain!.files.client]);
    const kill = async (r: RoleProcess) => {
      await r.stop("SIGKILL");
      assert.equal(r.proc.signalCode, "SIGKILL", "the process died by SIGKILL (no clean shutdown)");
    };

    let proxy = await startProxy();
    const proxyStatus = String(proxy.info.status);
    let [worker, client] = await Promise.all([startWorker(), startClient()]);
    const clientStatus = () => `${String(client.info.api).replace(/\/v1$/, "")}/status`;
    const workerStatus = () => String(worker.info.status);
    /** Ready to serve a paid request: the proxy (this process of it) lists the current client and worker w1. */
    const serving = (what: string) =>
      waitFor(what, async () => {
        const cst = (await (await fetch(clientStatus(), { signal: AbortSignal.timeout(3_000) })).json()) as { id: string; peers: { connected: boolean }[] };
        const pst = (await (await fetch(proxyStatus, { signal: AbortSignal.timeout(3_000) })).json()) as { peers: { clients: { id: string }[]; workers: { id: string; enabled: boolean; models: string[] }[] } };
        const clientIn = cst.peers[0]?.connected && pst.peers.clients.some((c) => c.id === cst.id);
        const workerIn = pst.peers.workers.some((w) => w.id === WORKER_NAME && w.enabled && w.models.includes(MODEL));
        return clientIn && workerIn ? true : undefined;
      }, START_MS);
    const proxyWorkers = async () => ((await (await fetch(proxyStatus)).json()) as { peers: { workers: unknown[] } }).peers.workers.length;

    const answers: PaidAnswer[] = [];
    const batch = async (label: string, n: number) => {
      for (let i = 0; i < n; i++) {
        const a = await paidChat(String(client.info.api), MODEL, `${label} ${i} alpha beta gamma`, MAX_TOKENS);
        assert.ok(a.totalCost > 0n, `request "${label} ${i}" was priced (total_cost ${a.totalCost})`);
        answers.push(a);
      }
    };
    const costs = () => sum(answers.map((a) => a.totalCost));

    await serving("the first worker to join");
    await batch("before any kill", 4).catch((e: Error) => {
      throw new Error(`${e.message}\n--- client ---\n${client.r.output().slice(-3000)}\n--- proxy ---\n${proxy.r.output().slice(-3000)}`);
    });

    // 1. The client dies right after its last answer: that answer's voucher is signed in its ledger but not yet
    //    handed to the proxy (the client flushes 200 ms after an answer). The restarted client must hand it over.
    await kill(client.r);
    const ackedAtKill = big((await paymentsStatus(proxyStatus)).signed, "proxy signed");
    t.diagnostic(`client killed: the proxy held a voucher for ${ackedAtKill} of ${costs()} nanoTON${ackedAtKill < costs() ? " (the newest voucher existed only in the client's ledger)" : ""}`);
    client = await startClient();
    const cs = await paymentsStatus(clientStatus());
    assert.equal(big(cs.spent, "client spent"), costs(), `after the client's restart: client spent ${cs.spent} != sum of total_cost ${costs()}`);
    assert.equal(big(cs.signed, "client signed"), costs(), `after the client's restart: client signed ${cs.signed} != sum of total_cost ${costs()}`);
    await serving("the restarted client to reach the worker");
    await waitFor("the proxy to hold the restarted client's newest voucher", async () => {
      const ps = await paymentsStatus(proxyStatus);
      return big(ps.signed, "proxy signed") === costs() ? true : undefined;
    }, SETTLE_MS).catch(async (e) => {
      throw new Error(`${(e as Error).message}; proxy signed ${(await paymentsStatus(proxyStatus)).signed}, client signed ${costs()}; client payments ${JSON.stringify(await paymentsStatus(clientStatus()))}\n--- client ---\n${client.r.output().slice(-3000)}\n--- proxy ---\n${proxy.r.output().slice(-3000)}`);
    });
    await batch("after client restart", 3);

    // 2. The proxy dies right after an answer (its receipt is charged; the client's voucher may still be on the way,
    //    a redeem may be in flight). It comes back on the same ports and ledger; worker and client redial by themselves.
    await kill(proxy.r);
    {
      const l = Ledger.open(loadPaymentsConfig(chain.files.proxy).ledger);
      try {
        const u = l.unsettledChannels()[0];
        t.diagnostic(`proxy killed: charged ${l.totals().spent}, newest client voucher ${u?.signed}, redeemed ${u?.settled} (+${u?.pending} pending) of ${costs()}`);
      } finally {
        l.close();
      }
    }
    proxy = await startProxy();
    const ps = await paymentsStatus(proxyStatus);
    assert.equal(big(ps.charged, "proxy charged"), costs(), `after the proxy's restart: proxy charged ${ps.charged} != sum of total_cost ${costs()}`);
    await serving("worker and client to reconnect to the restarted proxy");
    await batch("after proxy restart", 3);

    // 3. The worker dies right after an answer, before its earnings of the last requests are in a payout voucher:
    //    the proxy signs that voucher while the worker is away and must deliver it when the worker is back.
    await kill(worker.r);
    await waitFor("the proxy to notice the killed worker", async () => ((await proxyWorkers()) === 0 ? true : undefined), SETTLE_MS);
    // Let the payout timer run while the worker is away (a voucher signed now cannot be delivered now).
    await waitFor("a payout voucher for all earnings so far", async () => {
      const w = (await paymentsStatus(proxyStatus)).workers?.[0];
      return w && w.voucher === w.earned ? true : undefined;
    }, SETTLE_MS);
    const signedWhileAway = /payout voucher waits for its return/.test(proxy.r.output());
    t.diagnostic(`worker killed: ${signedWhileAway ? "a payout voucher was signed while it was away" : "its payout voucher was already signed before the kill"}`);
    worker = await startWorker();
    await serving("the restarted worker to join");
    await waitFor("the restarted worker to hold the proxy's newest payout voucher", async () => {
      const [w, p] = await Promise.all([paymentsStatus(workerStatus()), paymentsStatus(proxyStatus)]);
      return w.earned === p.workers?.[0]?.voucher ? true : undefined;
    }, SETTLE_MS).catch(async (e) => {
      const [w, p] = await Promise.all([paymentsStatus(workerStatus()), paymentsStatus(proxyStatus)]);
      throw new Error(`${(e as Error).message}: worker's newest voucher (earned) ${w.earned}, proxy's newest payout voucher ${p.workers?.[0]?.voucher}; a voucher signed while the worker was away was never delivered\n--- proxy log (tail) ---\n${proxy.r.output().slice(-2_000)}`);
    });
    await batch("after worker restart", 3);

    // Settlement: the timers redeem, sign payouts and claim. Wait (bounded) until everything signed is on chain.
    const total = costs();
    const shares = sum(answers.map((a) => workerShare(a.totalCost, feeBps)));
    const snapshot = async () => {
      const [c, p, w, st, paid, vault] = await Promise.all([
        paymentsStatus(clientStatus()), paymentsStatus(proxyStatus), paymentsStatus(workerStatus()),
        ton.channelState(channel), ton.paidTo(proxyContract, workerWallet), ton.proxyState(proxyContract),
      ]);
      return { c, p, w, redeemed: st.redeemed, paid, vault };
    };
    let s = await snapshot();
    try {
      s = await waitFor("settlement on chain", async () => {
        const x = await snapshot();
        // The chain first; the roles' ledgers confirm a moment after the transaction applies.
        const done = x.redeemed === total && x.paid === shares && big(x.c.acknowledgedByProxy, "client acknowledgedByProxy") === total &&
          big(x.p.redeemed, "proxy redeemed") === x.redeemed && big(x.w.paid, "worker paid") === x.paid && x.w.earned === x.p.workers?.[0]?.voucher;
        s = x;
        return done ? x : undefined;
      }, SETTLE_MS);
    } catch (e) {
      throw new Error(`${(e as Error).message}: sum of total_cost ${total}, on-chain redeemed ${s.redeemed}, proxy ledger redeemed ${s.p.redeemed}, client signed ${s.c.signed} (proxy acknowledged ${s.c.acknowledgedByProxy}); worker share ${shares}, on-chain paid ${s.paid}, worker status paid ${s.w.paid}, worker voucher ${s.w.earned}, proxy's payout voucher ${s.p.workers?.[0]?.voucher}`);
    }
    const { c, p, w } = s;

    // Nothing lost: every answer's cost is in the client's spent and signed, and in the proxy's charged.
    assert.equal(big(c.spent, "client spent"), total, `client spent ${c.spent} != sum of ${answers.length} recorded total_cost ${total}`);
    assert.equal(big(c.signed, "client signed"), total, `client's last signed cumulative ${c.signed} != client spent ${total}`);
    assert.equal(big(p.charged, "proxy charged"), total, `proxy charged ${p.charged} != sum of total_cost ${total}`);
    assert.equal(big(p.signed, "proxy signed"), total, `proxy's newest client voucher ${p.signed} != client's last signed ${total}`);
    // Never redeemed more than signed, nothing twice.
    assert.equal(s.redeemed, big(c.signed, "client signed"), `on-chain channel redeemed ${s.redeemed} != client's last signed cumulative ${c.signed}`);
    assert.equal(big(p.redeemed, "proxy redeemed"), s.redeemed, `proxy ledger redeemed ${p.redeemed} != on-chain channel redeemed ${s.redeemed}`);
    // The split: proxy fees + worker earnings = charged, and the worker's part is exactly its share of each answer.
    assert.equal(big(p.fees, "proxy fees") + big(p.workersEarned, "workers earned"), total, `proxy fees ${p.fees} + workers earned ${p.workersEarned} != charged ${total}`);
    assert.equal(big(p.workersEarned, "workers earned"), shares, `proxy's workersEarned ${p.workersEarned} != sum of per-answer worker shares ${shares} (fee ${feeBps} bps)`);
    // The worker: paid on chain = the payout voucher it was given = what it earned, claimed once.
    const pw = p.workers?.find((x: { id: string }) => x.id === WORKER_NAME);
    assert.ok(pw, `the proxy lists worker ${WORKER_NAME} (workers: ${JSON.stringify(p.workers)})`);
    assert.equal(big(pw.voucher, "proxy's payout voucher"), shares, `proxy's newest payout voucher ${pw.voucher} != worker earnings ${shares}`);
    assert.equal(big(w.earned, "worker earned"), big(pw.voucher, "proxy's payout voucher"), `worker's newest voucher ${w.earned} != proxy's newest payout voucher ${pw.voucher}`);
    assert.equal(s.paid, big(w.earned, "worker earned"), `on-chain paid to the worker ${s.paid} != its newest payout voucher ${w.earned}`);
    assert.equal(big(w.paid, "worker paid"), s.paid, `worker status paid ${w.paid} != on-chain paid ${s.paid}`);
    assert.equal(s.vault.totalPaidOut, s.paid, `proxy contract paid out ${s.vault.totalPaidOut} != paid to its only worker ${s.paid} (a claim paid twice?)`);

    // A few more timer rounds change nothing on chain (no repeated redeem or claim).
    await new Promise((r) => setTimeout(r, 3 * TIMER_MS));
    const after = await snapshot();
    assert.equal(after.redeemed, s.redeemed, `channel redeemed moved from ${s.redeemed} to ${after.redeemed} with nothing new signed`);
    assert.equal(after.paid, s.paid, `paid to the worker moved from ${s.paid} to ${after.paid} with no new voucher`);
    assert.equal(after.vault.totalPaidOut, s.vault.totalPaidOut, `proxy contract paid out moved from ${s.vault.totalPaidOut} to ${after.vault.totalPaidOut}`);

    // The ledgers: one receipt per answer on each side, and no settlement left pending.
    for (const r of [...live]) await r.stop("SIGTERM");
    const cfgs = { client: loadPaymentsConfig(chain.files.client), proxy: loadPaymentsConfig(chain.files.proxy) };
    for (const [name, cfg] of Object.entries(cfgs)) {
      const l = Ledger.open(cfg.ledger);
      try {
        assert.equal(l.countReceipts(), answers.length, `${name} ledger holds ${l.countReceipts()} receipts for ${answers.length} answers`);
        assert.equal(l.totals().spent, total, `${name} ledger spent ${l.totals().spent} != sum of total_cost ${total}`);
        assert.deepEqual(l.pendingSettlements().map((x) => x.txHash), [], `${name} ledger has settlements still pending`);
      } finally {
        l.close();
      }
    }
    const pl = Ledger.open(cfgs.proxy.ledger);
    try {
      assert.equal(pl.totals().redeemed, s.redeemed, `proxy ledger's confirmed redeems ${pl.totals().redeemed} != on-chain redeemed ${s.redeemed}`);
    } finally {
      pl.close();
    }
  } finally {
    await Promise.all([...live].map((r) => r.stop("SIGKILL")));
    await upstream?.close();
    await chain?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
