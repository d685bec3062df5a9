/**
 * Gas and fees of every Cocoon contract operation, measured in @ton/sandbox with its default (mainnet)
 * configuration. Prints a Markdown table and writes it to docs/gas.md.
 *   node --import tsx bench/gas.ts
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Address, fromNano, toNano, type Transaction } from "@ton/core";
import type { SendMessageResult } from "@ton/sandbox";
import { flattenTransaction } from "@ton/test-utils";
import { RootContract, ImageKind } from "../src/chain/contracts/RootContract.js";
import { ProxyContract } from "../src/chain/contracts/ProxyContract.js";
import { ClientChannel } from "../src/chain/contracts/ClientChannel.js";
import { signVoucher } from "../src/chain/vouchers.js";
import { BENCH_NOW, BENCH_ROOT_PARAMS, sandboxParties, seed, TON } from "./lib/sandbox.js";
import { loadContract } from "../src/chain/compile.js";
import { MAINNET_GLOBAL_ID } from "../src/chain/network.js";
import { describeExitCode } from "../src/chain/contracts/errors.js";


export interface Row { op: string; contract: string; gas: bigint; fee: bigint; total: bigint }
/** Every measured operation, in order (filled when this module is imported). */
export const rows: Row[] = [];

function gasOf(tx: Transaction): bigint {
  const d = tx.description;
  if (d.type !== "generic" || d.computePhase.type !== "vm") return 0n;
  return d.computePhase.gasUsed;
}

/** Records the transaction on `at` (the first one, or the bounce/second one with `nth`) and the total fees of the operation. */
function record(op: string, contract: string, res: SendMessageResult, at: Address, nth = 0): void {
  const txs = (res.transactions as Transaction[]).filter((t) => flattenTransaction(t).on?.equals(at));
  const tx = txs[nth];
  if (!tx) throw new Error(`${op}: no transaction on ${contract}`);
  const flat = flattenTransaction(tx);
  if (!flat.success) throw new Error(`${op}: failed with ${describeExitCode(flat.exitCode ?? -1)}`);
  const total = (res.transactions as Transaction[]).reduce((s, t) => s + t.totalFees.coins, 0n);
  rows.push({ op, contract, gas: gasOf(tx), fee: tx.totalFees.coins, total });
}

const { bc, owner, operator, client, worker, clientKey, proxyKey } = await sandboxParties("gas");
const worker2 = await bc.treasury("worker2");
const newOwner = await bc.treasury("new owner");
const globalId = MAINNET_GLOBAL_ID;

// root
const root = bc.openContract(RootContract.createFromConfig({
  owner: owner.address,
  params: BENCH_ROOT_PARAMS,
  globalId,
}));
record("deploy root", "root", await root.sendDeploy(owner.getSender(), toNano("1")), root.address);
record("set params", "root", await root.sendSetParams(owner.getSender(), { proxyFeeBps: 400, clientCloseDelay: 3600, proxyUnstakeDelay: 86400, minProxyStake: 10n * TON, minClientDeposit: TON }), root.address);
record("set model price", "root", await root.sendSetModel(owner.getSender(), seed("model"), { promptPrice: 20n, completionPrice: 60n }), root.address);
record("allow worker image", "root", await root.sendSetImage(owner.getSender(), ImageKind.WORKER, seed("img"), true), root.address);

