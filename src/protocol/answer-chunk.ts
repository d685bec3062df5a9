// The plaintext of one answer chunk, worker -> client (sealed end to end, or in clear with --no-seal):
//   {"deltas": ["text", ...]}                     the deltas the engine produced together, in order
//   {"deltas": [], "finishReason": "stop"|...}    the final chunk
// One chunk per batch rather than per token keeps a fast engine's answer to a few chunks; the client turns every
// delta into its own event for the app.
import { StreamError } from "./connection.js";

export function encodeAnswerChunk(deltas: readonly string[], finishReason?: string): Buffer {
  return Buffer.from(JSON.stringify(finishReason === undefined ? { deltas } : { deltas, finishReason }));
}

/** The text deltas of a chunk (untrusted bytes): throws a StreamError saying what was wrong. */
export function decodeAnswerChunk(data: Uint8Array): string[] {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8"));
  } catch {
    throw new StreamError("worker_failed", "the worker sent a malformed chunk (not JSON; expected {\"deltas\": [strings]})");
  }
  const deltas = (v as { deltas?: unknown } | null)?.deltas;
  if (!Array.isArray(deltas) || !deltas.every((d) => typeof d === "string")) {
    throw new StreamError("worker_failed", "the worker sent a malformed chunk (expected {\"deltas\": [strings]})");
  }
  return deltas;
}
