/**
 * `cocoon client deposit|close|withdraw|channels|channel`: the client's payment channels from the command line.
 *
 * The payments file names the channel payments use now (`channel`) and lists every channel the client opened
 * (`channels`): a channel that is closing still holds the client's money until it is withdrawn, so none is ever
 * forgotten. A file with only `channel` (written before the list existed) is read as a list of that one.
 *
 *   deposit --amount TON   tops the current channel up while it is open; otherwise (none yet, closing, closed) opens
 *                          a new one, makes it current and adds it to the list (the old one stays listed)
 *   close                  starts a unilateral close of the current channel: the proxy may still redeem the newest
 *                          voucher during the root's close delay; no new requests are admitted
 *   withdraw               finishes the close of every listed channel whose close delay is over (one wallet
 *                          transaction): the unspent rest returns to the client wallet; says what it did for each
 *   channels               every listed channel: state, balances, when it can be withdrawn
 *   channel                the current channel's state
 */
import type { Command } from "commander";
import { toNano, type Address } from "@ton/core";
import { ChannelStatus, ClientChannel, finishCloseBody, startCloseBody, topUpBody, CHANNEL_OP_VALUE } from "../chain/contracts/ClientChannel.js";
import { ed25519Signer } from "../chain/vouchers.js";
import { confirmFundsMovement } from "../chain/network.js";
import { MAX_MESSAGES_PER_TRANSFER } from "../chain/wallet.js";
import { connectChain, loadPaymentsConfig, recordChannelInFile, type PaymentsConfig } from "../payments/config.js";
import { STORAGE_RESERVE } from "../chain/contracts/opcodes.js";
import { parseAddress, type ChannelView, type TonAccess } from "../payments/ton.js";