// proxy and channel
const registration = { owner: operator.address, minStake: 10n * TON, unstakeDelay: 86400 };
const proxy = bc.openContract(ProxyContract.createFromConfig({ ...registration, root: root.address, signingKey: proxyKey.publicKey, globalId }));
record("deploy proxy + stake", "proxy", await proxy.sendDeploy(operator.getSender(), 10n * TON + toNano("0.01")), proxy.address);
const proxyInfo = { signingKey: proxyKey.publicKey, identityKey: seed("id"), endpoint: "203.0.113.5:11002" };
record("register proxy (root computes its address)", "root", await root.sendRegisterProxy(owner.getSender(), registration, proxyInfo), root.address);
const attested = await root.sendRegisterProxy(owner.getSender(), registration, proxyInfo, { keyAttested: true });
record("register proxy, key attested", "root", attested, root.address);
record("register: key approved", "proxy", attested, proxy.address);
const chCfg = { client: client.address, clientKey: clientKey.publicKey, proxyOperator: operator.address, proxyVault: proxy.address, closeDelay: 3600, nonce: 1n, globalId };
const channel = bc.openContract(ClientChannel.createFromConfig(chCfg));
record("deploy channel + deposit", "channel", await channel.sendDeploy(client.getSender(), 20n * TON), channel.address);
record("top-up", "channel", await channel.sendTopUp(client.getSender(), 5n * TON), channel.address);
const redeem = await channel.sendRedeem(operator.getSender(), signVoucher({ kind: "payment", globalId, channel: channel.address, cumulative: 10n * TON }, clientKey));
record("redeem voucher", "channel", redeem, channel.address);
record("redeem: income arrives", "proxy", redeem, proxy.address);
record("payout (worker's first)", "proxy", await proxy.sendClaimPayout(worker.getSender(), signVoucher({ kind: "payout", globalId, proxy: proxy.address, worker: worker.address, cumulative: 2n * TON }, proxyKey)), proxy.address);
record("payout (next voucher)", "proxy", await proxy.sendClaimPayout(worker.getSender(), signVoucher({ kind: "payout", globalId, proxy: proxy.address, worker: worker.address, cumulative: 3n * TON }, proxyKey)), proxy.address);
await proxy.sendClaimPayout(worker2.getSender(), signVoucher({ kind: "payout", globalId, proxy: proxy.address, worker: worker2.address, cumulative: 1n * TON }, proxyKey));
record("withdraw fee", "proxy", await proxy.sendWithdrawFee(operator.getSender(), 1n * TON), proxy.address);
record("start close (client)", "channel", await channel.sendStartClose(client.getSender()), channel.address);
bc.now = BENCH_NOW + 3600;
record("finish close", "channel", await channel.sendFinishClose(client.getSender()), channel.address);
const channel2 = bc.openContract(ClientChannel.createFromConfig({ ...chCfg, nonce: 2n }));
await channel2.sendDeploy(client.getSender(), 5n * TON);
record("cooperative close", "channel", await channel2.sendCooperativeClose(operator.getSender(), signVoucher({ kind: "close", globalId, channel: channel2.address, cumulative: 1n * TON }, clientKey)), channel2.address);
record("top-up of a closed channel (returned)", "channel", await channel.sendTopUp(client.getSender(), 1n * TON), channel.address);
record("transfer ownership (propose)", "root", await root.sendTransferOwnership(owner.getSender(), newOwner.address), root.address);
record("accept ownership", "root", await root.sendAcceptOwnership(newOwner.getSender()), root.address);
record("start unstake", "proxy", await proxy.sendStartUnstake(operator.getSender()), proxy.address);
bc.now = BENCH_NOW + 3600 + 86400;
record("finish unstake", "proxy", await proxy.sendFinishUnstake(operator.getSender()), proxy.address);

const sizes = (["root", "client_channel", "proxy"] as const).map((n) => `${n} ${loadContract(n).code.toBoc().length} B`).join(", ");
const lines = [
  "# Gas and fees of the Cocoon contracts",
  "",
  "Generated by `node --import tsx bench/gas.ts` (do not edit by hand). Measured in `@ton/sandbox` 0.41 with its",
  "default configuration (mainnet prices, global version 12), contracts compiled with Tolk 1.3.0.",
  `Code sizes: ${sizes}.`,
  "",
  "- *gas*: compute-phase gas of the contract's own transaction;",
  "- *contract tx fee*: that transaction's total fees (gas + storage + forwarding of what it sends);",
  "- *operation fees*: all fees of the whole message chain (sender's wallet, the contract, the payment it sends on).",
  "",
  "| operation | contract | gas | contract tx fee (TON) | operation fees (TON) |",
  "|---|---|---:|---:|---:|",
  ...rows.map((r) => `| ${r.op} | ${r.contract} | ${r.gas} | ${fromNano(r.fee)} | ${fromNano(r.total)} |`),
  "",
  "Nothing goes on chain per request: vouchers are cumulative, so one redeem or payout settles any number of requests.",
  "",
];
const text = lines.join("\n");
// Run as a script: print and write docs/gas.md. Imported (bench/run.ts): only `rows` is used.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(text);
  writeFileSync(fileURLToPath(new URL("../docs/gas.md", import.meta.url)), text);
}
