/**
 * Wrapper of contracts/proxy.tolk: the proxy's stake, the money its client channels redeem, and worker payouts.
 *
 * Storage layout (root cell; contracts/shared.tolk ProxyStorage):
 *   signing_key:uint256 key_approved:Bool stake:Coins unstake_at:uint32 received:Coins paid_out:Coins withdrawn:Coins
 *   paid:(HashmapE 267 Coins) ^config
 *   config = owner:MsgAddressInt root:MsgAddressInt min_stake:Coins unstake_delay:uint32 global_id:int32
 * A genuine proxy contract is recognised by its ADDRESS: `ProxyContract.expectedAddress(config)` rebuilds it from
 * the pinned code and the standard initial data (no stake, nothing received or paid, key not approved).
 */
import {
  Address, beginCell, Cell, contractAddress, SendMode, toNano,
  type Contract, type ContractProvider, type Sender,
} from "@ton/core";
import { contractCode } from "../compile.js";
import { Op } from "./opcodes.js";
import { bigToKey } from "./ClientChannel.js";
import { checkGlobalId, type SignedVoucher } from "../vouchers.js";

/** Value to attach to payout / withdraw / unstake messages; what gas does not use comes back with the payment. */
export const PROXY_OP_VALUE = toNano("0.05");
/** Kept from every AddStake's value for its gas: the stake grows by the value minus this (proxy.tolk). */
export const ADD_STAKE_GAS_RESERVE = toNano("0.01");

export interface ProxyContractConfig {
  /** Proxy operator's wallet: withdraws fees, unstakes. */
  owner: Address;
  /** Root contract this proxy serves under. */
  root: Address;
  /** Ed25519 public key (32 bytes) that signs payout vouchers. */
  signingKey: Buffer;
  /** From the root's `minProxyStake`. */
  minStake: bigint;
  /** Seconds between start-unstake and finish-unstake (the root's `proxyUnstakeDelay`). */
  unstakeDelay: number;
  /** TON global id of the network (chain/network.ts `globalIdFor`): payout vouchers must name it. */
  globalId: number;
}

export interface ProxyState {
  stake: bigint;
  /** 0 while active; else the time from which finish-unstake is allowed. */
  unstakeAt: number;
  totalReceived: bigint;
  totalPaidOut: bigint;
  totalWithdrawn: bigint;
  balance: bigint;
  /** Balance above stake + storage reserve: what payouts and fee withdrawals may use. */
  freeBalance: bigint;
  /** stake >= minStake and not unstaking. */
  active: boolean;
  /** The root approved the payout key (attested): only then does the stake back payouts while unstaking. */
  keyApproved: boolean;
}

export function proxyConfigToCell(c: ProxyContractConfig): Cell {
  if (c.signingKey.length !== 32) throw new Error(`signingKey must be 32 bytes, got ${c.signingKey.length}`);
  if (!Number.isInteger(c.unstakeDelay) || c.unstakeDelay < 0 || c.unstakeDelay > 0xffffffff) {
    throw new Error(`unstakeDelay must be a uint32 number of seconds, got ${c.unstakeDelay}`);
  }
  const config = beginCell().storeAddress(c.owner).storeAddress(c.root).storeCoins(c.minStake).storeUint(c.unstakeDelay, 32)
    .storeInt(checkGlobalId(c.globalId, "proxy globalId"), 32).endCell();
  return beginCell()
    .storeBuffer(c.signingKey, 32)
    .storeBit(false) // key not approved
    .storeCoins(0n).storeUint(0, 32)
    .storeCoins(0n).storeCoins(0n).storeCoins(0n)
    .storeBit(false) // empty paid map
    .storeRef(config)
    .endCell();
}

export function addStakeBody(queryId = 0n): Cell {
  return beginCell().storeUint(Op.AddStake, 32).storeUint(queryId, 64).endCell();
}
/** Claim a proxy-signed PAYOUT voucher (sender: the worker the voucher names). */
export function claimPayoutBody(v: SignedVoucher, queryId = 0n): Cell {
  return beginCell().storeUint(Op.ClaimPayout, 32).storeUint(queryId, 64).storeBuffer(v.signature, 64).storeRef(v.cell).endCell();
}
export function withdrawFeeBody(amount: bigint, queryId = 0n): Cell {
  return beginCell().storeUint(Op.WithdrawFee, 32).storeUint(queryId, 64).storeCoins(amount).endCell();
}
export function startUnstakeBody(queryId = 0n): Cell {
  return beginCell().storeUint(Op.StartUnstake, 32).storeUint(queryId, 64).endCell();
}
export function finishUnstakeBody(queryId = 0n): Cell {
  return beginCell().storeUint(Op.FinishUnstake, 32).storeUint(queryId, 64).endCell();
}
/** Sent by the root (RegisterProxy with keyAttested); accepted only from the proxy's root. */
export function approveKeyBody(queryId = 0n): Cell {
  return beginCell().storeUint(Op.ApproveKey, 32).storeUint(queryId, 64).endCell();
}

