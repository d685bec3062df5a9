/**
 * `cocoon client deposit|withdraw|close|channel`: the client's payment channel from the command line.
 *
 *   deposit --amount TON   top the channel up; opens (deploys) a new channel first when the config names none, and
 *                          writes its address into the payments config
 *   close                  starts a unilateral close: the proxy may still redeem the newest voucher during the
 *                          root's close delay; no new requests are admitted
 *   withdraw               after the close delay: finishes the close; the unspent rest returns to the client wallet
 *   channel                prints the channel's state
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { toNano } from "@ton/core";
import { ChannelStatus, ClientChannel, finishCloseBody, startCloseBody, topUpBody, CHANNEL_OP_VALUE } from "../chain/contracts/ClientChannel.js";
import { ed25519Signer } from "../chain/vouchers.js";
import { writeFileAtomic } from "../chain/keyfile.js";
import { confirmFundsMovement } from "../chain/network.js";
import { connectChain, loadPaymentsConfig, type PaymentsConfig } from "./config.js";
import { STORAGE_RESERVE } from "../chain/contracts/opcodes.js";

const STATUS_NAMES = ["open", "closing", "closed"];
const fmt = (n: bigint) => `${n} nanoTON (${(Number(n) / 1e9).toFixed(6)} TON)`;

function parseTonAmount(s: string): bigint {
  let v: bigint;
  try {
    v = toNano(s);
  } catch {
    throw new Error(`--amount must be an amount of TON like 5 or 0.5, got "${s}"`);
  }
  if (v <= 0n) throw new Error("--amount must be positive");
  return v;
}

export async function depositCommand(file: string, amountTon: string, print: (s: string) => void = console.log, yes = false): Promise<string> {
  const c = loadPaymentsConfig(file);
  const amount = parseTonAmount(amountTon);
  const { ton, wallet } = await connectChain(c);
  await confirmFundsMovement(c.network, `deposit ${amountTon} TON into a payment channel`, { yes });
  let channel = c.channel;
  const open = channel && (await ton.client.isContractDeployed(channel)) && (await ton.channelState(channel)).status === ChannelStatus.OPEN;
  if (channel && open) {
    await wallet.sendBatch([{ to: channel, value: amount, body: topUpBody() }]);
  } else {
    const [proxyCfg, params] = await Promise.all([ton.proxyConfig(c.proxyContract), ton.rootParams(c.root)]);
    if (amount < params.minClientDeposit) throw new Error(`a new channel needs at least ${fmt(params.minClientDeposit)} (the root's minimum deposit)`);
    const ch = ClientChannel.createFromConfig({
      client: wallet.address, clientKey: ed25519Signer(wallet.seed).publicKey, proxyOperator: proxyCfg.owner,
      proxyVault: c.proxyContract, closeDelay: params.clientCloseDelay, nonce: BigInt(Date.now()),
    });
    await wallet.sendBatch([{ to: ch.address, value: amount, init: ch.init!, body: topUpBody() }]);
    channel = ch.address;
    const json = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    json.channel = channel.toString();
    writeFileAtomic(file, JSON.stringify(json, null, 2) + "\n");
    print(`opened a new payment channel ${channel.toString()} (written to ${file}); restart the client to use it`);
  }
  const st = await ton.channelState(channel);
  print(`channel ${channel.toString()}: deposited ${fmt(st.deposited)}, redeemed by the proxy ${fmt(st.redeemed)}, balance ${fmt(st.balance)}`);
  return channel.toString();
}

function needChannel(c: PaymentsConfig) {
  if (!c.channel) throw new Error(`the payments config ${c.file ?? ""} names no channel; open one with "cocoon client deposit --amount <TON>"`);
  return c.channel;
}

export async function closeCommand(file: string, print: (s: string) => void = console.log): Promise<void> {
  const c = loadPaymentsConfig(file);
  const channel = needChannel(c);
  const { ton, wallet } = await connectChain(c);
  const { config, state } = await ton.channel(channel);
  if (state.status !== ChannelStatus.OPEN) {
    print(`channel ${channel.toString()} is already ${STATUS_NAMES[state.status]}; ${state.status === ChannelStatus.CLOSING ? "run \"cocoon client withdraw\" once the close delay is over" : "nothing to do"}`);
    return;
  }
  await wallet.sendBatch([{ to: channel, value: CHANNEL_OP_VALUE, body: startCloseBody() }]);
  const after = await ton.channelState(channel);
  if (after.status !== ChannelStatus.CLOSING) throw new Error(`the close was not applied (status ${STATUS_NAMES[after.status]}); is this the wallet that opened the channel?`);
  print(`channel ${channel.toString()} is closing: the proxy may redeem your newest voucher for ${config.closeDelay} s; then run "cocoon client withdraw" to get the rest back`);
}

export async function withdrawCommand(file: string, print: (s: string) => void = console.log): Promise<bigint> {
  const c = loadPaymentsConfig(file);
  const channel = needChannel(c);
  const { ton, wallet } = await connectChain(c);
  const { config, state } = await ton.channel(channel);
  if (state.status === ChannelStatus.OPEN) throw new Error(`channel ${channel.toString()} is open; run "cocoon client close" first, then withdraw after ${config.closeDelay} s`);
  if (state.status === ChannelStatus.CLOSED) {
    print(`channel ${channel.toString()} is closed already; its rest went to ${config.client.toString()}`);
    return 0n;
  }
  const ready = state.closeRequestedAt + config.closeDelay;
  const now = Math.floor(Date.now() / 1000);
  if (now < ready) throw new Error(`the close delay is not over: withdraw in ${ready - now} s (the proxy may still redeem until then)`);
  const before = await wallet.balance();
  const refund = state.balance > STORAGE_RESERVE ? state.balance - STORAGE_RESERVE : 0n;
  await wallet.sendBatch([{ to: channel, value: CHANNEL_OP_VALUE, body: finishCloseBody() }]);
  const after = await ton.channelState(channel);
  if (after.status !== ChannelStatus.CLOSED) throw new Error("the withdrawal was not applied; try again in a few seconds");
  print(`withdrew ${fmt(refund)} from channel ${channel.toString()} (wallet ${fmt(before)} -> ${fmt(await wallet.balance())})`);
  return refund;
}

export async function channelStatusCommand(file: string, print: (s: string) => void = console.log): Promise<void> {
  const c = loadPaymentsConfig(file);
  const channel = needChannel(c);
  const { ton } = await connectChain(c);
  const { config, state } = await ton.channel(channel);
  print(`channel ${channel.toString()} on ${c.network}: ${STATUS_NAMES[state.status]}; deposited ${fmt(state.deposited)}; redeemed ${fmt(state.redeemed)}; balance ${fmt(state.balance)}; close delay ${config.closeDelay} s`);
}

/** Adds the channel subcommands under `cocoon client` (which also has --payments: either position works). */
export function registerClientChannelCommands(client: Command): void {
  const help = "payments config JSON of the client (cocoon devnet writes one and prints its path)";
  const file = (cmd: Command): string => {
    const o = cmd.optsWithGlobals() as { payments?: string };
    if (!o.payments) throw new Error(`"cocoon client ${cmd.name()}" needs --payments <file>: the client's payments config (cocoon devnet prints its path)`);
    return o.payments;
  };
  client.command("deposit").description("deposit TON into the client's payment channel (opens one if there is none)")
    .option("--payments <file>", help).requiredOption("--amount <ton>", "amount in TON").option("--yes", "confirm without asking (mainnet)")
    .action(async (o, cmd: Command) => void (await depositCommand(file(cmd), o.amount, console.log, o.yes)));
  client.command("close").description("start closing the payment channel (the proxy may still redeem during the close delay)")
    .option("--payments <file>", help).action(async (_o, cmd: Command) => closeCommand(file(cmd)));
  client.command("withdraw").description("after the close delay: finish the close and get the unspent deposit back")
    .option("--payments <file>", help).action(async (_o, cmd: Command) => void (await withdrawCommand(file(cmd))));
  client.command("channel").description("show the payment channel's state on chain")
    .option("--payments <file>", help).action(async (_o, cmd: Command) => channelStatusCommand(file(cmd)));
}
