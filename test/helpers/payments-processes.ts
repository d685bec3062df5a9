// Test helper for paid networks of real processes: free ports picked up front (so a restarted proxy comes back on
// the same ones), batch timers rewritten into the devnet's payments configs, JSON status pages and OpenAI calls.
import { createServer } from "node:net";
import { readFileSync, writeFileSync } from "node:fs";
import type { BatchSettingsJson } from "../../src/payments/config.js";

/** `n` distinct ports that were free a moment ago (listen on 0, note the port, close). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () =>
      new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        const s = createServer();
        s.once("error", reject);
        s.listen(0, "127.0.0.1", () => resolve(s));
      }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Replaces the `batch` settings of a payments config file (the devnet writes slow, 10-15 s timers). */
export function setBatch(file: string, batch: BatchSettingsJson): void {
  const cfg = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...cfg, batch }, null, 2) + "\n", { mode: 0o600 });
}

/** The `payments` section of a role's /status page (amounts as decimal strings). */
export async function paymentsStatus(statusUrl: string): Promise<Record<string, any>> {
  const res = await fetch(statusUrl, { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`GET ${statusUrl}: HTTP ${res.status}`);
  const body = (await res.json()) as { payments?: Record<string, any> };
  if (!body.payments) throw new Error(`${statusUrl} has no payments section; was the role started with --payments?`);
  return body.payments;
}

export interface PaidAnswer {
  requestId: string;
  worker: string | null;
  totalCost: bigint;
  promptTokens: number;
  completionTokens: number;
}

/** One non-streaming chat completion through the client API; throws with the API's error text on a non-200. */
export async function paidChat(api: string, model: string, content: string, maxTokens: number): Promise<PaidAnswer> {
  const res = await fetch(`${api}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content }], max_tokens: maxTokens }),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST ${api}/chat/completions ("${content}"): HTTP ${res.status}: ${text.slice(0, 500)}`);
  const body = JSON.parse(text) as { id: string; usage?: Record<string, unknown> };
  const cost = body.usage?.total_cost;
  const exact = typeof cost === "string" ? /^[0-9]+$/.test(cost) : Number.isSafeInteger(cost) && (cost as number) >= 0;
  if (!exact) throw new Error(`answer to "${content}" has no exact usage.total_cost (nanoTON integer): ${text.slice(0, 500)}`);
  return {
    requestId: res.headers.get("x-request-id") ?? body.id,
    worker: res.headers.get("x-cocoon-worker"),
    totalCost: BigInt(cost as string | number),
    promptTokens: Number(body.usage?.prompt_tokens),
    completionTokens: Number(body.usage?.completion_tokens),
  };
}
