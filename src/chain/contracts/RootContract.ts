/**
 * Wrapper of contracts/root.tolk: the network configuration (owner, parameters, model prices, image allow-lists,
 * registered proxies), with a version bumped on every change.
 *
 * Storage layout (root cell):
 *   owner:MsgAddressInt pending_owner:MsgAddress version:uint32 global_id:int32 ^params
 *   models:(HashmapE 256 ModelPrice) ^lists proxies:(HashmapE 267 ProxyInfo)
 *   params     = proxy_fee_bps:uint16 client_close_delay:uint32 proxy_unstake_delay:uint32 min_proxy_stake:Coins min_client_deposit:Coins
 *   ModelPrice = prompt_price:Coins completion_price:Coins          (nanoTON per token)
 *   lists      = worker_images:(HashmapE 256 Bool) proxy_images:(HashmapE 256 Bool) ^proxy_code
 *   ProxyInfo  = signing_key:uint256 identity_key:uint256 ^endpoint(UTF-8 snake string)
 * RegisterProxy names a proxy by its CONFIG: the root rebuilds the proxy contract's address from the proxy code it
 * holds and the standard initial data (`ProxyContract.expectedAddress`), so only genuine proxies get registered.
 */
import {
  Address, beginCell, Builder, Cell, contractAddress, Dictionary, SendMode, Slice, toNano,
  type Contract, type ContractProvider, type DictionaryValue, type Sender,
} from "@ton/core";
import { contractCode } from "../compile.js";
import { Op } from "./opcodes.js";
import { bigToKey } from "./ClientChannel.js";
import { ProxyContract } from "./ProxyContract.js";
import { checkGlobalId } from "../vouchers.js";

/** Value to attach to owner updates; it stays on the root and pays its storage. */
export const ROOT_OP_VALUE = toNano("0.05");
export const ImageKind = { WORKER: 1, PROXY: 2 } as const;
export type ImageKindCode = (typeof ImageKind)[keyof typeof ImageKind];
/** proxyFeeBps is in 1/10000. */
export const BPS_DENOMINATOR = 10_000;
/** Bounds the root enforces on its parameters (root.tolk): delays in seconds. */
export const ROOT_BOUNDS = {
  minClientCloseDelay: 10,
  maxClientCloseDelay: 30 * 24 * 3600,
  minProxyUnstakeDelay: 10,
  maxProxyUnstakeDelay: 90 * 24 * 3600,
} as const;
/** Value the root sends along with ApproveKey (root.tolk APPROVE_KEY_VALUE); attach more than this to RegisterProxy. */
export const APPROVE_KEY_VALUE = toNano("0.02");

export interface RootParams {
  /** Proxy's share of each client payment, in basis points (0..10000). */
  proxyFeeBps: number;
  /** Seconds: close delay client channels must use. */
  clientCloseDelay: number;
  /** Seconds: unstake delay proxy contracts must use. */
  proxyUnstakeDelay: number;
  minProxyStake: bigint;
  minClientDeposit: bigint;
}

/** nanoTON per token. */
export interface ModelPrice {
  promptPrice: bigint;
  completionPrice: bigint;
}

export interface ProxyInfo {
  /** Ed25519 key that signs the proxy's payout vouchers (32 bytes). */
  signingKey: Buffer;
  /** Ed25519 key of the proxy's long-lived identity (32 bytes). */
  identityKey: Buffer;
  /** Where clients connect, e.g. "203.0.113.5:11002". */
  endpoint: string;
}

export interface RootConfig {
  owner: Address;
  params: RootParams;
  /** TON global id of the network (chain/network.ts `globalIdFor`); registered proxies must use it. */
  globalId: number;
  /** Proxy contract code the root registers; default: the pinned build. */
  proxyCode?: Cell;
}

/** What RegisterProxy names: the proxy contract's config fields that are not the root's own (root, global id). */
export interface ProxyRegistration {
  /** Proxy operator's wallet. */
  owner: Address;
  /** At least the root's minProxyStake. */
  minStake: bigint;
  /** Between the root's proxyUnstakeDelay and ROOT_BOUNDS.maxProxyUnstakeDelay. */
  unstakeDelay: number;
}

/** Everything the root holds, read in one get-method call. Keys of maps/sets are lowercase hex (32 bytes) or raw addresses. */
export interface RootSnapshot {
  version: number;
  models: Map<string, ModelPrice>;
  workerImages: Set<string>;
  proxyImages: Set<string>;
  proxies: Map<string, ProxyInfo & { address: Address }>;
}