export class ProxyContract implements Contract {
  constructor(readonly address: Address, readonly init?: { code: Cell; data: Cell }) {}

  static createFromConfig(config: ProxyContractConfig, code: Cell = contractCode("proxy"), workchain = 0): ProxyContract {
    const init = { code, data: proxyConfigToCell(config) };
    return new ProxyContract(contractAddress(workchain, init), init);
  }

  /**
   * Where the genuine proxy contract with this config lives: the pinned proxy code with the STANDARD initial
   * data. Pure: no chain access. The root computes the same address when it registers a proxy.
   */
  static expectedAddress(config: ProxyContractConfig, workchain = 0): Address {
    return ProxyContract.createFromConfig(config, contractCode("proxy"), workchain).address;
  }

  static fromAddress(address: Address): ProxyContract {
    return new ProxyContract(address);
  }

  /** Deploys (owner only), staking `value` minus ADD_STAKE_GAS_RESERVE. */
  async sendDeploy(provider: ContractProvider, via: Sender, value: bigint): Promise<void> {
    await provider.internal(via, { value, sendMode: SendMode.PAY_GAS_SEPARATELY, body: addStakeBody() });
  }

  async sendAddStake(provider: ContractProvider, via: Sender, value: bigint, queryId = 0n): Promise<void> {
    await provider.internal(via, { value, sendMode: SendMode.PAY_GAS_SEPARATELY, body: addStakeBody(queryId) });
  }

  async sendClaimPayout(provider: ContractProvider, via: Sender, voucher: SignedVoucher, opts: { value?: bigint; queryId?: bigint } = {}): Promise<void> {
    await provider.internal(via, { value: opts.value ?? PROXY_OP_VALUE, sendMode: SendMode.PAY_GAS_SEPARATELY, body: claimPayoutBody(voucher, opts.queryId) });
  }

  async sendWithdrawFee(provider: ContractProvider, via: Sender, amount: bigint, opts: { value?: bigint; queryId?: bigint } = {}): Promise<void> {
    await provider.internal(via, { value: opts.value ?? PROXY_OP_VALUE, sendMode: SendMode.PAY_GAS_SEPARATELY, body: withdrawFeeBody(amount, opts.queryId) });
  }

  /** What the root sends; only the proxy's root may (anyone else gets WRONG_SENDER). */
  async sendApproveKey(provider: ContractProvider, via: Sender, opts: { value?: bigint; queryId?: bigint } = {}): Promise<void> {
    await provider.internal(via, { value: opts.value ?? PROXY_OP_VALUE, sendMode: SendMode.PAY_GAS_SEPARATELY, body: approveKeyBody(opts.queryId) });
  }

  async sendStartUnstake(provider: ContractProvider, via: Sender, opts: { value?: bigint; queryId?: bigint } = {}): Promise<void> {
    await provider.internal(via, { value: opts.value ?? PROXY_OP_VALUE, sendMode: SendMode.PAY_GAS_SEPARATELY, body: startUnstakeBody(opts.queryId) });
  }

  async sendFinishUnstake(provider: ContractProvider, via: Sender, opts: { value?: bigint; queryId?: bigint } = {}): Promise<void> {
    await provider.internal(via, { value: opts.value ?? PROXY_OP_VALUE, sendMode: SendMode.PAY_GAS_SEPARATELY, body: finishUnstakeBody(opts.queryId) });
  }

  async getState(provider: ContractProvider): Promise<ProxyState> {
    const s = (await provider.get("proxy_state", [])).stack;
    return {
      stake: s.readBigNumber(),
      unstakeAt: s.readNumber(),
      totalReceived: s.readBigNumber(),
      totalPaidOut: s.readBigNumber(),
      totalWithdrawn: s.readBigNumber(),
      balance: s.readBigNumber(),
      freeBalance: s.readBigNumber(),
      active: s.readBoolean(),
      keyApproved: s.readBoolean(),
    };
  }

  async getConfig(provider: ContractProvider): Promise<ProxyContractConfig> {
    const s = (await provider.get("proxy_config", [])).stack;
    return {
      owner: s.readAddress(),
      root: s.readAddress(),
      signingKey: bigToKey(s.readBigNumber()),
      minStake: s.readBigNumber(),
      unstakeDelay: s.readNumber(),
      globalId: s.readNumber(),
    };
  }

  /** Cumulative amount already paid to a worker (0 if never). */
  async getPaidTo(provider: ContractProvider, worker: Address): Promise<bigint> {
    const s = (await provider.get("paid_to", [{ type: "slice", cell: beginCell().storeAddress(worker).endCell() }])).stack;
    return s.readBigNumber();
  }
}
