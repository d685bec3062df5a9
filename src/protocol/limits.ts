// Request size limits, in one place: what each hop accepts, and why the numbers relate as they do.
//
//   app --HTTP--> client --sealed--> proxy --sealed--> worker
//
// An app's JSON body is at most MAX_APP_JSON_BODY (OpenAI's chat bodies are far smaller; the limit bounds the client's
// memory per request). Sealing adds an envelope (a few hundred bytes per candidate worker), so the sealed request that
// proxy and worker accept, MAX_SEALED_REQUEST, has ample room above it; an audio upload (passed through as multipart)
// may use that room less SEAL_OVERHEAD_ALLOWANCE. The crypto envelope's own hard cap (crypto/envelope.ts
// MAX_BODY_BYTES, 16 MiB) and the wire's frame cap (protocol/frame.ts MAX_FRAME_PAYLOAD, 16 MiB) are format limits
// above all of these, not policy.

/** Largest JSON body an app may send to the client's API (default of `maxBodyBytes`). */
export const MAX_APP_JSON_BODY = 1024 * 1024;
/** Largest (sealed) request body the proxy relays and a worker opens. */
export const MAX_SEALED_REQUEST = 4 * 1024 * 1024;
/** Room kept for the sealing envelope when an upload is passed through as it is. */
export const SEAL_OVERHEAD_ALLOWANCE = 64 * 1024;
/** Largest audio upload the client accepts for /v1/audio/transcriptions. */
export const MAX_AUDIO_UPLOAD = MAX_SEALED_REQUEST - SEAL_OVERHEAD_ALLOWANCE;