function u32(x: number, what: string): number {
  if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new Error(`${what} must be a uint32, got ${x}`);
  return x;
}

/** Throws unless the parameters are within what the root accepts (ROOT_BOUNDS). */
export function checkRootParams(p: RootParams): void {
  if (!Number.isInteger(p.proxyFeeBps) || p.proxyFeeBps < 0 || p.proxyFeeBps > BPS_DENOMINATOR) {
    throw new Error(`proxyFeeBps must be an integer in 0..${BPS_DENOMINATOR}, got ${p.proxyFeeBps}`);
  }
  const b = ROOT_BOUNDS;
  if (!(p.clientCloseDelay >= b.minClientCloseDelay && p.clientCloseDelay <= b.maxClientCloseDelay)) {
    throw new Error(`clientCloseDelay must be ${b.minClientCloseDelay}..${b.maxClientCloseDelay} s, got ${p.clientCloseDelay}`);
  }
  if (!(p.proxyUnstakeDelay >= b.minProxyUnstakeDelay && p.proxyUnstakeDelay <= b.maxProxyUnstakeDelay)) {
    throw new Error(`proxyUnstakeDelay must be ${b.minProxyUnstakeDelay}..${b.maxProxyUnstakeDelay} s, got ${p.proxyUnstakeDelay}`);
  }
}

/** Cell of the parameters. Out-of-range values are encoded as given (the root refuses them: BAD_PARAMS). */
export function rootParamsToCell(p: RootParams): Cell {
  if (!Number.isInteger(p.proxyFeeBps) || p.proxyFeeBps < 0 || p.proxyFeeBps > 0xffff) {
    throw new Error(`proxyFeeBps must be a uint16, got ${p.proxyFeeBps}`);
  }
  return beginCell()
    .storeUint(p.proxyFeeBps, 16)
    .storeUint(u32(p.clientCloseDelay, "clientCloseDelay"), 32)
    .storeUint(u32(p.proxyUnstakeDelay, "proxyUnstakeDelay"), 32)
    .storeCoins(p.minProxyStake)
    .storeCoins(p.minClientDeposit)
    .endCell();
}

export function rootConfigToCell(c: RootConfig): Cell {
  checkRootParams(c.params);
  const lists = beginCell().storeBit(false).storeBit(false).storeRef(c.proxyCode ?? contractCode("proxy")).endCell();
  return beginCell()
    .storeAddress(c.owner)
    .storeAddress(null) // no pending owner
    .storeUint(0, 32)
    .storeInt(checkGlobalId(c.globalId, "root globalId"), 32)
    .storeRef(rootParamsToCell(c.params))
    .storeBit(false) // models
    .storeRef(lists)
    .storeBit(false) // proxies
    .endCell();
}

function hash256(x: Buffer, what: string): bigint {
  if (x.length !== 32) throw new Error(`${what} must be 32 bytes, got ${x.length}`);
  return BigInt("0x" + x.toString("hex"));
}

export const ModelPriceValue: DictionaryValue<ModelPrice> = {
  serialize: (v: ModelPrice, b: Builder) => { b.storeCoins(v.promptPrice).storeCoins(v.completionPrice); },
  parse: (s: Slice) => ({ promptPrice: s.loadCoins(), completionPrice: s.loadCoins() }),
};

export const ProxyInfoValue: DictionaryValue<ProxyInfo> = {
  serialize: (v: ProxyInfo, b: Builder) => {
    b.storeUint(hash256(v.signingKey, "signingKey"), 256).storeUint(hash256(v.identityKey, "identityKey"), 256)
      .storeRef(beginCell().storeStringTail(v.endpoint).endCell());
  },
  parse: (s: Slice) => ({
    signingKey: s.loadBuffer(32),
    identityKey: s.loadBuffer(32),
    endpoint: s.loadRef().beginParse().loadStringTail(),
  }),
};

