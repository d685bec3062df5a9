/**
 * What settlement needs from a TON network, through TonClient (TON Center v2 API: the devnet's `cocoon chain`,
 * testnet or mainnet): reading channel / proxy / root contract state, and a wallet that sends several messages in
 * ONE transaction (WalletV5R1 carries up to 255), so that a batch of redeems or claims costs one wallet transaction.
 */
import { keyPairFromSeed, type KeyPair } from "@ton/crypto";
import { Address, Cell, TonClient } from "@ton/ton";
import { ClientChannel, type ChannelState, type ClientChannelConfig } from "../chain/contracts/ClientChannel.js";
import { ProxyContract, type ProxyContractConfig, type ProxyState } from "../chain/contracts/ProxyContract.js";
import { RootContract, type RootParams, type ModelPrice, type RootSnapshot } from "../chain/contracts/RootContract.js";
import { contractCode } from "../chain/compile.js";
import { globalIdFor, type NetworkName } from "../chain/network.js";


export interface ChannelView {
  config: ClientChannelConfig;
  state: ChannelState;
}

/**
 * A contract is genuine when its address is the one the pinned code and the STANDARD initial data for its config
 * give: then its code is ours and it started from zero (no fake `redeemed`, `deposited`, `stake`), so its getters
 * tell the truth. Getters alone prove nothing: any contract can answer `channel_config` with whatever it likes.
 *
 * `deployedCode`: the code found at `address`, when known, to say WHAT differs (other code, or our code deployed
 * with other initial data). Pure: no chain access.
 */
export function assertGenuineChannel(address: Address, config: ClientChannelConfig, opts: { globalId?: number; deployedCode?: Cell | null } = {}): void {
  assertGenuine("client channel", "client_channel", address, ClientChannel.expectedAddress(config, address.workChain),
    describeChannel(config), config.globalId, opts);
}

/** As assertGenuineChannel, for a proxy contract (`config` as its `proxy_config` getter reports it). */
export function assertGenuineProxy(address: Address, config: ProxyContractConfig, opts: { globalId?: number; root?: Address; deployedCode?: Cell | null } = {}): void {
  assertGenuine("proxy contract", "proxy", address, ProxyContract.expectedAddress(config, address.workChain),
    `owner ${config.owner.toString()}, root ${config.root.toString()}, signing key ${config.signingKey.toString("hex")}, min stake ${config.minStake}, unstake delay ${config.unstakeDelay} s, global id ${config.globalId}`,
    config.globalId, opts);
  if (opts.root && !config.root.equals(opts.root)) {
    throw new Error(`proxy contract ${address.toString()} serves under root ${config.root.toString()}, not this network's root ${opts.root.toString()}`);
  }
}

function describeChannel(c: ClientChannelConfig): string {
  return `client ${c.client.toString()}, operator ${c.proxyOperator.toString()}, vault ${c.proxyVault.toString()}, close delay ${c.closeDelay} s, nonce ${c.nonce}, global id ${c.globalId}`;
}

function assertGenuine(what: string, name: "client_channel" | "proxy", address: Address, expected: Address, described: string,
  configGlobalId: number, opts: { globalId?: number; deployedCode?: Cell | null }): void {
  if (!address.equals(expected)) {
    const code = contractCode(name);
    let why: string;
    if (opts.deployedCode === undefined) {
      why = "its code or its initial data is not the standard one";
    } else if (opts.deployedCode === null) {
      why = "no code is deployed there";
    } else if (!opts.deployedCode.hash().equals(code.hash())) {
      why = `it runs other code (hash ${opts.deployedCode.hash().toString("hex")}, the pinned ${name} code hashes to ${code.hash().toString("hex")})`;
    } else {
      why = "it runs the pinned code but was deployed with non-standard initial data (e.g. a non-zero redeemed, deposit or stake)";
    }
    throw new Error(`${address.toString()} is not a genuine Cocoon ${what}: ${why}. The genuine ${what} for the config its getters report (${described}) would be at ${expected.toString()}`);
  }
  if (opts.globalId !== undefined && configGlobalId !== opts.globalId) {
    throw new Error(`${what} ${address.toString()} belongs to the network with global id ${configGlobalId}, this is ${opts.globalId}`);
  }
}

/** Reads contract state through TonClient. Every method makes live requests (no caching here). */
export class TonAccess {
  /** TON global id of the network: bound into every voucher, checked in every contract config. */
  readonly globalId: number;

  constructor(readonly client: TonClient, readonly network: NetworkName, globalId = globalIdFor(network)) {
    this.globalId = globalId;
  }

  /** Code deployed at `address` (null if none). */
  async codeAt(address: Address): Promise<Cell | null> {
    const st = await this.client.getContractState(address);
    return st.code ? Cell.fromBoc(st.code)[0]! : null;
  }

  /**
   * Throws (saying what differs) unless `address` is the genuine client channel for `config` on this network.
   * Reads the deployed code only when the address does not match, to name the difference.
   */
  async assertGenuineChannel(address: Address, config: ClientChannelConfig): Promise<void> {
    try {
      assertGenuineChannel(address, config, { globalId: this.globalId });
    } catch (e) {
      if (address.equals(ClientChannel.expectedAddress(config, address.workChain))) throw e;
      assertGenuineChannel(address, config, { globalId: this.globalId, deployedCode: await this.codeAt(address).catch(() => undefined) });
      throw e;
    }
  }

  /** As assertGenuineChannel, for a proxy contract; with `root`, it must also serve under that root. Returns its config. */
  async assertGenuineProxy(address: Address, root?: Address): Promise<ProxyContractConfig> {
    const config = await this.proxyConfig(address);
    try {
      assertGenuineProxy(address, config, { globalId: this.globalId, root });
    } catch (e) {
      if (address.equals(ProxyContract.expectedAddress(config, address.workChain))) throw e;
      assertGenuineProxy(address, config, { globalId: this.globalId, root, deployedCode: await this.codeAt(address).catch(() => undefined) });
      throw e;
    }
    return config;
  }

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

/**
 * Parses an address the user or a peer gave (friendly or raw form), with a readable error, and whether the form asks
 * for bounceable messages (EQ… yes, UQ… no; a raw address says nothing, so yes, the safe default).
 */
export function parseAddressForm(s: unknown, what: string): { address: Address; bounceable: boolean } {
  if (typeof s !== "string" || s.length === 0 || s.length > 128) throw new Error(`${what} must be a TON address string`);
  try {
    if (Address.isFriendly(s)) {
      const f = Address.parseFriendly(s);
      return { address: f.address, bounceable: f.isBounceable };
    }
    return { address: Address.parseRaw(s), bounceable: true };
  } catch {
    throw new Error(`${what} "${s.slice(0, 80)}" is not a TON address (expected EQ…/UQ… or 0:<hex>)`);
  }
}

/** Parses an address the user or a peer gave (friendly or raw form), with a readable error. */
export function parseAddress(s: unknown, what: string): Address {
  return parseAddressForm(s, what).address;
}
