// Public surface of the crypto core: request sealing (HPKE), sealed response chunks, digests and usage receipts.
export {
  generateHpkeKeyPair,
  openRequest,
  sealRequest,
  MAX_MODEL_BYTES,
  MAX_REQUEST_ID_BYTES,
  type OpenedRequest,
  type SealedRequestResult,
  type SealMeta,
  type SealRecipientKey,
  type WorkerHpkeKey,
} from "./seal.js";
export {
  decodeSealedRequest,
  encodeSealedRequest,
  MAX_BODY_BYTES,
  MAX_RECIPIENTS,
  MAX_WORKER_ID_BYTES,
  type SealedRecipient,
  type SealedRequest,
} from "./envelope.js";
export {
  CHUNK_OVERHEAD_BYTES,
  FIRST_CHUNK_OVERHEAD_BYTES,
  MAX_CHUNK_BYTES,
  RESPONSE_SALT_BYTES,
  ResponseOpener,
  ResponseSealer,
} from "./stream.js";
export {
  DEFAULT_MAX_ENTRIES_PER_KEY,
  ReplayCache,
  type ReplayCacheOptions,
  type ReplayCacheStats,
  type ReplayVerdict,
} from "./replay.js";
export { requestDigest, ResponseDigest } from "./digest.js";
export {
  assertReceiptAcceptable,
  buildReceipt,
  checkReceiptAgainst,
  decodeReceipt,
  ed25519RawPublicKey,
  encodeReceipt,
  generateReceiptKeyPair,
  judgeReceipt,
  parseSignedReceipt,
  signReceipt,
  validateReceipt,
  verifyReceipt,
  type ReceiptExpectations,
  type ReceiptViolation,
  type ReceiptViolationCode,
  type SignedReceipt,
  type UsageReceipt,
} from "./receipts.js";
