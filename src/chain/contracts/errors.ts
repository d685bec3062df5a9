/**
 * Exit codes thrown by the Cocoon contracts, mirrored from contracts/errors.tolk (a test checks that the
 * two files agree). Use `describeExitCode` to turn a failed transaction's exit code into a sentence.
 */
export const ContractError = {
  WRONG_SENDER: 401,
  UNKNOWN_OP: 402,
  BAD_SIGNATURE: 403,
  WRONG_CONTRACT: 404,
  STALE_VOUCHER: 405,
  INSUFFICIENT_FUNDS: 406,
  CHANNEL_NOT_OPEN: 407,
  CHANNEL_CLOSED: 408,
  CLOSE_NOT_REQUESTED: 409,
  CLOSE_TOO_EARLY: 410,
  WRONG_VOUCHER_TAG: 412,
  WRONG_WORKER: 413,
  UNSTAKE_NOT_REQUESTED: 414,
  UNSTAKE_TOO_EARLY: 415,
  UNSTAKING: 416,
  BAD_PARAMS: 417,
  NOT_FOUND: 418,
  BAD_IMAGE_KIND: 419,
  WRONG_NETWORK: 420,
  VALUE_TOO_LOW: 421,
  BAD_CONFIG: 422,
} as const;
export type ContractErrorName = keyof typeof ContractError;

const EXPLANATIONS: Record<ContractErrorName, string> = {
  WRONG_SENDER: "the message came from an address that may not send it; send it from the owner/client/proxy operator wallet",
  UNKNOWN_OP: "the body starts with an opcode this contract does not handle; check the wrapper and contract versions",
  BAD_SIGNATURE: "the voucher signature does not verify with the key stored in the contract; sign voucherCell.hash() with the right key",
  WRONG_CONTRACT: "the voucher names another contract; vouchers only work on the channel/proxy they were signed for",
  STALE_VOUCHER: "the voucher's cumulative amount is not above what was already paid; submit a newer voucher",
  INSUFFICIENT_FUNDS: "the payment exceeds the money available for it (deposit, or balance above the stake); top up or ask for less",
  CHANNEL_NOT_OPEN: "the channel is closing or closed; open a new channel (new nonce) to deposit",
  CHANNEL_CLOSED: "the channel is closed for good; nothing more can be redeemed from it",
  CLOSE_NOT_REQUESTED: "finish-close needs a start-close from the client first",
  CLOSE_TOO_EARLY: "the close delay has not passed yet; retry after close_requested_at + close_delay",
  WRONG_VOUCHER_TAG: "this is another kind of voucher (payment vs close vs payout)",
  WRONG_WORKER: "the payout voucher names another worker; send it from the worker's own wallet",
  UNSTAKE_NOT_REQUESTED: "finish-unstake needs a start-unstake first",
  UNSTAKE_TOO_EARLY: "the unstake delay has not passed yet",
  UNSTAKING: "the proxy is leaving (unstake requested): no new stake and no fee withdrawal",
  BAD_PARAMS: "root parameters out of range (proxy fee at most 10000 basis points; close and unstake delays within the root's bounds)",
  NOT_FOUND: "nothing to remove: the entry is not in the root contract",
  BAD_IMAGE_KIND: "image kind must be 1 (worker) or 2 (proxy)",
  WRONG_NETWORK: "the voucher names another network (TON global id) than the contract's; sign it for this network",
  VALUE_TOO_LOW: "not enough TON attached for what the operation may cost; attach more (see the wrapper's *_OP_VALUE)",
  BAD_CONFIG: "the root refuses this proxy config: stake or unstake delay below its parameters, or a delay above the maximum",
};

/** Human-readable explanation of an exit code (ours or a few common TVM ones). */
export function describeExitCode(code: number): string {
  for (const [name, value] of Object.entries(ContractError) as [ContractErrorName, number][]) {
    if (value === code) return `${name} (${code}): ${EXPLANATIONS[name]}`;
  }
  if (code === 0 || code === 1) return `success (${code})`;
  if (code === 9) return "cell underflow (9): a message or voucher is shorter than its layout";
  if (code === 13 || code === -14) return `out of gas (${code}): attach more TON`;
  return `exit code ${code}`;
}
