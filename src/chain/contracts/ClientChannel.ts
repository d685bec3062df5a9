/**
 * Wrapper of contracts/client_channel.tolk: a payment channel from one client to one proxy.
 * Works with any ContractProvider (sandbox `blockchain.openContract`, or `TonClient.open`).
 *
 * Storage layout (root cell):
 *   client_key:uint256 status:uint2 close_requested_at:uint32 deposited:Coins redeemed:Coins ^config
 *   config = client:MsgAddressInt proxy_operator:MsgAddressInt proxy_vault:MsgAddressInt close_delay:uint32 nonce:uint64
 *            global_id:int32
 * A genuine channel is recognised by its ADDRESS: `ClientChannel.expectedAddress(config)` rebuilds it from the
 * pinned code and the standard (zeroed) initial data; never trust a contract because its getters look right.
 * Message bodies: see the `*Body` functions below; all are `op:uint32 query_id:uint64 ...`.
 */
import {
  Address, beginCell, Cell, contractAddress, SendMode, toNano,
  type Contract, type ContractProvider, type Sender,
} from "@ton/core";
import { contractCode } from "../compile.js";
import { Op } from "./opcodes.js";
import { checkGlobalId, type SignedVoucher } from "../vouchers.js";

export const ChannelStatus = { OPEN: 0, CLOSING: 1, CLOSED: 2 } as const;
export type ChannelStatusCode = (typeof ChannelStatus)[keyof typeof ChannelStatus];

/** Value to attach to redeem / close messages; what gas does not use goes to the proxy contract (or stays). */
export const CHANNEL_OP_VALUE = toNano("0.05");
/** Smallest value a Redeem or CooperativeClose may carry (client_channel.tolk MIN_PAYING_OP_VALUE). */
export const CHANNEL_MIN_PAYING_OP_VALUE = toNano("0.02");

export interface ClientChannelConfig {
  client: Address;
  /** Client's Ed25519 public key (32 bytes): signs payment and close vouchers. */
  clientKey: Buffer;
  /** Proxy operator's wallet: the only sender allowed to redeem and to close cooperatively. */
  proxyOperator: Address;
  /** Proxy contract that receives redeemed money. */
  proxyVault: Address;
  /** Seconds between start-close and finish-close (use the root's `clientCloseDelay`). */
  closeDelay: number;
  /** Distinguishes channels of the same client and proxy; never reuse one after a close. */
  nonce: bigint;
  /** TON global id of the network (chain/network.ts `globalIdFor`): vouchers must name it. */
  globalId: number;
}

export interface ChannelState {
  status: ChannelStatusCode;
  closeRequestedAt: number;
  deposited: bigint;
  redeemed: bigint;
  balance: bigint;
}

export function clientChannelConfigToCell(c: ClientChannelConfig): Cell {
  if (c.clientKey.length !== 32) throw new Error(`clientKey must be 32 bytes, got ${c.clientKey.length}`);
  if (!Number.isInteger(c.closeDelay) || c.closeDelay < 0 || c.closeDelay > 0xffffffff) {
    throw new Error(`closeDelay must be a uint32 number of seconds, got ${c.closeDelay}`);
  }
  const config = beginCell()
    .storeAddress(c.client).storeAddress(c.proxyOperator).storeAddress(c.proxyVault)
    .storeUint(c.closeDelay, 32).storeUint(c.nonce, 64)
    .storeInt(checkGlobalId(c.globalId, "channel globalId"), 32)
    .endCell();
  return beginCell()
    .storeBuffer(c.clientKey, 32)
    .storeUint(ChannelStatus.OPEN, 2).storeUint(0, 32)
    .storeCoins(0n).storeCoins(0n)
    .storeRef(config)
    .endCell();
}

export function topUpBody(queryId = 0n): Cell {
  return beginCell().storeUint(Op.TopUp, 32).storeUint(queryId, 64).endCell();
}
/** Redeem a client-signed PAYMENT voucher (sender: proxy operator). */
export function redeemBody(v: SignedVoucher, queryId = 0n): Cell {
  return beginCell().storeUint(Op.Redeem, 32).storeUint(queryId, 64).storeBuffer(v.signature, 64).storeRef(v.cell).endCell();
}
export function startCloseBody(queryId = 0n): Cell {
  return beginCell().storeUint(Op.StartClose, 32).storeUint(queryId, 64).endCell();
}
export function finishCloseBody(queryId = 0n): Cell {
  return beginCell().storeUint(Op.FinishClose, 32).storeUint(queryId, 64).endCell();
}
/** Close at once with a client-signed CLOSE voucher (sender: proxy operator). */
export function cooperativeCloseBody(v: SignedVoucher, queryId = 0n): Cell {
  return beginCell().storeUint(Op.CooperativeClose, 32).storeUint(queryId, 64).storeBuffer(v.signature, 64).storeRef(v.cell).endCell();
}

