// The checks an inference stream's head passes before anything runs, at the proxy (from a client) and at a worker
// (from a proxy): the head's schema, the sealing policy, the receiver's in-flight limit, one request per id. A refused
// stream is reset with the code the sender acts on: bad_request (fix the request) or overloaded (retry later).
import type { Stream } from "./connection.js";
import { inferenceHeadSchema, parseMessage, type InferenceHead } from "./messages.js";

export interface HeadRules {
  /** When set, an unsealed request is refused with this sentence (production policy). */
  sealedOnly?: string;
  /** Requests the receiver holds now (running or waiting) against its `limit`. */
  inFlight: number;
  limit: number;
  /** The overloaded refusal's sentence. */
  overloaded(limit: number): string;
  /** Requests in flight on this connection, by request id: a second one with the same id is refused. */
  running: { has(requestId: string): boolean };
  /** The duplicate id refusal's sentence. */
  duplicate(requestId: string): string;
}

/** The stream's inference head when it passes every rule; undefined when the stream was reset with the refusal. */
export function admitInferenceHead(stream: Pick<Stream, "head" | "reset">, rules: HeadRules): InferenceHead | undefined {
  let head: InferenceHead;
  try {
    head = parseMessage(inferenceHeadSchema, stream.head, "inference head");
  } catch (err) {
    stream.reset("bad_request", (err as Error).message);
    return undefined;
  }
  if (rules.sealedOnly !== undefined && !head.sealed) {
    stream.reset("bad_request", rules.sealedOnly);
    return undefined;
  }
  if (rules.inFlight >= rules.limit) {
    stream.reset("overloaded", rules.overloaded(rules.limit));
    return undefined;
  }
  if (rules.running.has(head.requestId)) {
    stream.reset("bad_request", rules.duplicate(head.requestId));
    return undefined;
  }
  return head;
}
