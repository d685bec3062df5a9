// Chain costs: gas and fees per operation (from bench/gas.ts, measured in @ton/sandbox), and how many on-chain
// transactions a batch of N requests needs when every request is paid by an off-chain cumulative voucher and the
// batch is settled with one redeem (client -> proxy) and one payout (proxy -> worker).
import { toNano, type Transaction } from "@ton/core";
import { RootContract } from "../src/chain/contracts/RootContract.js";
import { ProxyContract } from "../src/chain/contracts/ProxyContract.js";
import { ClientChannel } from "../src/chain/contracts/ClientChannel.js";
import { signVoucher, verifyVoucherSignature } from "../src/chain/vouchers.js";
import { MAINNET_GLOBAL_ID } from "../src/chain/network.js";
import { BENCH_ROOT_PARAMS, sandboxParties, seed, TON } from "./lib/sandbox.js";

/** Price of one request in the simulation (nanoTON) and the worker's share. */
const PRICE_PER_REQUEST = 1_000_000n;
const WORKER_SHARE_PER_REQUEST = 800_000n;

export interface GasRow {
  op: string;
  contract: string;
  gas: bigint;
  fee: bigint;
  total: bigint;
}

export interface BatchResult {
  requests: number;
  /** Vouchers signed and verified off chain (one per request). */
  offChainVouchers: number;
  /** Transactions of the settlement (redeem + payout message chains). */
  settlementTxs: number;
  /** Transactions per 1,000 requests. */
  txsPer1000: number;
  /** Fees of the whole settlement (nanoTON). */
  fees: bigint;
  /** Accounts (channel, proxy, client, operator, worker) whose last transaction changed while requests ran, per request. */
  txsPerRequest: number;
}

export async function gasRows(): Promise<GasRow[]> {
  const gas = await import("./gas.js");
  return gas.rows;
}

const txCount = (r: { transactions: unknown[] }) => r.transactions.length;
const feesOf = (r: { transactions: unknown[] }) => (r.transactions as Transaction[]).reduce((s, t) => s + t.totalFees.coins, 0n);

/** Runs `n` requests' payments against a fresh sandbox chain and counts what reached the chain. */
export async function settleBatch(n: number): Promise<BatchResult> {
  const { bc, owner, operator, client, worker, clientKey, proxyKey } = await sandboxParties("bench");
  const root = bc.openContract(RootContract.createFromConfig({ owner: owner.address, params: BENCH_ROOT_PARAMS, globalId: MAINNET_GLOBAL_ID }));
  await root.sendDeploy(owner.getSender(), toNano("1"));
  const proxy = bc.openContract(ProxyContract.createFromConfig({ owner: operator.address, root: root.address, signingKey: proxyKey.publicKey, minStake: 10n * TON, unstakeDelay: 86400, globalId: MAINNET_GLOBAL_ID }));
  await proxy.sendDeploy(operator.getSender(), 10n * TON);
  const deposit = PRICE_PER_REQUEST * BigInt(n) + 2n * TON;
  const channel = bc.openContract(
    ClientChannel.createFromConfig({ client: client.address, clientKey: clientKey.publicKey, proxyOperator: operator.address, proxyVault: proxy.address, closeDelay: 3600, nonce: 1n, globalId: MAINNET_GLOBAL_ID }),
  );
  await channel.sendDeploy(client.getSender(), deposit);

  // Per request: the client signs the next cumulative voucher, the proxy checks it; nothing is sent to the chain.
  let payment = signVoucher({ kind: "payment", globalId: MAINNET_GLOBAL_ID, channel: channel.address, cumulative: 0n }, clientKey);
  let payout = signVoucher({ kind: "payout", globalId: MAINNET_GLOBAL_ID, proxy: proxy.address, worker: worker.address, cumulative: 0n }, proxyKey);
  const watched = [channel.address, proxy.address, client.address, operator.address, worker.address];
  const lastLts = async () => Promise.all(watched.map(async (a) => (await bc.getContract(a)).lastTransactionLt));
  const before = await lastLts();
  for (let i = 1; i <= n; i++) {
    payment = signVoucher({ kind: "payment", globalId: MAINNET_GLOBAL_ID, channel: channel.address, cumulative: PRICE_PER_REQUEST * BigInt(i) }, clientKey);
    if (!verifyVoucherSignature(payment.cell, payment.signature, clientKey.publicKey)) throw new Error(`voucher ${i} did not verify`);
    payout = signVoucher({ kind: "payout", globalId: MAINNET_GLOBAL_ID, proxy: proxy.address, worker: worker.address, cumulative: WORKER_SHARE_PER_REQUEST * BigInt(i) }, proxyKey);
  }
  const after = await lastLts();
  const accountsTouched = after.filter((lt, i) => lt !== before[i]).length;
  // Settlement: one redeem of the latest client voucher, one payout claim of the latest proxy voucher.
  const redeem = await channel.sendRedeem(operator.getSender(), payment);
  const claim = await proxy.sendClaimPayout(worker.getSender(), payout);
  const settlementTxs = txCount(redeem) + txCount(claim);
  const workerBalance = (await bc.getContract(worker.address)).balance;
  if (workerBalance <= 0n) throw new Error("the payout did not reach the worker");
  return {
    requests: n,
    offChainVouchers: n,
    settlementTxs,
    txsPer1000: (settlementTxs * 1000) / n,
    fees: feesOf(redeem) + feesOf(claim),
    txsPerRequest: accountsTouched / n,
  };
}
