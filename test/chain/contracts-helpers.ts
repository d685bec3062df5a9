// Shared helpers for the contract tests (test/chain/contracts*.test.ts). Not a test file itself.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Address, Transaction } from "@ton/core";
import { Blockchain, type SandboxContract, type TreasuryContract, type SendMessageResult } from "@ton/sandbox";
import { findTransactionRequired, flattenTransaction, type FlatTransactionComparable } from "@ton/test-utils";
import { ClientChannel, type ClientChannelConfig } from "../../src/chain/contracts/ClientChannel.js";
import { ProxyContract, ADD_STAKE_GAS_RESERVE } from "../../src/chain/contracts/ProxyContract.js";
import { MAINNET_GLOBAL_ID } from "../../src/chain/network.js";
import { ed25519Signer, type Ed25519Signer } from "../../src/chain/vouchers.js";
import { describeExitCode } from "../../src/chain/contracts/errors.js";

export const TON = 1_000_000_000n;
/** The network the sandbox contracts are configured for (the sandbox runs a mainnet config). */
export const GLOBAL_ID = MAINNET_GLOBAL_ID;
export const T0 = 1_800_000_000; // fixed start time for deterministic delays

/** The transaction that reached `to` in `res` (first match), flattened. */
export function txTo(res: SendMessageResult, to: Address, extra: FlatTransactionComparable = {}) {
  return flattenTransaction(findTransactionRequired(res.transactions, { to, ...extra }));
}

/** Asserts that the message to `to` failed in the compute phase with `code`. */
export function expectExit(res: SendMessageResult, to: Address, code: number): void {
  const tx = txTo(res, to);
  assert.equal(tx.success, false, `expected exit ${describeExitCode(code)}, but the transaction succeeded`);
  assert.equal(tx.exitCode, code, `expected ${describeExitCode(code)}, got ${describeExitCode(tx.exitCode ?? -1)}`);
}

/** Asserts that the message to `to` succeeded. */
export function expectOk(res: SendMessageResult, to: Address): void {
  const tx = txTo(res, to);
  assert.equal(tx.success, true, `expected success, got ${describeExitCode(tx.exitCode ?? -1)} (action ${tx.actionResultCode})`);
}

/** Sum of values of messages that `from` sent to `to` in `res` that arrived (excludes bounces). */
export function valueSent(res: SendMessageResult, from: Address, to: Address): bigint {
  let sum = 0n;
  for (const t of res.transactions as Transaction[]) {
    const f = flattenTransaction(t);
    if (f.from?.equals(from) && f.to?.equals(to) && !f.inMessageBounced) sum += f.value ?? 0n;
  }
  return sum;
}

/** Value of bounced messages from `from` back to `to` in `res`. */
export function valueBounced(res: SendMessageResult, from: Address, to: Address): bigint {
  let sum = 0n;
  for (const t of res.transactions as Transaction[]) {
    const f = flattenTransaction(t);
    if (f.from?.equals(from) && f.to?.equals(to) && f.inMessageBounced) sum += f.value ?? 0n;
  }
  return sum;
}

export interface World {
  bc: Blockchain;
  client: SandboxContract<TreasuryContract>;
  operator: SandboxContract<TreasuryContract>;
  worker: SandboxContract<TreasuryContract>;
  stranger: SandboxContract<TreasuryContract>;
  /** Stands in for the root contract (the proxy's `root`): it alone may send ApproveKey. */
  root: SandboxContract<TreasuryContract>;
  clientKey: Ed25519Signer;
  proxyKey: Ed25519Signer;
  proxy: SandboxContract<ProxyContract>;
  channel: SandboxContract<ClientChannel>;
  channelConfig: ClientChannelConfig;
}

export const CLOSE_DELAY = 3600;
export const UNSTAKE_DELAY = 7200;
export const MIN_STAKE = 10n * TON;

/** A chain with a deployed, staked (exactly `stake`) proxy contract and a client channel holding `deposit`. */
export async function makeWorld(opts: { deposit?: bigint; stake?: bigint; deployProxy?: boolean } = {}): Promise<World> {
  const bc = await Blockchain.create({ config: "slim" });
  bc.now = T0;
  const client = await bc.treasury("client");
  const operator = await bc.treasury("operator");
  const worker = await bc.treasury("worker");
  const stranger = await bc.treasury("stranger");
  const root = await bc.treasury("root");
  const clientKey = ed25519Signer(randomBytes(32));
  const proxyKey = ed25519Signer(randomBytes(32));
  const proxy = bc.openContract(ProxyContract.createFromConfig({
    owner: operator.address, root: root.address, signingKey: proxyKey.publicKey, minStake: MIN_STAKE, unstakeDelay: UNSTAKE_DELAY,
    globalId: GLOBAL_ID,
  }));
  if (opts.deployProxy !== false) {
    const r = await proxy.sendDeploy(operator.getSender(), (opts.stake ?? MIN_STAKE) + ADD_STAKE_GAS_RESERVE);
    expectOk(r, proxy.address);
  }
  const channelConfig: ClientChannelConfig = {
    client: client.address, clientKey: clientKey.publicKey, proxyOperator: operator.address, proxyVault: proxy.address,
    closeDelay: CLOSE_DELAY, nonce: 1n, globalId: GLOBAL_ID,
  };
  const channel = bc.openContract(ClientChannel.createFromConfig(channelConfig));
  const r = await channel.sendDeploy(client.getSender(), opts.deposit ?? 10n * TON);
  expectOk(r, channel.address);
  return { bc, client, operator, worker, stranger, root, clientKey, proxyKey, proxy, channel, channelConfig };
}
