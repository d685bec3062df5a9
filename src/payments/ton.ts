/**
 * What settlement needs from a TON network, through TonClient (TON Center v2 API: the devnet's `cocoon chain`,
 * testnet or mainnet): reading channel / proxy / root contract state, and a wallet that sends several messages in
 * ONE transaction (WalletV5R1 carries up to 255), so that a batch of redeems or claims costs one wallet transaction.
 */
import { keyPairFromSeed, type KeyPair } from "@ton/crypto";
import { Address, internal, SendMode, TonClient, WalletContractV5R1, type Cell, type OpenedContract, type StateInit } from "@ton/ton";
import { ClientChannel, type ChannelState, type ClientChannelConfig } from "../chain/contracts/ClientChannel.js";
import { ProxyContract, type ProxyContractConfig, type ProxyState } from "../chain/contracts/ProxyContract.js";
import { RootContract, type RootParams, type ModelPrice, type RootSnapshot } from "../chain/contracts/RootContract.js";
import { walletIdFor, type NetworkName } from "../chain/network.js";


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

  /** Everything the root holds: version, prices, allowed worker and proxy images, registered proxies. */
  async rootSnapshot(root: Address): Promise<RootSnapshot> {
    return this.client.open(RootContract.fromAddress(root)).getSnapshot();
  }

  /** The root's model prices keyed by weights digest (lowercase hex). */
  async rootPrices(root: Address): Promise<Map<string, ModelPrice>> {
    return (await this.client.open(RootContract.fromAddress(root)).getSnapshot()).models;
  }
}


/** A key pair from a 32-byte Ed25519 seed (hex). */
export function keyPairFromSeedHex(hex: string): KeyPair {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new Error("a wallet seed must be 64 hex characters (32 bytes)");
  return keyPairFromSeed(Buffer.from(hex, "hex"));
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
