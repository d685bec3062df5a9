// `cocoon devnet` as a new user runs it (`npm start`): one command, a whole network, the embedded model.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import OpenAI from "openai";
import { CLI } from "../helpers/processes.js";

test("devnet starts, serves chat completions through curl-like HTTP and the SDK, and stops on Ctrl-C", async () => {
  const proc = spawn(process.execPath, ["--import", "tsx", CLI, "devnet", "--port", "0"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, COCOON_LOG: "warn" } });
  let out = "";
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (out += d));
  try {
    const api = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`devnet not ready in 90 s:\n${out}`)), 90_000);
      proc.stdout.on("data", () => {
        const m = /Network ready[\s\S]*?(http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(out);
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        }
      });
      proc.once("exit", (c) => reject(new Error(`devnet exited ${c}:\n${out}`)));
    });
    assert.match(out, /\[4\/4\] client/);
    assert.match(out, /curl .*\/chat\/completions/);

    const res = await fetch(`${api}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "kjv-char-llama", messages: [{ role: "user", content: "And God said" }], max_tokens: 30, temperature: 0 }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as any;
    assert.equal(body.usage.completion_tokens, 30);
    assert.equal(body.choices[0].message.content.length, 30);
    assert.equal(res.headers.get("x-cocoon-sealed"), "true");

    const sdk = new OpenAI({ baseURL: api, apiKey: "x", maxRetries: 0 });
    const stream = await sdk.chat.completions.create({ model: "kjv-char-llama", messages: [{ role: "user", content: "In the beginning" }], max_tokens: 25, temperature: 0, stream: true });
    let text = "";
    let chunks = 0;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? "";
      chunks++;
    }
    assert.equal(text.length, 25);
    assert.ok(chunks >= 25, "streamed token by token");

    const models = (await (await fetch(`${api}/models`)).json()) as any;
    assert.equal(models.data[0].workers, 2);
  } finally {
    proc.kill("SIGINT");
    const code = await new Promise<number | null>((r) => (proc.exitCode !== null ? r(proc.exitCode) : proc.once("exit", (c) => r(c))));
    assert.equal(code, 0, `devnet should exit cleanly on Ctrl-C:\n${out.slice(-2000)}`);
  }
});