function op(o: number, queryId: bigint): Builder {
  return beginCell().storeUint(o, 32).storeUint(queryId, 64);
}
export function setParamsBody(p: RootParams, queryId = 0n): Cell {
  checkRootParams(p);
  return op(Op.SetParams, queryId).storeRef(rootParamsToCell(p)).endCell();
}
export function setModelBody(digest: Buffer, price: ModelPrice, queryId = 0n): Cell {
  return op(Op.SetModel, queryId).storeUint(hash256(digest, "model digest"), 256).storeCoins(price.promptPrice).storeCoins(price.completionPrice).endCell();
}
export function removeModelBody(digest: Buffer, queryId = 0n): Cell {
  return op(Op.RemoveModel, queryId).storeUint(hash256(digest, "model digest"), 256).endCell();
}
export function setImageBody(kind: ImageKindCode, hash: Buffer, allowed: boolean, queryId = 0n): Cell {
  return op(Op.SetImage, queryId).storeUint(kind, 8).storeUint(hash256(hash, "image hash"), 256).storeBit(allowed).endCell();
}
/**
 * Registers the proxy contract with this config (its address is computed by the root). `keyAttested`: the owner
 * checked that `info.signingKey` was generated inside attested proxy code; the root then approves the key on the
 * proxy contract (ApproveKey), which lets its stake back payout vouchers while it unstakes.
 */
export function registerProxyBody(proxy: ProxyRegistration, info: ProxyInfo, keyAttested: boolean, queryId = 0n): Cell {
  const infoCell = beginCell();
  ProxyInfoValue.serialize(info, infoCell);
  if (!Number.isInteger(proxy.unstakeDelay) || proxy.unstakeDelay < 0 || proxy.unstakeDelay > 0xffffffff) {
    throw new Error(`unstakeDelay must be a uint32 number of seconds, got ${proxy.unstakeDelay}`);
  }
  return op(Op.RegisterProxy, queryId).storeAddress(proxy.owner).storeCoins(proxy.minStake).storeUint(proxy.unstakeDelay, 32)
    .storeBit(keyAttested).storeRef(infoCell.endCell()).endCell();
}
export function removeProxyBody(proxy: Address, queryId = 0n): Cell {
  return op(Op.RemoveProxy, queryId).storeAddress(proxy).endCell();
}
/** Step 1 (owner): proposes a new owner (proposing the current owner cancels). */
export function transferOwnershipBody(newOwner: Address, queryId = 0n): Cell {
  return op(Op.TransferOwnership, queryId).storeAddress(newOwner).endCell();
}
/** Step 2 (the proposed owner): takes over. */
export function acceptOwnershipBody(queryId = 0n): Cell {
  return op(Op.AcceptOwnership, queryId).endCell();
}

type SendOpts = { value?: bigint; queryId?: bigint };

export class RootContract implements Contract {
  constructor(readonly address: Address, readonly init?: { code: Cell; data: Cell }) {}

  static createFromConfig(config: RootConfig, code: Cell = contractCode("root"), workchain = 0): RootContract {
    const init = { code, data: rootConfigToCell(config) };
    return new RootContract(contractAddress(workchain, init), init);
  }

  static fromAddress(address: Address): RootContract {
    return new RootContract(address);
  }

  /** Address under which the root at `root` registers a proxy (the genuine proxy contract with that config). */
  static proxyAddress(root: Address, globalId: number, proxy: ProxyRegistration, signingKey: Buffer): Address {
    return ProxyContract.expectedAddress({ ...proxy, root, globalId, signingKey });
  }

  /** Deploys (empty body); `value` stays on the root for storage. */
  async sendDeploy(provider: ContractProvider, via: Sender, value: bigint): Promise<void> {
    await provider.internal(via, { value, sendMode: SendMode.PAY_GAS_SEPARATELY, body: beginCell().endCell() });
  }

  private async send(provider: ContractProvider, via: Sender, body: Cell, opts: SendOpts): Promise<void> {
    await provider.internal(via, { value: opts.value ?? ROOT_OP_VALUE, sendMode: SendMode.PAY_GAS_SEPARATELY, body });
  }

  sendSetParams(provider: ContractProvider, via: Sender, params: RootParams, opts: SendOpts = {}) {
    return this.send(provider, via, setParamsBody(params, opts.queryId), opts);
  }
  sendSetModel(provider: ContractProvider, via: Sender, digest: Buffer, price: ModelPrice, opts: SendOpts = {}) {
    return this.send(provider, via, setModelBody(digest, price, opts.queryId), opts);
  }
  sendRemoveModel(provider: ContractProvider, via: Sender, digest: Buffer, opts: SendOpts = {}) {
    return this.send(provider, via, removeModelBody(digest, opts.queryId), opts);
  }
  sendSetImage(provider: ContractProvider, via: Sender, kind: ImageKindCode, hash: Buffer, allowed: boolean, opts: SendOpts = {}) {
    return this.send(provider, via, setImageBody(kind, hash, allowed, opts.queryId), opts);
  }
  sendRegisterProxy(provider: ContractProvider, via: Sender, proxy: ProxyRegistration, info: ProxyInfo, opts: SendOpts & { keyAttested?: boolean } = {}) {
    return this.send(provider, via, registerProxyBody(proxy, info, opts.keyAttested ?? false, opts.queryId), opts);
  }
  sendRemoveProxy(provider: ContractProvider, via: Sender, proxy: Address, opts: SendOpts = {}) {
    return this.send(provider, via, removeProxyBody(proxy, opts.queryId), opts);
  }
  sendTransferOwnership(provider: ContractProvider, via: Sender, newOwner: Address, opts: SendOpts = {}) {
    return this.send(provider, via, transferOwnershipBody(newOwner, opts.queryId), opts);
  }
  sendAcceptOwnership(provider: ContractProvider, via: Sender, opts: SendOpts = {}) {
    return this.send(provider, via, acceptOwnershipBody(opts.queryId), opts);
  }

