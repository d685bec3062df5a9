/**
 * Message opcodes (first 32 bits of a body) of the Cocoon contracts, mirrored from the `struct (0x...)`
 * prefixes in contracts/*.tolk (a test checks that the two agree). Every body is `op:uint32 query_id:uint64 ...`.
 */
export const Op = {
  // client channel (incoming)
  TopUp: 0x43480001,
  Redeem: 0x43480002,
  StartClose: 0x43480003,
  FinishClose: 0x43480004,
  CooperativeClose: 0x43480005,
  // client channel (outgoing)
  ChannelPayment: 0x43480010,
  ChannelRefund: 0x43480011,
  // proxy (incoming; also ChannelPayment)
  AddStake: 0x50580001,
  ClaimPayout: 0x50580002,
  WithdrawFee: 0x50580003,
  StartUnstake: 0x50580004,
  FinishUnstake: 0x50580005,
  ApproveKey: 0x50580006,
  // proxy (outgoing)
  Payout: 0x50580010,
  FeeWithdrawal: 0x50580011,
  Unstaked: 0x50580012,
  // root (owner only)
  SetParams: 0x52540001,
  SetModel: 0x52540002,
  RemoveModel: 0x52540003,
  SetImage: 0x52540004,
  RegisterProxy: 0x52540005,
  RemoveProxy: 0x52540006,
  TransferOwnership: 0x52540007,
  AcceptOwnership: 0x52540008,
} as const;
export type OpName = keyof typeof Op;

/** Money each contract keeps so it outlives storage fees (contracts/shared.tolk STORAGE_RESERVE). */
export const STORAGE_RESERVE = 10_000_000n;