const STATUS_NAMES = ["open", "closing", "closed"] as const;
const fmt = (n: bigint) => `${n} nanoTON (${(Number(n) / 1e9).toFixed(6)} TON)`;
const tonOf = (n: bigint) => `${(Number(n) / 1e9).toFixed(6)} TON`;
const nowS = () => Math.floor(Date.now() / 1000);
const when = (unixS: number) => new Date(unixS * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");

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

/** What the chain says about one listed channel. */
export interface ChannelInfo {
  address: string;
  /** The channel payments use now (`channel` in the payments file). */
  current: boolean;
  state: "open" | "closing" | "closed" | "not deployed";
  deposited?: bigint;
  redeemed?: bigint;
  /** What the contract holds (the proxy can still redeem from it while it is open or closing). */
  balance?: bigint;
  /** What a withdrawal returns to the client wallet (balance minus the storage reserve a closed channel keeps). */
  withdrawable?: bigint;
  closeDelay?: number;
  /** Closing: from when (unix seconds) `withdraw` can finish the close. */
  withdrawableAt?: number;
}

async function inspect(ton: TonAccess, address: Address, current: boolean): Promise<ChannelInfo> {
  const base = { address: address.toString(), current };
  if (!(await ton.client.isContractDeployed(address))) return { ...base, state: "not deployed" };
  const { config, state }: ChannelView = await ton.channel(address);
  const withdrawable = state.status === ChannelStatus.CLOSED ? 0n : state.balance > STORAGE_RESERVE ? state.balance - STORAGE_RESERVE : 0n;
  return {
    ...base,
    state: STATUS_NAMES[state.status],
    deposited: state.deposited,
    redeemed: state.redeemed,
    balance: state.balance,
    withdrawable,
    closeDelay: config.closeDelay,
    ...(state.status === ChannelStatus.CLOSING ? { withdrawableAt: state.closeRequestedAt + config.closeDelay } : {}),
  };
}

function inspectAll(ton: TonAccess, c: PaymentsConfig): Promise<ChannelInfo[]> {
  return Promise.all(c.channels.map((a) => inspect(ton, a, !!c.channel?.equals(a))));
}

/** One line per channel, for people. */
export function describeChannel(i: ChannelInfo): string {
  const name = `channel ${i.address}${i.current ? " (current)" : ""}`;
  if (i.state === "not deployed") return `${name}: not deployed on chain; it holds nothing`;
  const money = `deposited ${tonOf(i.deposited!)}, redeemed by the proxy ${tonOf(i.redeemed!)}, balance ${tonOf(i.balance!)}`;
  if (i.state === "open") return `${name}: open; ${money}; close delay ${i.closeDelay} s`;
  if (i.state === "closed") return `${name}: closed; ${money} (kept as storage reserve); nothing left to withdraw`;
  const wait = i.withdrawableAt! - nowS();
  return `${name}: closing; ${money}; ${tonOf(i.withdrawable!)} can be withdrawn ${wait > 0 ? `from ${when(i.withdrawableAt!)} (in ${wait} s)` : "now"}`;
}

export async function depositCommand(file: string, amountTon: string, print: (s: string) => void = console.log, yes = false): Promise<string> {
  const c = loadPaymentsConfig(file);
  const amount = parseTonAmount(amountTon);
  const { ton, wallet } = await connectChain(c);
  await confirmFundsMovement(c.network, `deposit ${amountTon} TON into a payment channel`, { yes });
  let channel = c.channel;
  const old = channel ? await inspect(ton, channel, true) : undefined;
  if (channel && old?.state === "open") {
    await wallet.sendBatch([{ to: channel, value: amount, body: topUpBody() }]);
  } else {
    const [proxyCfg, params] = await Promise.all([ton.proxyConfig(c.proxyContract), ton.rootParams(c.root)]);
    if (amount < params.minClientDeposit) throw new Error(`a new channel needs at least ${fmt(params.minClientDeposit)} (the root's minimum deposit)`);
    const ch = ClientChannel.createFromConfig({
      client: wallet.address, clientKey: ed25519Signer(wallet.seed).publicKey, proxyOperator: proxyCfg.owner,
      proxyVault: c.proxyContract, closeDelay: params.clientCloseDelay, nonce: BigInt(Date.now()), globalId: ton.globalId,
    });
    await wallet.sendBatch([{ to: ch.address, value: amount, init: ch.init!, body: topUpBody() }]);
    channel = ch.address;
    recordChannelInFile(file, channel, { current: true });
    if (old) {
      const why = old.state === "closing"
        ? `is closing (a closing channel takes no deposit); it stays listed with its ${tonOf(old.withdrawable!)}: "cocoon client withdraw" gets them back from ${when(old.withdrawableAt!)}`
        : old.state === "closed" ? "is closed" : "is not deployed";
      print(`channel ${old.address} ${why}`);
    }
    print(`opened a new payment channel ${channel.toString()} (now the current one in ${file}); restart the client to use it`);
  }
  const st = await ton.channelState(channel);
  print(`channel ${channel.toString()}: deposited ${fmt(st.deposited)}, redeemed by the proxy ${fmt(st.redeemed)}, balance ${fmt(st.balance)}`);
  return channel.toString();
}

function listedChannel(c: PaymentsConfig, which: string): Address {
  const a = parseAddress(which, "--channel");
  const found = c.channels.find((x) => x.equals(a));
  if (!found) throw new Error(`channel ${which} is not listed in ${c.file ?? "the payments config"}; "cocoon client channels" lists this client's channels`);
  return found;
}

function needChannel(c: PaymentsConfig) {
  if (!c.channel) throw new Error(`the payments config ${c.file ?? ""} names no channel; open one with "cocoon client deposit --amount <TON>"`);
  return c.channel;
}

/** Closes the current channel, or `which` (any channel the file lists, e.g. one opened on demand with another proxy). */
export async function closeCommand(file: string, print: (s: string) => void = console.log, which?: string): Promise<void> {
  const c = loadPaymentsConfig(file);
  const channel = which === undefined ? needChannel(c) : listedChannel(c, which);
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

/**
 * Finishes the close of every listed channel whose close delay is over, in one wallet transaction, and says for
 * each channel what it did or why not (open: close it first; closing: from when). Returns what came back. Fails,
 * saying why for each channel, when some channel still holds money but none could be withdrawn yet.
 */
export async function withdrawCommand(file: string, print: (s: string) => void = console.log): Promise<bigint> {
  const c = loadPaymentsConfig(file);
  if (c.channels.length === 0) needChannel(c);
  const { ton, wallet } = await connectChain(c);
  const infos = await inspectAll(ton, c);
  const now = nowS();
  const ready = c.channels.filter((_, k) => infos[k]!.state === "closing" && infos[k]!.withdrawableAt! <= now);
  const before = ready.length > 0 ? await wallet.balance() : 0n;
  for (let k = 0; k < ready.length; k += MAX_MESSAGES_PER_TRANSFER) {
    await wallet.sendBatch(ready.slice(k, k + MAX_MESSAGES_PER_TRANSFER).map((to) => ({ to, value: CHANNEL_OP_VALUE, body: finishCloseBody() })));
  }
  let refunded = 0n;
  let failed = 0;
  let waiting = 0;
  const report: string[] = [];
  for (const [k, i] of infos.entries()) {
    const name = `channel ${i.address}${i.current ? " (current)" : ""}`;
    if (i.state === "not deployed") report.push(`${name}: not deployed on chain; it holds nothing`);
    else if (i.state === "closed") report.push(`${name}: closed already; nothing left in it`);
    else if (i.state === "open") {
      waiting++;
      report.push(`${name}: open, balance ${tonOf(i.balance!)}; not closable yet: run "cocoon client close" first, then withdraw ${i.closeDelay} s later`);
    } else if (!ready.includes(c.channels[k]!)) {
      waiting++;
      report.push(`${name}: closing; the close delay is not over: withdraw in ${i.withdrawableAt! - now} s (from ${when(i.withdrawableAt!)}; the proxy may still redeem until then)`);
    } else {
      const after = await ton.channelState(c.channels[k]!);
      if (after.status === ChannelStatus.CLOSED) {
        refunded += i.withdrawable!;
        report.push(`${name}: withdrew ${fmt(i.withdrawable!)}`);
      } else {
        failed++;
        report.push(`${name}: the withdrawal was not applied (still ${STATUS_NAMES[after.status]}); run "cocoon client withdraw" again in a few seconds`);
      }
    }
  }
  if (failed > 0 || (ready.length === 0 && waiting > 0)) {
    throw new Error(`${failed > 0 ? `${failed} withdrawal(s) failed` : "nothing to withdraw yet"}:\n  ${report.join("\n  ")}`);
  }
  for (const l of report) print(l);
  if (ready.length > 0) print(`withdrew ${fmt(refunded)} in all (wallet ${wallet.address.toString()}: ${fmt(before)} -> ${fmt(await wallet.balance())})`);
  else print("nothing to withdraw: no channel holds money that can come back");
  return refunded;
}

/** Every listed channel with its state and balances (printed, and returned). */
export async function channelsCommand(file: string, print: (s: string) => void = console.log, json = false): Promise<ChannelInfo[]> {
  const c = loadPaymentsConfig(file);
  if (c.channels.length === 0) needChannel(c);
  const { ton } = await connectChain(c);
  const infos = await inspectAll(ton, c);
  if (json) {
    print(JSON.stringify(infos.map((i) => Object.fromEntries(Object.entries(i).map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : v]))), null, 2));
    return infos;
  }
  print(`${infos.length} channel(s) of this client on ${c.network} (payments file ${file}):`);
  for (const i of infos) print(`  ${describeChannel(i)}`);
  const held = infos.reduce((s, i) => s + (i.state === "closing" ? i.withdrawable! : 0n), 0n);
  if (held > 0n) print(`closing channels still hold ${tonOf(held)} for you: "cocoon client withdraw" gets them back once their close delay is over`);
  return infos;
}