  async getInfo(provider: ContractProvider): Promise<{ owner: Address; version: number; pendingOwner: Address | null; globalId: number }> {
    const s = (await provider.get("root_info", [])).stack;
    return { owner: s.readAddress(), version: s.readNumber(), pendingOwner: s.readAddressOpt(), globalId: s.readNumber() };
  }

  /** Hash of the proxy code the root registers (32 bytes). */
  async getProxyCodeHash(provider: ContractProvider): Promise<Buffer> {
    return bigToKey((await provider.get("proxy_code_hash", [])).stack.readBigNumber());
  }

  async getParams(provider: ContractProvider): Promise<RootParams> {
    const s = (await provider.get("root_params", [])).stack;
    return {
      proxyFeeBps: s.readNumber(),
      clientCloseDelay: s.readNumber(),
      proxyUnstakeDelay: s.readNumber(),
      minProxyStake: s.readBigNumber(),
      minClientDeposit: s.readBigNumber(),
    };
  }

  /** Prices of a model by digest, or null if the model is not allowed. */
  async getModelPrice(provider: ContractProvider, digest: Buffer): Promise<ModelPrice | null> {
    const s = (await provider.get("model_price", [{ type: "int", value: hash256(digest, "model digest") }])).stack;
    const found = s.readBoolean();
    const promptPrice = s.readBigNumber();
    const completionPrice = s.readBigNumber();
    return found ? { promptPrice, completionPrice } : null;
  }

  async getImageAllowed(provider: ContractProvider, kind: ImageKindCode, hash: Buffer): Promise<boolean> {
    const s = (await provider.get("image_allowed", [{ type: "int", value: BigInt(kind) }, { type: "int", value: hash256(hash, "image hash") }])).stack;
    return s.readBoolean();
  }

  /** Registered proxy info, or null. */
  async getProxyInfo(provider: ContractProvider, proxy: Address): Promise<ProxyInfo | null> {
    const s = (await provider.get("proxy_info", [{ type: "slice", cell: beginCell().storeAddress(proxy).endCell() }])).stack;
    const found = s.readBoolean();
    const signingKey = bigToKey(s.readBigNumber());
    const identityKey = bigToKey(s.readBigNumber());
    const endpoint = s.readCellOpt();
    if (!found || !endpoint) return null;
    return { signingKey, identityKey, endpoint: endpoint.beginParse().loadStringTail() };
  }

  /** The whole configuration (one get-method call). */
  async getSnapshot(provider: ContractProvider): Promise<RootSnapshot> {
    const s = (await provider.get("root_dicts", [])).stack;
    const version = s.readNumber();
    const models = Dictionary.loadDirect(Dictionary.Keys.BigUint(256), ModelPriceValue, s.readCellOpt());
    const workers = Dictionary.loadDirect(Dictionary.Keys.BigUint(256), Dictionary.Values.Bool(), s.readCellOpt());
    const proxiesImg = Dictionary.loadDirect(Dictionary.Keys.BigUint(256), Dictionary.Values.Bool(), s.readCellOpt());
    const proxies = Dictionary.loadDirect(Dictionary.Keys.Address(), ProxyInfoValue, s.readCellOpt());
    const hex = (k: bigint) => k.toString(16).padStart(64, "0");
    return {
      version,
      models: new Map(models.keys().map((k) => [hex(k), models.get(k)!])),
      workerImages: new Set(workers.keys().map(hex)),
      proxyImages: new Set(proxiesImg.keys().map(hex)),
      proxies: new Map(proxies.keys().map((a) => [a.toRawString(), { ...proxies.get(a)!, address: a }])),
    };
  }
}
