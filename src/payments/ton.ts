/**
 * What settlement needs from a TON network, through TonClient (TON Center v2 API: the devnet's `cocoon chain`,
 * testnet or mainnet): reading channel / proxy / root contract state, and a wallet that sends several messages in
 * ONE transaction (WalletV5R1 carries up to 255), so that a batch of redeems or claims costs one wallet transaction.
 */
import { keyPairFromSeed, type KeyPair } from "@ton/crypto";
import { Address, internal, SendMode, TonClient, WalletContractV5R1, type Cell, type OpenedContract, type StateInit } from "@ton/ton";
import { ClientChannel, type ChannelState, type ClientChannelConfig } from "../chain/contracts/ClientChannel.js";
import { ProxyContract, type ProxyContractConfig, type ProxyState } from "../chain/contracts/ProxyContract.js";
import { RootContract, type RootParams, type ModelPrice } from "../chain/contracts/RootContract.js";
import { walletIdFor, type NetworkName } from "../chain/network.js";

/** WalletV5R1 takes at most 255 actions per external message. */
export const MAX_MESSAGES_PER_TRANSFER = 255;
/** How long to wait for a transfer to be applied before reporting it as not applied. */
export const DEFAULT_APPLY_TIMEOUT_MS = 60_000;
const POLL_MS = 200;

export interface ChannelView {
  config: ClientChannelConfig;
  state: ChannelState;
}

/** Reads contract state through TonClient. Every method makes live requests (no caching here). */
export class TonAccess {
  constructor(readonly client: TonClient, readonly network: NetworkName) {}

  async channel(address: Address): Promise<ChannelView> {
    const c = this.client.open(ClientChannel.fromAddress(address));
    if (!(await this.client.isContractDeployed(address))) {
      throw new Error(`no client channel is deployed at ${address.toString()} on ${this.network}; open one with "cocoon client deposit"`);
    }
    const [config, state] = await Promise.all([c.getConfig(), c.getState()]);
    return { config, state };
  }

  async channelState(address: Address): Promise<ChannelState> {
    return this.client.open(ClientChannel.fromAddress(address)).getState();
  }

  async proxyState(address: Address): Promise<ProxyState> {
    return this.client.open(ProxyContract.fromAddress(address)).getState();
  }

  async proxyConfig(address: Address): Promise<ProxyContractConfig> {
    return this.client.open(ProxyContract.fromAddress(address)).getConfig();
  }

  async paidTo(proxy: Address, worker: Address): Promise<bigint> {
    return this.client.open(ProxyContract.fromAddress(proxy)).getPaidTo(worker);
  }

  async balance(address: Address): Promise<bigint> {
    return this.client.getBalance(address);
  }

  async rootParams(root: Address): Promise<RootParams> {
    return this.client.open(RootContract.fromAddress(root)).getParams();
  }

  /** The root's model prices keyed by weights digest (lowercase hex). */
  async rootPrices(root: Address): Promise<Map<string, ModelPrice>> {
    return (await this.client.open(RootContract.fromAddress(root)).getSnapshot()).models;
  }
}

export interface OutMessage {
  to: Address;
  value: bigint;
  body?: Cell;
  init?: StateInit;
  /** Default: true without init, false with one. */
  bounce?: boolean;
}

/** A key pair from a 32-byte Ed25519 seed (hex). */
export function keyPairFromSeedHex(hex: string): KeyPair {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new Error("a wallet seed must be 64 hex characters (32 bytes)");
  return keyPairFromSeed(Buffer.from(hex, "hex"));
}

/**
 * A WalletV5R1 that sends batches: `send([...])` signs one external message with all of them and waits until the
 * wallet's seqno moves (the transfer was applied). Sends are serialized, so concurrent callers never reuse a seqno.
 * `transfers` counts the wallet transactions this process made (tests use it to prove batching).
 */
export class BatchWallet {
  readonly contract: WalletContractV5R1;
  private readonly opened: OpenedContract<WalletContractV5R1>;
  private lock: Promise<unknown> = Promise.resolve();
  transfers = 0;

  constructor(readonly client: TonClient, private readonly keyPair: KeyPair, readonly network: NetworkName) {
    this.contract = WalletContractV5R1.create({ workchain: 0, publicKey: keyPair.publicKey, walletId: walletIdFor(network) });
    this.opened = client.open(this.contract);
  }

  get address(): Address {
    return this.contract.address;
  }

  get publicKey(): Buffer {
    return this.keyPair.publicKey;
  }

  /** The first 32 bytes of the secret key: the Ed25519 seed (for node:crypto signers). */
  get seed(): Buffer {
    return Buffer.from(this.keyPair.secretKey.subarray(0, 32));
  }

  async seqno(): Promise<number> {
    if (!(await this.client.isContractDeployed(this.address))) return 0;
    return this.opened.getSeqno();
  }

  async balance(): Promise<bigint> {
    return this.client.getBalance(this.address);
  }

  /** Sends up to 255 messages in one wallet transaction and waits until it is applied. */
  send(messages: OutMessage[], timeoutMs = DEFAULT_APPLY_TIMEOUT_MS): Promise<{ seqno: number }> {
    const run = this.lock.then(() => this.sendNow(messages, timeoutMs));
    this.lock = run.catch(() => undefined);
    return run;
  }

  private async sendNow(messages: OutMessage[], timeoutMs: number): Promise<{ seqno: number }> {
    if (messages.length === 0) throw new Error("nothing to send");
    if (messages.length > MAX_MESSAGES_PER_TRANSFER) throw new Error(`a wallet transfer carries at most ${MAX_MESSAGES_PER_TRANSFER} messages, got ${messages.length}`);
    const need = messages.reduce((s, m) => s + m.value, 0n);
    const balance = await this.balance();
    if (balance <= need) {
      throw new Error(`wallet ${this.address.toString({ bounceable: false })} holds ${balance} nanoTON, not enough to send ${need} nanoTON plus fees; top it up`);
    }
    const seqno = await this.seqno();
    await this.opened.sendTransfer({
      seqno,
      secretKey: this.keyPair.secretKey,
      sendMode: SendMode.PAY_GAS_SEPARATELY + SendMode.IGNORE_ERRORS,
      messages: messages.map((m) => internal({ to: m.to, value: m.value, body: m.body, init: m.init, bounce: m.bounce ?? !m.init })),
    });
    this.transfers++;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if ((await this.seqno()) > seqno) return { seqno };
      } catch {
        /* transient endpoint error: keep polling */
      }
      if (Date.now() >= deadline) {
        throw new Error(`wallet transfer with seqno ${seqno} was not applied within ${Math.round(timeoutMs / 1000)} s; it will be checked again later`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }
}

/** Parses an address the user or a peer gave (friendly or raw form), with a readable error. */
export function parseAddress(s: unknown, what: string): Address {
  if (typeof s !== "string" || s.length === 0 || s.length > 128) throw new Error(`${what} must be a TON address string`);
  try {
    return Address.parse(s);
  } catch {
    throw new Error(`${what} "${s.slice(0, 80)}" is not a TON address (expected EQ…/UQ… or 0:<hex>)`);
  }
}
