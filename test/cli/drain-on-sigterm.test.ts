// SIGTERM drains, on every role: one network of real processes (a proxy, two workers on an OpenAI-compatible engine,
// two clients), a long streamed answer running, then SIGTERM to one role after the other: a client, a worker, the
// proxy. Each time the running answer still completes with 200 and every token, new work is refused the way the
// role promises (or goes elsewhere), and the role then exits 0 on its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startFakeUpstream } from "../../src/dev/fake-upstream.js";
import { startRole, waitFor, type RoleProcess } from "../helpers/processes.js";

const TOKENS = 30;
const TOKEN_DELAY_MS = 60;
const MODEL = "engine-model";

/** `p`, or a failure naming `what` after `ms`: a stall shows up as a readable failure, not as a file timeout. */
function within<T>(what: string, p: Promise<T>, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms / 1000} s`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

interface RunningStream {
  worker: string | null;
  /** Resolves with the whole streamed text once [DONE] arrived; rejects if the stream broke or ended early. */
  done: Promise<string>;
}

/** Starts a streamed chat completion (must answer 200) and resolves once its first content token arrived. */
async function startStream(api: string, prompt: string): Promise<RunningStream> {
  const res = await fetch(`${api}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: prompt }], stream: true }),
    signal: AbortSignal.timeout(30_000),
  });
  if (res.status !== 200) throw new Error(`streamed request "${prompt}": HTTP ${res.status}: ${await res.text()}`);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  let text = "";
  let finished = false;
  const pump = async (until: () => boolean): Promise<void> => {
    while (!until()) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the stream ended without [DONE] after ${JSON.stringify(text)}${buffered}`);
      buffered += decoder.decode(value, { stream: true });
      let i: number;
      while ((i = buffered.indexOf("\n\n")) >= 0) {
        const data = buffered.slice(0, i).replace(/^data: /, "");
        buffered = buffered.slice(i + 2);
        if (data === "[DONE]") {
          finished = true;
          continue;
        }
        const chunk = JSON.parse(data) as { error?: { message: string }; choices?: { delta?: { content?: string } }[] };
        if (chunk.error) throw new Error(`the stream failed after ${JSON.stringify(text)}: ${chunk.error.message}`);
        text += chunk.choices?.[0]?.delta?.content ?? "";
      }
    }
  };
  await within(`the first token of "${prompt}"`, pump(() => text.length > 0));
  const done = within(`the rest of "${prompt}"`, pump(() => finished).then(() => text));
  done.catch(() => {}); // awaited by the test; this only keeps an early failure from being reported as unhandled
  return { worker: res.headers.get("x-cocoon-worker"), done };
}

/** A short non-streamed request: its status, error code and message, and which worker served it. */
async function shortRequest(api: string, prompt: string): Promise<{ status: number; worker: string | null; code?: string; message?: string }> {
  const res = await fetch(`${api}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: prompt }], max_tokens: 2 }),
    signal: AbortSignal.timeout(15_000),
  });
  const body = (await res.json()) as { error?: { code: string; message: string } };
  return { status: res.status, worker: res.headers.get("x-cocoon-worker"), code: body.error?.code, message: body.error?.message };
}

const expected = (prompt: string) => Array.from({ length: TOKENS }, (_, i) => `${prompt}${i}`).join(" ");

test("SIGTERM lets running requests finish, then exits 0: client, worker, proxy", async (t) => {
  const upstream = await startFakeUpstream({ model: MODEL, tokens: TOKENS, tokenDelayMs: TOKEN_DELAY_MS });
  const roles: RoleProcess[] = [];
  try {
    const proxy = startRole(["proxy", "--worker-port", "0", "--client-port", "0", "--status-port", "0"]);
    roles.push(proxy);
    const p = await within("the proxy to start", proxy.ready, 60_000);
    const workers = ["wa", "wb"].map((name) =>
      startRole(["worker", "--proxy", `127.0.0.1:${p.workerPort}`, "--backend", "openai", "--upstream", upstream.url, "--name", name, "--status-port", "0"]),
    );
    const clients = [0, 1].map(() => startRole(["client", "--port", "0", "--proxy", `127.0.0.1:${p.clientPort}`]));
    roles.push(...workers, ...clients);
    const [a, b] = await within("the clients and workers to start", Promise.all([...clients.map((c) => c.ready), ...workers.map((w) => w.ready)]), 60_000);
    const [apiA, apiB] = [String(a!.api), String(b!.api)];
    await waitFor("both workers to join", async () => ((await (await fetch(`${apiB}/models`, { signal: AbortSignal.timeout(5_000) })).json()) as { data?: { workers: number }[] }).data?.[0]?.workers === 2 || undefined);

    await t.test("client: stops taking HTTP requests, finishes the running answer, exits 0", async () => {
      const s = await startStream(apiA, "alpha");
      const exit = clients[0]!.stop("SIGTERM");
      await waitFor("client A to stop taking requests", async () => {
        try {
          const r = await fetch(`${apiA}/models`, { headers: { connection: "close" }, signal: AbortSignal.timeout(5_000) });
          await r.arrayBuffer();
          return r.status === 503 ? true : undefined;
        } catch {
          return true; // connection refused: no longer listening
        }
      }, 5_000);
      assert.equal(await s.done, expected("alpha"), "the running answer is complete");
      assert.equal(await within("client A to exit", exit), 0, clients[0]!.output().slice(-2000));
      assert.match(clients[0]!.output(), /received SIGTERM/);
    });

    await t.test("worker: announces itself draining, new requests go to the other worker, finishes the running answer, exits 0", async () => {
      const s = await startStream(apiB, "beta");
      const victim = workers[s.worker === "wa" ? 0 : 1]!;
      const other = s.worker === "wa" ? "wb" : "wa";
      const exit = victim.stop("SIGTERM");
      const seen = await waitFor("the proxy to see the worker disabled", async () => {
        const st = (await (await fetch(String(p.status), { signal: AbortSignal.timeout(5_000) })).json()) as { peers: { workers: { id: string; enabled: boolean; reason?: string }[] } };
        const w = st.peers.workers.find((x) => x.id === s.worker);
        return w && !w.enabled ? w : undefined;
      }, 5_000);
      assert.match(seen.reason ?? "", /shutting down/);
      for (let i = 0; i < 3; i++) {
        const r = await shortRequest(apiB, `next${i}`);
        assert.equal(r.status, 200, r.message);
        assert.equal(r.worker, other, "nothing new goes to a draining worker");
      }
      assert.equal(await s.done, expected("beta"), "the running answer is complete");
      assert.equal(await within("the worker to exit", exit), 0, victim.output().slice(-2000));
    });

    await t.test("proxy: refuses new requests with a retryable 503 saying it shuts down, relays the running answer, exits 0", async () => {
      const s = await startStream(apiB, "gamma");
      const exit = proxy.stop("SIGTERM");
      await waitFor("the proxy to start draining", async () => (/received SIGTERM/.test(proxy.output()) ? true : undefined), 5_000);
      const r = await shortRequest(apiB, "refused");
      assert.equal(r.status, 503);
      assert.equal(r.code, "no_worker");
      assert.match(r.message ?? "", /shutting down/);
      assert.equal(await s.done, expected("gamma"), "the running answer is complete");
      assert.equal(await within("the proxy to exit", exit), 0, proxy.output().slice(-2000));
    });
  } finally {
    await Promise.all(roles.map((r) => r.stop("SIGKILL")));
    await upstream.close();
  }
});
