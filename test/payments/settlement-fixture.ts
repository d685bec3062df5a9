// Test fixture: a local chain (in process, over HTTP like the devnet), the contracts set up by the devnet's
// bootstrap, and the three payment hooks built from payments configs, plugged into the in-process test network.
import { createHash } from "node:crypto";
import { toNano } from "@ton/core";
import { startChainServer, type ChainServer } from "../../src/chain/server.js";
import { makeTonClient } from "../../src/chain/network.js";
import { bootstrapDevnetContracts, type BootstrapResult } from "../../src/payments/bootstrap.js";
import { parsePaymentsConfig, type PaymentsConfig } from "../../src/payments/config.js";
import { startClientPayments, startProxyPayments, startWorkerPayments } from "../../src/payments/setup.js";
import { TonAccess } from "../../src/payments/ton.js";
import { startTestNetwork, type TestNetwork, type TestNetworkOptions } from "../helpers/network.js";
import type { FakeUpstreamOptions } from "../../src/dev/fake-upstream.js";
import type { ProxyMeter } from "../../src/payments/proxy-meter.js";
import type { ClientPayer } from "../../src/payments/client-payer.js";
import type { WorkerPayee } from "../../src/payments/worker-payee.js";

export const MODEL = "fake-model";
export const DIGEST = createHash("sha256").update("fake-model weights").digest("hex");
export const CLIENT_ID = "paying-client";

export interface Chain {
  srv: ChainServer;
  ton: TonAccess;
  boot: BootstrapResult;
  configs: { proxy: PaymentsConfig; worker: PaymentsConfig; client: PaymentsConfig };
}

/** Long timers: tests flush explicitly, so the counts they check are exact. */
const QUIET_BATCH = { redeemIntervalMs: 3_600_000, payoutIntervalMs: 3_600_000, claimIntervalMs: 3_600_000 };

export async function startChain(dir: string, deposit = toNano("2")): Promise<Chain> {
  const srv = await startChainServer({ port: 0 });
  const client = makeTonClient("devnet", srv.url, {});
  const boot = await bootstrapDevnetContracts({ client, endpoint: srv.url, models: { [MODEL]: DIGEST }, workers: 1, deposit });
  const base = { network: "devnet", endpoint: srv.url, root: boot.root.toString(), proxyContract: boot.proxyContract.toString(), models: { [MODEL]: DIGEST } };
  const cfg = (seed: string, ledger: string, extra: Record<string, unknown> = {}) =>
    parsePaymentsConfig({ ...base, wallet: { seed }, ledger, batch: { ...QUIET_BATCH, redeemThreshold: "1000000000000", payoutThreshold: "1000000000000", claimThreshold: "1000000000000" }, ...extra }, dir);
  return {
    srv,
    ton: new TonAccess(client, "devnet"),
    boot,
    configs: {
      proxy: cfg(boot.seeds.operator, "proxy.sqlite"),
      worker: cfg(boot.seeds.workers[0]!, "worker.sqlite"),
      client: cfg(boot.seeds.client, "client.sqlite", { channel: boot.channel.toString() }),
    },
  };
}

export interface PaidNetwork {
  net: TestNetwork;
  meter: ProxyMeter;
  payee: WorkerPayee;
  payer: ClientPayer;
}

export async function startPaidNetwork(chain: Chain, o: { upstream?: FakeUpstreamOptions; tap?: TestNetworkOptions["tap"]; tamper?: TestNetworkOptions["tamper"]; priceCoefficient?: number } = {}): Promise<PaidNetwork> {
  const meter = await startProxyPayments(chain.configs.proxy);
  const payee = await startWorkerPayments(chain.configs.worker, {});
  const payer = await startClientPayments(chain.configs.client, CLIENT_ID);
  const net = await startTestNetwork([o.upstream ?? {}], { meter, payer, clientId: CLIENT_ID, payees: [payee], ...(o.tap ? { tap: o.tap } : {}), ...(o.tamper ? { tamper: o.tamper } : {}), ...(o.priceCoefficient ? { priceCoefficients: [o.priceCoefficient] } : {}) });
  // Ready when the client's channel is registered with the proxy.
  for (let i = 0; i < 250 && (meter.status().channels as unknown[]).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  return { net, meter, payee, payer };
}

export async function chatJson(url: string, content: string, extra: Record<string, unknown> = {}): Promise<{ status: number; body: any }> {
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content }], max_tokens: 20, ...extra }),
  });
  return { status: r.status, body: await r.json() };
}

/** A streamed request with include_usage: returns the usage of the final chunk. */
export async function chatStreamUsage(url: string, content: string): Promise<Record<string, number>> {
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content }], max_tokens: 20, stream: true, stream_options: { include_usage: true } }),
  });
  const text = await r.text();
  const events = text.split("\n\n").filter((e) => e.startsWith("data: ") && !e.includes("[DONE]")).map((e) => JSON.parse(e.slice(6)));
  const last = events.at(-1);
  if (!last?.usage) throw new Error(`no usage in the stream: ${text.slice(-300)}`);
  return last.usage;
}
