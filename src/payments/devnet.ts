/**
 * The devnet's money: starts the local chain in this process (state under `<dir>/chain`), sets up root, proxy
 * contracts and client channels (bootstrap.ts) with the embedded model's price and the sim image allow-listed, and
 * writes one payments config per role (`<dir>/<role>.payments.json`) for `--payments`: one per proxy
 * (`proxy.payments.json` for the first, `proxy-2.payments.json`, …), one per worker, the client's (every channel
 * listed: it pays each proxy from its own), and the root owner's (`owner.payments.json`, for `cocoon proxy register`).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { toNano } from "@ton/core";
import { startChainServer, type ChainServer } from "../chain/server.js";
import { makeTonClient } from "../chain/network.js";
import { DEFAULT_MODEL_FILE, sha256File } from "../worker/backends/embedded.js";
import { SIM_DEFAULT_MRTD, simImageDigest } from "../tee/sim.js";
import { bootstrapDevnetContracts, type BootstrapResult } from "./bootstrap.js";
import type { PaymentsConfigJson } from "./config.js";

/** The sim platform's 4 RTMRs of 48 zero bytes (what a default sim identity measures). */
const SIM_RTMR_COUNT = 4;
const SIM_MEASUREMENT_LEN = 48;

/** Devnet batching: redeem and sign payouts every 10 s, workers claim every 15 s (or at 0.5 TON). */
export const DEVNET_BATCH = {
  redeemThreshold: toNano("0.5").toString(),
  redeemIntervalMs: 10_000,
  payoutThreshold: toNano("0.5").toString(),
  payoutIntervalMs: 10_000,
  claimThreshold: toNano("0.5").toString(),
  claimIntervalMs: 15_000,
};

export interface DevnetChainOptions {
  dir: string;
  workers: number;
  /** Proxies to set up (default 1). */
  proxies?: number;
  modelFile?: string;
  deposit?: bigint;
  progress?: (line: string) => void;
}

export interface DevnetChain {
  server: ChainServer;
  boot: BootstrapResult;
  model: { name: string; digest: string };
  /** Payments config files: proxy (the first), every proxy, workers (by index), client, the root owner. */
  files: { proxy: string; proxies: string[]; workers: string[]; client: string; owner: string };
  close(): Promise<void>;
}

export function simDefaultImageDigest(): string {
  return simImageDigest({ mrtd: SIM_DEFAULT_MRTD, rtmr: Array.from({ length: SIM_RTMR_COUNT }, () => Buffer.alloc(SIM_MEASUREMENT_LEN)) });
}

export async function startDevnetChain(o: DevnetChainOptions): Promise<DevnetChain> {
  mkdirSync(o.dir, { recursive: true });
  const file = o.modelFile ?? DEFAULT_MODEL_FILE;
  const [server, digest] = await Promise.all([startChainServer({ port: 0, dataDir: join(o.dir, "chain") }), sha256File(file)]);
  try {
    const model = { name: basename(file).replace(/\.gguf$/i, ""), digest };
    const client = makeTonClient("devnet", server.url, {});
    const boot = await bootstrapDevnetContracts({
      client, endpoint: server.url, models: { [model.name]: digest }, images: [simDefaultImageDigest()],
      workers: o.workers, proxies: o.proxies ?? 1, deposit: o.deposit ?? toNano("100"), progress: o.progress,
    });
    const base = { network: "devnet" as const, endpoint: server.url, root: boot.root.toString(), proxyContract: boot.proxyContract.toString(), models: { [model.name]: digest }, batch: DEVNET_BATCH };
    const write = (name: string, cfg: PaymentsConfigJson) => {
      const path = join(o.dir, `${name}.payments.json`);
      writeFileSync(path, JSON.stringify(cfg, null, 2) + "\n", { mode: 0o600 });
      return path;
    };
    const proxies = boot.proxies.map((p, i) => {
      const name = i === 0 ? "proxy" : `proxy-${i + 1}`;
      return write(name, { ...base, proxyContract: p.contract.toString(), wallet: { seed: p.operatorSeed }, ledger: `${name}.ledger.sqlite` });
    });
    const files = {
      proxy: proxies[0]!,
      proxies,
      workers: boot.seeds.workers.map((seed, i) => write(`worker-${i + 1}`, { ...base, wallet: { seed }, ledger: `worker-${i + 1}.ledger.sqlite` })),
      client: write("client", {
        ...base, wallet: { seed: boot.seeds.client }, ledger: "client.ledger.sqlite", channel: boot.channel.toString(),
        ...(boot.proxies.length > 1 ? { channels: boot.proxies.map((p) => p.channel.toString()) } : {}),
      }),
      owner: write("owner", { ...base, wallet: { seed: boot.seeds.owner }, ledger: "owner.ledger.sqlite" }),
    };
    return { server, boot, model, files, close: () => server.close() };
  } catch (e) {
    await server.close();
    throw e;
  }
}
