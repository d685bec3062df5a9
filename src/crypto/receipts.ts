// Worker-signed usage receipts. At the end of each request the worker signs what it did; the proxy verifies the
// receipt before crediting the worker, and the client verifies it (and checks the counts against what it received)
// before signing its payment voucher. A worker that over-reports is refused.
//
// Canonical signed bytes (deterministic; big-endian; strings UTF-8 with a u16 length prefix):
//   0    23  domain separator, ASCII "cocoon/v1 usage-receipt" (no other signed message in the system starts so)
//   23   1   v = 1
//   24   ..  requestId   u16 len (1..128) + bytes
//   ..   ..  model       u16 len (1..256) + bytes
//   ..   ..  workerId    u16 len (1..128) + bytes
//   ..   8   promptTokens      u64 (0..2^53-1)
//   ..   8   completionTokens  u64 (0..2^53-1)
//   ..   16  costNano          u128 (nanoTON; the JSON form is its decimal string without leading zeros)
//   ..   32  requestDigest     SHA-256 of the sealed request bytes
//   ..   32  responseDigest    running SHA-256 over the sealed chunks (digest.ts)
//   (end: no trailing bytes)
// signature = Ed25519(worker receipt key, canonical bytes), 64 bytes, carried as lowercase hex.
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { ed25519SignerFromKeyObject, ed25519Verify } from "./curve25519.js";
import { ByteReader, ByteWriter, fromHex, fromUtf8, isWellFormedText, toHex, utf8 } from "./bytes.js";
import { DIGEST_BYTES } from "./digest.js";

export const RECEIPT_VERSION = 1;
export const RECEIPT_DOMAIN = utf8("cocoon/v1 usage-receipt");
export const MAX_RECEIPT_ID_BYTES = 128;
export const MAX_RECEIPT_MODEL_BYTES = 256;
export const ED25519_PUBLIC_KEY_BYTES = 32;
export const ED25519_SIGNATURE_BYTES = 64;
const U128_MAX = (1n << 128n) - 1n;
const DECIMAL_RE = /^(0|[1-9][0-9]{0,38})$/;
const RECEIPT_KEYS = ["v", "requestId", "model", "workerId", "promptTokens", "completionTokens", "costNano", "requestDigest", "responseDigest"];

/** Plausibility bounds used by `checkReceiptAgainst` (tokenizers emit at most about one token per UTF-16 unit for
 *  natural text; byte-level BPE can exceed that only for rare scripts/emoji, which the slack absorbs). */
export const DEFAULT_MAX_TOKENS_PER_CHAR = 1;
/** Extra completion tokens allowed beyond the character bound: stop/end-of-turn tokens, a stripped role prefix. */
export const COMPLETION_SLACK_TOKENS = 16;
/** Extra prompt tokens allowed for the chat template: a fixed part plus a per-message part. */
export const PROMPT_TEMPLATE_BASE_TOKENS = 64;
export const PROMPT_TEMPLATE_TOKENS_PER_MESSAGE = 16;

export interface UsageReceipt {
  v: 1;
  requestId: string;
  model: string;
  workerId: string;
  promptTokens: number;
  completionTokens: number;
  /** Total cost in nanoTON as a decimal bigint string, e.g. "123000". */
  costNano: string;
  /** Lowercase hex SHA-256 of the sealed request bytes. */
  requestDigest: string;
  /** Lowercase hex running SHA-256 over the sealed response chunks, in order. */
  responseDigest: string;
}

export interface SignedReceipt {
  receipt: UsageReceipt;
  /** Ed25519 signature over `encodeReceipt(receipt)`, lowercase hex (128 characters). */
  signature: string;
}

function fail(message: string): never {
  throw new Error(`usage receipt: ${message}`);
}

function checkString(value: unknown, field: string, maxBytes: number): string {
  if (typeof value !== "string") fail(`${field} must be a string`);
  if (!isWellFormedText(value)) fail(`${field} contains a lone surrogate (not valid Unicode)`);
  const n = utf8(value).byteLength;
  if (n < 1 || n > maxBytes) fail(`${field} must be 1..${maxBytes} UTF-8 bytes, got ${n}`);
  return value;
}