export async function channelStatusCommand(file: string, print: (s: string) => void = console.log): Promise<void> {
  const c = loadPaymentsConfig(file);
  const channel = needChannel(c);
  const { ton } = await connectChain(c);
  const { config, state } = await ton.channel(channel);
  print(`channel ${channel.toString()} on ${c.network}: ${STATUS_NAMES[state.status]}; deposited ${fmt(state.deposited)}; redeemed ${fmt(state.redeemed)}; balance ${fmt(state.balance)}; close delay ${config.closeDelay} s`);
  const others = c.channels.length - 1;
  if (others > 0) print(`${others} older channel(s) are listed too: "cocoon client channels" shows them all`);
}

/** Adds the channel subcommands under `cocoon client` (which also has --payments: either position works). */
export function registerClientChannelCommands(client: Command): void {
  const help = "payments config JSON of the client (cocoon devnet writes one and prints its path)";
  const file = (cmd: Command): string => {
    const o = cmd.optsWithGlobals() as { payments?: string };
    if (!o.payments) throw new Error(`"cocoon client ${cmd.name()}" needs --payments <file>: the client's payments config (cocoon devnet prints its path)`);
    return o.payments;
  };
  client.command("deposit").description("deposit TON into the current payment channel (opens a new one if there is none, or if it is closing or closed)")
    .option("--payments <file>", help).requiredOption("--amount <ton>", "amount in TON").option("--yes", "confirm without asking (mainnet)")
    .action(async (o, cmd: Command) => void (await depositCommand(file(cmd), o.amount, console.log, o.yes)));
  client.command("close").description("start closing the current payment channel, or --channel (the proxy may still redeem during the close delay)")
    .option("--payments <file>", help).option("--channel <address>", "close this listed channel instead of the current one (e.g. one opened on demand with another proxy)")
    .action(async (o, cmd: Command) => closeCommand(file(cmd), console.log, o.channel));
  client.command("withdraw").description("finish the close of every channel whose close delay is over; the unspent deposit comes back")
    .option("--payments <file>", help).action(async (_o, cmd: Command) => void (await withdrawCommand(file(cmd))));
  client.command("channels").description("list every channel of this client: state, balances, when it can be withdrawn")
    .option("--payments <file>", help).option("--json", "print JSON (amounts in nanoTON as strings)")
    .action(async (o, cmd: Command) => void (await channelsCommand(file(cmd), console.log, o.json === true)));
  client.command("channel").description("show the current payment channel's state on chain")
    .option("--payments <file>", help).action(async (_o, cmd: Command) => channelStatusCommand(file(cmd)));
}
