// The one error vocabulary of the network: every code a node puts in a stream reset, a GoAway or a thrown error, with
// the HTTP status an app sees for it and whether sending the same request again may succeed. Every role uses these
// codes; a code a peer sends that is not here is read as `protocol_error` (the peer's text stays in the message).
// Modelled on undici's lib/core/errors.js and fastify's coded errors: a closed, typed set instead of free strings.

export interface ErrorCodeSpec {
  /** HTTP status the client's API answers with. */
  readonly status: number;
  /** Whether the same request may succeed when sent again (later, or through another worker or proxy). */
  readonly retryable: boolean;
  /** What the code means, for docs and for people reading logs. */
  readonly meaning: string;
}

export const ERROR_CODES = {
  bad_request: { status: 400, retryable: false, meaning: "the request is malformed or not allowed; fix it" },
  model_not_found: { status: 404, retryable: false, meaning: "no worker serves this model" },
  too_large: { status: 413, retryable: false, meaning: "the request or a frame is larger than the limit" },
  insufficient_funds: { status: 402, retryable: false, meaning: "the client's payment channel cannot cover the request; top it up" },
  voucher_missing: { status: 402, retryable: true, meaning: "the proxy charged answers the client has not signed for; the client reconciles and retries" },
  overloaded: { status: 429, retryable: true, meaning: "busy (capacity, queue, credit bound or per-client limit); retry shortly" },
  no_worker: { status: 503, retryable: true, meaning: "no worker can take the request now (none, draining, or all sealed-to workers gone)" },
  stale_keys: { status: 503, retryable: true, meaning: "a worker cannot open a request sealed to keys it no longer holds; seal again to fresh candidates" },
  worker_failed: { status: 502, retryable: true, meaning: "the worker failed or misbehaved (bad chunk, bad receipt, impossible usage)" },
  backend_failed: { status: 502, retryable: true, meaning: "the worker's inference engine failed" },
  connection_lost: { status: 502, retryable: true, meaning: "the connection to a peer closed under the request" },
  protocol_error: { status: 502, retryable: false, meaning: "a peer broke the wire protocol (or sent an error code outside this list)" },
  stream_closed: { status: 502, retryable: false, meaning: "data was sent on a stream after it ended" },
  timeout: { status: 504, retryable: true, meaning: "a peer did not answer in time" },
  cancelled: { status: 499, retryable: false, meaning: "the app or client cancelled the request" },
  replayed: { status: 400, retryable: false, meaning: "a worker already opened this sealed request once; a replay is never answered twice" },
  unsupported_parameter: { status: 400, retryable: false, meaning: "the worker's engine cannot honour a parameter at the value asked (docs/openai.md); the message names it" },
  context_length_exceeded: { status: 400, retryable: false, meaning: "the prompt does not fit the model's context; shorten it" },
  too_many_streams: { status: 429, retryable: true, meaning: "a connection holds as many streams as its peer allows" },
  frame_too_large: { status: 413, retryable: false, meaning: "a frame exceeds the protocol's size limit" },
  version_mismatch: { status: 502, retryable: false, meaning: "the two nodes share no protocol version; upgrade the older one" },
  wrong_protocol: { status: 502, retryable: false, meaning: "the peer does not speak this protocol or version" },
  hello_timeout: { status: 504, retryable: true, meaning: "the peer did not complete the Hello exchange in time" },
  goaway: { status: 502, retryable: true, meaning: "the peer closed the connection (shutting down or refusing)" },
  shutdown: { status: 503, retryable: true, meaning: "the node is stopping" },
  reconnecting: { status: 502, retryable: true, meaning: "the link is being replaced by a fresh connection" },
  replaced: { status: 502, retryable: true, meaning: "the same worker connected again; the older connection goes" },
  peer_refused: { status: 502, retryable: false, meaning: "the peer's attestation or identity was refused by this node's policy" },
  pow_failed: { status: 502, retryable: true, meaning: "the peer sent no valid proof of work for its handshake" },
  busy: { status: 503, retryable: true, meaning: "too many handshakes are waiting for verification; try again shortly" },
  wrong_role: { status: 400, retryable: false, meaning: "a node of another role connected to this port" },
  internal: { status: 500, retryable: false, meaning: "a bug in this node; the message says where" },
} as const satisfies Record<string, ErrorCodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}

/** The code a peer sent, if it is one of ours; otherwise `fallback` (a peer's unknown code is a protocol error). */
export function errorCodeFromPeer(value: unknown, fallback: ErrorCode = "protocol_error"): ErrorCode {
  return isErrorCode(value) ? value : fallback;
}

export function httpStatusOf(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}

export function isRetryable(code: ErrorCode): boolean {
  return ERROR_CODES[code].retryable;
}

/** An error that carries one of the network's codes. Subclasses say where it arose (stream, frame, meter, backend). */
export class CocoonError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "CocoonError";
  }

  get status(): number {
    return httpStatusOf(this.code);
  }

  get retryable(): boolean {
    return isRetryable(this.code);
  }
}

/** A failure with a code and a message, as routing decisions pass it around before it becomes a reset. */
export interface CodedProblem {
  code: ErrorCode;
  message: string;
}