function checkCount(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    fail(`${field} must be a non-negative safe integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Checks every field of an untrusted receipt object (e.g. parsed JSON) and returns it typed. Unknown keys are refused. */
export function validateReceipt(value: unknown): UsageReceipt {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail("expected an object");
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!RECEIPT_KEYS.includes(k)) fail(`unknown field ${JSON.stringify(k)} (unsigned data is not accepted)`);
  }
  if (o.v !== RECEIPT_VERSION) fail(`unsupported version ${JSON.stringify(o.v)}; expected ${RECEIPT_VERSION}`);
  const costNano = o.costNano;
  if (typeof costNano !== "string" || !DECIMAL_RE.test(costNano) || BigInt(costNano) > U128_MAX) {
    fail(`costNano must be a decimal string without leading zeros below 2^128, got ${JSON.stringify(costNano)}`);
  }
  fromHex(o.requestDigest as string, DIGEST_BYTES, "usage receipt: requestDigest");
  fromHex(o.responseDigest as string, DIGEST_BYTES, "usage receipt: responseDigest");
  return {
    v: RECEIPT_VERSION,
    requestId: checkString(o.requestId, "requestId", MAX_RECEIPT_ID_BYTES),
    model: checkString(o.model, "model", MAX_RECEIPT_MODEL_BYTES),
    workerId: checkString(o.workerId, "workerId", MAX_RECEIPT_ID_BYTES),
    promptTokens: checkCount(o.promptTokens, "promptTokens"),
    completionTokens: checkCount(o.completionTokens, "completionTokens"),
    costNano,
    requestDigest: o.requestDigest as string,
    responseDigest: o.responseDigest as string,
  };
}

/** The canonical bytes that are signed (layout at the top of this file). */
export function encodeReceipt(receipt: UsageReceipt): Uint8Array {
  const r = validateReceipt(receipt);
  const w = new ByteWriter(256);
  w.bytes(RECEIPT_DOMAIN).u8(r.v);
  for (const s of [r.requestId, r.model, r.workerId]) {
    const b = utf8(s);
    w.u16(b.byteLength).bytes(b);
  }
  const cost = BigInt(r.costNano);
  w.u64(BigInt(r.promptTokens)).u64(BigInt(r.completionTokens)).u64(cost >> 64n).u64(cost & 0xffff_ffff_ffff_ffffn);
  w.bytes(Buffer.from(r.requestDigest, "hex")).bytes(Buffer.from(r.responseDigest, "hex"));
  return w.finish();
}

/** Strict decoder of canonical receipt bytes (untrusted input): throws an Error naming what is wrong. */
export function decodeReceipt(bytes: Uint8Array): UsageReceipt {
  if (!(bytes instanceof Uint8Array)) fail("expected bytes (Uint8Array)");
  const r = new ByteReader(bytes, "usage receipt");
  const domain = r.bytes(RECEIPT_DOMAIN.byteLength, "domain separator");
  if (!domain.every((b, i) => b === RECEIPT_DOMAIN[i])) r.fail('bad domain separator (expected "cocoon/v1 usage-receipt")');
  const v = r.u8("version");
  if (v !== RECEIPT_VERSION) r.fail(`unsupported version ${v}; expected ${RECEIPT_VERSION}`);
  const str = (field: string, max: number): string => {
    const n = r.u16(`${field} length`);
    if (n < 1 || n > max) r.fail(`${field} length must be 1..${max}, got ${n}`);
    return fromUtf8(r.bytes(n, field), `usage receipt: ${field}`);
  };
  const requestId = str("requestId", MAX_RECEIPT_ID_BYTES);
  const model = str("model", MAX_RECEIPT_MODEL_BYTES);
  const workerId = str("workerId", MAX_RECEIPT_ID_BYTES);
  const count = (field: string): number => {
    const n = r.u64(field);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) r.fail(`${field} ${n} exceeds 2^53-1`);
    return Number(n);
  };
  const promptTokens = count("promptTokens");
  const completionTokens = count("completionTokens");
  const cost = (r.u64("costNano high") << 64n) | r.u64("costNano low");
  const requestDigest = toHex(r.bytes(DIGEST_BYTES, "requestDigest"));
  const responseDigest = toHex(r.bytes(DIGEST_BYTES, "responseDigest"));
  r.end();
  return validateReceipt({
    v,
    requestId,
    model,
    workerId,
    promptTokens,
    completionTokens,
    costNano: cost.toString(),
    requestDigest,
    responseDigest,
  });
}

/** Checks the shape of an untrusted signed receipt (e.g. from JSON) and returns it typed; throws a clear Error. */
export function parseSignedReceipt(value: unknown): SignedReceipt {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail("signed receipt must be an object");
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (k !== "receipt" && k !== "signature") fail(`unknown field ${JSON.stringify(k)} in signed receipt`);
  }
  const receipt = validateReceipt(o.receipt);
  fromHex(o.signature as string, ED25519_SIGNATURE_BYTES, "usage receipt: signature");
  return { receipt, signature: o.signature as string };
}

/** A fresh Ed25519 receipt-signing key: raw public key (for attestation claims) and the private KeyObject. */
export function generateReceiptKeyPair(): { publicKey: Uint8Array; privateKey: KeyObject } {
  const kp = generateKeyPairSync("ed25519");
  return { publicKey: ed25519RawPublicKey(kp.publicKey), privateKey: kp.privateKey };
}

export function ed25519RawPublicKey(key: KeyObject): Uint8Array {
  const x = key.export({ format: "jwk" }).x;
  if (typeof x !== "string" || key.asymmetricKeyType !== "ed25519") throw new Error("usage receipt: expected an Ed25519 key");
  return new Uint8Array(Buffer.from(x, "base64url"));
}

function checkPublicKey(raw: Uint8Array): Uint8Array {
  if (!(raw instanceof Uint8Array) || raw.byteLength !== ED25519_PUBLIC_KEY_BYTES) {
    throw new Error(`usage receipt: worker public key must be ${ED25519_PUBLIC_KEY_BYTES} raw Ed25519 bytes`);
  }
  return raw;
}

/** What `buildReceipt` needs from the worker's response sealer (structurally a `ResponseSealer`). */
export interface FinishedResponse {
  readonly workerId: string;
  readonly requestDigest: string;
  readonly responseDigest: string;
  readonly finished: boolean;
}

/**
 * Worker: assembles the receipt for a finished answer from its sealer (digests and worker id come from the sealed
 * traffic itself, so they cannot drift from what the proxy and client saw). Throws if the final chunk was not sealed.
 */
export function buildReceipt(
  response: FinishedResponse,
  usage: { requestId: string; model: string; promptTokens: number; completionTokens: number; costNano: bigint | string },
): UsageReceipt {
  if (!response.finished) {
    throw new Error("usage receipt: seal the final chunk before building the receipt (the response digest is not final yet)");
  }
  return validateReceipt({
    v: RECEIPT_VERSION,
    requestId: usage.requestId,
    model: usage.model,
    workerId: response.workerId,
    promptTokens: usage.promptTokens,
    completionTokens: usage.completionTokens,
    costNano: usage.costNano.toString(),
    requestDigest: response.requestDigest,
    responseDigest: response.responseDigest,
  });
}

/** Worker: signs a receipt with its Ed25519 receipt key (the one its attestation claims bind). */
export function signReceipt(receipt: UsageReceipt, privateKey: KeyObject): SignedReceipt {
  if (privateKey.asymmetricKeyType !== "ed25519" || privateKey.type !== "private") {
    throw new Error("usage receipt: signing needs an Ed25519 private KeyObject");
  }
  const clean = validateReceipt(receipt);
  const signature = ed25519SignerFromKeyObject(privateKey).sign(encodeReceipt(clean));
  return { receipt: clean, signature: toHex(signature) };
}

/** True only when the receipt is well formed and signed by `publicKey` (raw 32-byte Ed25519). */
export function verifyReceipt(signed: SignedReceipt, publicKey: Uint8Array): boolean {
  const key = checkPublicKey(publicKey);
  let message: Uint8Array;
  let signature: Uint8Array;
  try {
    const parsed = parseSignedReceipt(signed);
    message = encodeReceipt(parsed.receipt);
    signature = fromHex(parsed.signature, ED25519_SIGNATURE_BYTES, "signature");
  } catch {
    return false;
  }
  return ed25519Verify(message, signature, key);
}

export type ReceiptViolationCode =
  | "malformed"
  | "bad-signature"
  | "request-id-mismatch"
  | "model-mismatch"
  | "worker-mismatch"
  | "request-digest-mismatch"
  | "response-digest-mismatch"
  | "completion-over-max-tokens"
  | "completion-implausible"
  | "prompt-implausible"
  | "cost-mismatch";

export interface ReceiptViolation {
  code: ReceiptViolationCode;
  message: string;
}

export interface ReceiptExpectations {
  requestId: string;
  model: string;
  /** The max_tokens the client sent; completion tokens above it are over-reporting. */
  maxTokens: number;
  /** Hex SHA-256 of the sealed request bytes this party sent/forwarded. */
  requestDigest: string;
  /** Hex running digest over the sealed chunks this party received/relayed. */
  responseDigest: string;
  /** Raw Ed25519 receipt key from the worker's verified attestation claims. */
  workerPublicKey: Uint8Array;
  /** The worker that answered (the client knows it from `ResponseOpener.workerId`; the proxy from its routing). */
  workerId?: string;
  /** Characters (UTF-16 units) of answer text the client received, reasoning text included. */
  receivedTextChars?: number;
  /** Characters of prompt text the client sent, and how many messages carried it. */
  promptChars?: number;
  promptMessages?: number;
  /** Tokens-per-character bound for the plausibility checks (default DEFAULT_MAX_TOKENS_PER_CHAR). */
  maxTokensPerChar?: number;
  /**
   * Bytes of the sealed request and of the sealed answer chunks, as forwarded/relayed (proxy) or sent/received
   * (client): the same bytes on both sides, so both reach the same verdict (see `judgeReceipt`).
   */
  sealedRequestBytes?: number;
  sealedAnswerBytes?: number;
  /** What is billed for this usage at the network's prices (nanoTON); a receipt that prices it differently is refused. */
  billedCostNano?: bigint;
}

/**
 * Everything wrong with a receipt, as messages a person can act on. An empty list means: accept, credit, pay.
 * Proxy and client pass what they forwarded/sent and relayed/received, and the cost they bill.
 */
export function checkReceiptAgainst(signed: SignedReceipt, expect: ReceiptExpectations): ReceiptViolation[] {
  let parsed: SignedReceipt;
  try {
    parsed = parseSignedReceipt(signed);
  } catch (e) {
    return [{ code: "malformed", message: `${(e as Error).message}; refuse the receipt and do not pay for this request` }];
  }
  const r = parsed.receipt;
  const out: ReceiptViolation[] = [];
  const add = (code: ReceiptViolationCode, message: string) => out.push({ code, message });
  let signatureOk = false;
  try {
    signatureOk = verifyReceipt(parsed, expect.workerPublicKey);
  } catch (e) {
    add("bad-signature", `${(e as Error).message}; take the key from the worker's verified attestation claims`);
  }
  if (!signatureOk && out.length === 0) {
    add("bad-signature", "signature does not verify under the worker's attested receipt key: forged or altered receipt");
  }
  if (r.requestId !== expect.requestId) {
    add("request-id-mismatch", `receipt is for request ${JSON.stringify(r.requestId)}, not ${JSON.stringify(expect.requestId)}`);
  }
  if (r.model !== expect.model) {
    add("model-mismatch", `receipt bills model ${JSON.stringify(r.model)} but the request asked for ${JSON.stringify(expect.model)}`);
  }
  if (expect.workerId !== undefined && r.workerId !== expect.workerId) {
    add("worker-mismatch", `receipt names worker ${JSON.stringify(r.workerId)} but ${JSON.stringify(expect.workerId)} answered`);
  }
  if (r.requestDigest !== expect.requestDigest) {
    add("request-digest-mismatch", "requestDigest differs from the sealed request that was sent: the receipt is for other bytes");
  }
  if (r.responseDigest !== expect.responseDigest) {
    add("response-digest-mismatch", "responseDigest differs from the sealed answer received: chunks were altered, added or lost");
  }
  if (r.completionTokens > expect.maxTokens) {
    add(
      "completion-over-max-tokens",
      `worker reports ${r.completionTokens} completion tokens but max_tokens was ${expect.maxTokens}: over-reporting`,
    );
  }
  const perChar = expect.maxTokensPerChar ?? DEFAULT_MAX_TOKENS_PER_CHAR;
  if (expect.receivedTextChars !== undefined) {
    const bound = Math.ceil(expect.receivedTextChars * perChar) + COMPLETION_SLACK_TOKENS;
    if (r.completionTokens > bound) {
      add(
        "completion-implausible",
        `worker reports ${r.completionTokens} completion tokens for ${expect.receivedTextChars} characters received ` +
          `(at most ${bound} plausible): over-reporting`,
      );
    }
  }
  if (expect.promptChars !== undefined) {
    const messages = Math.max(1, expect.promptMessages ?? 1);
    const bound =
      Math.ceil(expect.promptChars * perChar) + PROMPT_TEMPLATE_BASE_TOKENS + PROMPT_TEMPLATE_TOKENS_PER_MESSAGE * messages;
    if (r.promptTokens > bound) {
      add(
        "prompt-implausible",
        `worker reports ${r.promptTokens} prompt tokens for ${expect.promptChars} characters in ${messages} message(s) ` +
          `(at most ${bound} plausible): over-reporting`,
      );
    }
  }
  // Plausibility from sizes both parties see alike: a token is at least one byte of text, and sealing and framing
  // only add bytes, so no honest answer has more completion tokens than sealed answer bytes (plus end tokens).
  if (expect.sealedAnswerBytes !== undefined && r.completionTokens > expect.sealedAnswerBytes + COMPLETION_SLACK_TOKENS) {
    add("completion-implausible", `worker reports ${r.completionTokens} completion tokens for an answer of ${expect.sealedAnswerBytes} sealed bytes: over-reporting`);
  }
  if (expect.sealedRequestBytes !== undefined && r.promptTokens > expect.sealedRequestBytes + PROMPT_TEMPLATE_BASE_TOKENS) {
    add("prompt-implausible", `worker reports ${r.promptTokens} prompt tokens for a request of ${expect.sealedRequestBytes} sealed bytes: over-reporting`);
  }
  // A worker that prices its work signs the price; it must be what is billed. (A worker without a price book signs 0.)
  if (expect.billedCostNano !== undefined && r.costNano !== "0" && BigInt(r.costNano) !== expect.billedCostNano) {
    add("cost-mismatch", `receipt prices the usage at ${r.costNano} nanoTON but it is billed at ${expect.billedCostNano}: the worker's prices differ from the network's`);
  }
  return out;
}