export class ClientChannel implements Contract {
  constructor(readonly address: Address, readonly init?: { code: Cell; data: Cell }) {}

  static createFromConfig(config: ClientChannelConfig, code: Cell = contractCode("client_channel"), workchain = 0): ClientChannel {
    const init = { code, data: clientChannelConfigToCell(config) };
    return new ClientChannel(contractAddress(workchain, init), init);
  }

  /**
   * Where the genuine channel with this config lives: the pinned client_channel code with the STANDARD initial
   * data (open, nothing deposited or redeemed). Pure: no chain access.
   */
  static expectedAddress(config: ClientChannelConfig, workchain = 0): Address {
    return ClientChannel.createFromConfig(config, contractCode("client_channel"), workchain).address;
  }

  static fromAddress(address: Address): ClientChannel {
    return new ClientChannel(address);
  }

  /** Deploys with a first deposit of `value` (minus the deployment gas). */
  async sendDeploy(provider: ContractProvider, via: Sender, value: bigint): Promise<void> {
    await provider.internal(via, { value, sendMode: SendMode.PAY_GAS_SEPARATELY, body: topUpBody() });
  }

  async sendTopUp(provider: ContractProvider, via: Sender, value: bigint, queryId = 0n): Promise<void> {
    await provider.internal(via, { value, sendMode: SendMode.PAY_GAS_SEPARATELY, body: topUpBody(queryId) });
  }

  async sendRedeem(provider: ContractProvider, via: Sender, voucher: SignedVoucher, opts: { value?: bigint; queryId?: bigint } = {}): Promise<void> {
    await provider.internal(via, { value: opts.value ?? CHANNEL_OP_VALUE, sendMode: SendMode.PAY_GAS_SEPARATELY, body: redeemBody(voucher, opts.queryId) });
  }

  async sendStartClose(provider: ContractProvider, via: Sender, opts: { value?: bigint; queryId?: bigint } = {}): Promise<void> {
    await provider.internal(via, { value: opts.value ?? CHANNEL_OP_VALUE, sendMode: SendMode.PAY_GAS_SEPARATELY, body: startCloseBody(opts.queryId) });
  }

  async sendFinishClose(provider: ContractProvider, via: Sender, opts: { value?: bigint; queryId?: bigint } = {}): Promise<void> {
    await provider.internal(via, { value: opts.value ?? CHANNEL_OP_VALUE, sendMode: SendMode.PAY_GAS_SEPARATELY, body: finishCloseBody(opts.queryId) });
  }

  async sendCooperativeClose(provider: ContractProvider, via: Sender, voucher: SignedVoucher, opts: { value?: bigint; queryId?: bigint } = {}): Promise<void> {
    await provider.internal(via, { value: opts.value ?? CHANNEL_OP_VALUE, sendMode: SendMode.PAY_GAS_SEPARATELY, body: cooperativeCloseBody(voucher, opts.queryId) });
  }

  async getState(provider: ContractProvider): Promise<ChannelState> {
    const s = (await provider.get("channel_state", [])).stack;
    return {
      status: s.readNumber() as ChannelStatusCode,
      closeRequestedAt: s.readNumber(),
      deposited: s.readBigNumber(),
      redeemed: s.readBigNumber(),
      balance: s.readBigNumber(),
    };
  }

  async getConfig(provider: ContractProvider): Promise<ClientChannelConfig> {
    const s = (await provider.get("channel_config", [])).stack;
    return {
      client: s.readAddress(),
      clientKey: bigToKey(s.readBigNumber()),
      proxyOperator: s.readAddress(),
      proxyVault: s.readAddress(),
      closeDelay: s.readNumber(),
      nonce: s.readBigNumber(),
      globalId: s.readNumber(),
    };
  }
}

/** uint256 from the stack -> 32-byte big-endian buffer. */
export function bigToKey(x: bigint): Buffer {
  return Buffer.from(x.toString(16).padStart(64, "0"), "hex");
}
