/**
 * The HTTP transport `makeTonClient` gives TonClient (an axios adapter on Node's fetch), for errors people can act on:
 * TON Center answers a refused call with a non-200 status and `{"ok":false,"error":...}`; axios alone would print only
 * "Request failed with status code 500". Here the response is handed to TonClient whatever its status, so it reports
 * "Received error: {...}" with the server's message; a connection that fails says which endpoint and what to start.
 */
import type { TonClient } from "@ton/ton";

type HttpAdapter = NonNullable<NonNullable<ConstructorParameters<typeof TonClient>[0]>["httpAdapter"]>;

/** An error from the network layer (no HTTP answer at all), with the endpoint and a hint in the message. */
export class TonEndpointUnreachable extends Error {
  constructor(readonly endpoint: string, readonly reason: string, hint: string) {
    super(`no TON API answers at ${endpoint} (${reason}). ${hint}`);
  }
}

function reasonOf(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return cause.code;
  if ((e as Error).name === "TimeoutError" || (e as Error).name === "AbortError") return "timed out";
  return cause?.message ?? (e as Error).message;
}

/** `hint` says what to start or check when the endpoint does not answer (it depends on the network). */
export function tonHttpAdapter(hint: string): HttpAdapter {
  return async (config) => {
    const url = config.url ?? "";
    const headers: Record<string, string> = {};
    const given = (config.headers as { toJSON?: () => Record<string, unknown> } | undefined)?.toJSON?.() ?? {};
    for (const [k, v] of Object.entries(given)) if (typeof v === "string") headers[k] = v;
    let res: Response;
    try {
      res = await fetch(url, {
        method: (config.method ?? "get").toUpperCase(),
        headers,
        body: typeof config.data === "string" ? config.data : config.data === undefined ? undefined : JSON.stringify(config.data),
        signal: config.timeout ? AbortSignal.timeout(config.timeout) : undefined,
      });
    } catch (e) {
      throw new TonEndpointUnreachable(url, reasonOf(e), hint);
    }
    const text = await res.text();
    let data: unknown = text;
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON (a proxy's error page): TonClient reports it as it is
    }
    return {
      data, status: res.status, statusText: res.statusText, headers: Object.fromEntries(res.headers), config, request: undefined,
    };
  };
}