/** Throws one Error listing every violation; returns the typed receipt when there are none. */
export function assertReceiptAcceptable(signed: SignedReceipt, expect: ReceiptExpectations): UsageReceipt {
  const violations = checkReceiptAgainst(signed, expect);
  if (violations.length > 0) {
    throw new Error(`usage receipt refused: ${violations.map((v) => `[${v.code}] ${v.message}`).join("; ")}`);
  }
  return signed.receipt;
}

/** What both the proxy and the client know about a sealed exchange; the one input of `judgeReceipt`. */
export type ReceiptJudgement = Pick<ReceiptExpectations, "requestId" | "model" | "maxTokens" | "requestDigest" | "responseDigest" | "workerId"> & {
  sealedRequestBytes: number;
  sealedAnswerBytes: number;
  billedCostNano?: bigint;
};

/**
 * ONE judgment for proxy and client (issue: a difference between them locked clients out): every rule here runs on
 * facts both parties hold alike, so a receipt one of them refuses, the other refuses too, and a refused receipt is
 * billed to no one. Judges a receipt as it arrived in a trailer, the way the proxy and the client both must before any money moves:
 * it parses, it checks out against what this party forwarded or received under one of the worker's attested
 * receipt keys (its current one, or the one of the identity the request was sealed to before a renewal), and it
 * covers exactly the usage that was reported. Returns why it is unacceptable, or undefined when it is fine.
 */
export function judgeReceipt(
  raw: unknown,
  expect: ReceiptJudgement,
  workerKeys: readonly Uint8Array[],
  reported: { prompt_tokens: number; completion_tokens: number },
): string | undefined {
  let signed: SignedReceipt;
  try {
    signed = parseSignedReceipt(raw);
  } catch (err) {
    return (err as Error).message;
  }
  if (workerKeys.length === 0) return "the worker has no attested receipt key";
  let violations: ReceiptViolation[] = [];
  for (const workerPublicKey of workerKeys) {
    violations = checkReceiptAgainst(signed, { ...expect, workerPublicKey });
    if (violations.length === 0) break;
  }
  if (violations.length) return violations.map((v) => v.message).join("; ");
  if (signed.receipt.promptTokens !== reported.prompt_tokens || signed.receipt.completionTokens !== reported.completion_tokens) {
    return "the usage reported differs from the worker's signed receipt";
  }
  return undefined;
}
