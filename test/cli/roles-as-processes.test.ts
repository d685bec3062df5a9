// The network as separate processes, started with the CLI exactly as a user would: proxy, two workers on an
// OpenAI-compatible engine, and a client. One worker is killed mid-stream; the other serves the next request.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startFakeUpstream } from "../../src/dev/fake-upstream.js";
import { startRole, waitFor, type RoleProcess } from "../helpers/processes.js";

test("client, proxy and workers as separate processes", async () => {
  const upstream = await startFakeUpstream({ model: "engine-model", tokens: 40, tokenDelayMs: 20 });
  const roles: RoleProcess[] = [];
  try {
    const proxy = startRole(["proxy", "--worker-port", "0", "--client-port", "0", "--status-port", "0"]);
    roles.push(proxy);
    const p = await proxy.ready;
    const workers = ["wa", "wb"].map((name) =>
      startRole(["worker", "--proxy", `127.0.0.1:${p.workerPort}`, "--backend", "openai", "--upstream", upstream.url, "--name", name, "--status-port", "0"]),
    );
    roles.push(...workers);
    const client = startRole(["client", "--port", "0", "--proxy", `127.0.0.1:${p.clientPort}`]);
    roles.push(client);
    const c = await client.ready;
    await Promise.all(workers.map((w) => w.ready));
    const api = String(c.api);
    await waitFor("both workers to join", async () => {
      const r = (await (await fetch(`${api}/models`)).json()) as any;
      return r.data?.[0]?.workers === 2 ? true : undefined;
    });

    const sdk = new OpenAI({ baseURL: api, apiKey: "x", maxRetries: 0 });
    const stream = await sdk.chat.completions.create({ model: "engine-model", messages: [{ role: "user", content: "alpha beta" }], stream: true }).withResponse();
    const victimName = stream.response.headers.get("x-cocoon-worker");
    const victim = workers[victimName === "wa" ? 0 : 1]!;
    let received = 0;
    await assert.rejects(async () => {
      for await (const chunk of stream.data) {
        received++;
        if (received === 3) victim.proc.kill("SIGKILL");
        void chunk;
      }
    }, /failed mid-answer|connection|worker/i);
    assert.ok(received >= 3);

    const next = await sdk.chat.completions.create({ model: "engine-model", messages: [{ role: "user", content: "gamma" }], max_tokens: 4 }).withResponse();
    assert.equal(next.data.choices[0]!.message.content, "gamma0 gamma1 gamma2 gamma3");
    assert.notEqual(next.response.headers.get("x-cocoon-worker"), victimName);
    assert.match(next.response.headers.get("x-cocoon-attestation") ?? "", /INSECURE/);

    const ps = (await (await fetch(String(p.status))).json()) as any;
    assert.equal(ps.role, "proxy");
    assert.equal(ps.peers.workers.length, 1, "the killed worker left the pool");
  } finally {
    await Promise.all(roles.map((r) => r.stop()));
    await upstream.close();
  }
});
