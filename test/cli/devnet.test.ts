// `cocoon devnet` as a new user runs it (`npm start`): one command, a whole network with the embedded model, the
// local chain and payments. One devnet serves every test here; the proxy's decrypted traffic is captured to prove
// it never sees prompts or answers.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { CLI, waitFor } from "../helpers/processes.js";

let proc: ChildProcess;
let out = "";
let api = "";
const capture = join(mkdtempSync(join(tmpdir(), "capture-")), "proxy.bin");

before(async () => {
  proc = spawn(process.execPath, [...CLI.execArgv, CLI.file, "devnet", "--port", "0"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, COCOON_LOG: "info", COCOON_PROXY_CAPTURE: capture },
  });
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  api = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`devnet not ready in 120 s:\n${out}`)), 120_000);
    proc.stdout!.on("data", () => {
      const m = /Network ready[\s\S]*?(http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    proc.once("exit", (c) => reject(new Error(`devnet exited ${c}:\n${out}`)));
  });
});

after(async () => {
  proc.kill("SIGINT");
  const code = await new Promise<number | null>((r) => (proc.exitCode !== null ? r(proc.exitCode) : proc.once("exit", (c) => r(c))));
  assert.equal(code, 0, `devnet should exit cleanly on Ctrl-C:\n${out.slice(-2000)}`);
});

const statusOf = async (url: string) => (await (await fetch(url)).json()) as any;

test("devnet prints progress, the base URL and an example curl", () => {
  assert.match(out, /\[(\d)\/\1\] client/, "the client starts last");
  assert.match(out, /registered proxy .* on root .*: clients connect to 127\.0\.0\.1:\d+, workers to 127\.0\.0\.1:\d+/);
  assert.match(out, /curl .*\/chat\/completions/);
  assert.match(out, /\[chain\]\s+ready/);
});

test("chat completions through plain HTTP and the SDK, streaming token by token, priced in nanoTON", async () => {
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
  assert.equal(res.headers.get("x-cocoon-receipt"), "verified");
  assert.ok(Number.isInteger(body.usage.total_cost) && body.usage.total_cost > 0);
  assert.equal(body.usage.total_cost, body.usage.prompt_total_cost + body.usage.completion_total_cost);

  const sdk = new OpenAI({ baseURL: api, apiKey: "x", maxRetries: 0 });
  const stream = await sdk.chat.completions.create({ model: "kjv-char-llama", messages: [{ role: "user", content: "In the beginning" }], max_tokens: 25, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = "";
  let chunks = 0;
  let usage: any;
  for await (const c of stream) {
    text += c.choices[0]?.delta?.content ?? "";
    chunks++;
    if (c.usage) usage = c.usage;
  }
  assert.equal(text.length, 25);
  assert.ok(chunks >= 25, "streamed token by token");
  assert.ok(usage.total_cost > 0, "the final streamed chunk carries the cost");

  const client = await statusOf(`${api.replace(/\/v1$/, "")}/status`);
  // One channel per proxy the client uses (npm start runs two, found through the root).
  const channels = Object.values(client.paymentsByProxy ?? {}) as { network: string; spent: string }[];
  assert.ok(channels.length >= 1 && channels.every((c) => c.network === "devnet"), JSON.stringify(client.paymentsByProxy));
  const spent = channels.reduce((s, c) => s + BigInt(c.spent), 0n);
  assert.equal(spent, BigInt(body.usage.total_cost) + BigInt(usage.total_cost), "costs add up exactly to spent");
  // Both workers serve (the second may still be joining on a busy machine: its model load is slow).
  let workers = 0;
  for (let i = 0; i < 100 && workers < 2; i++) {
    workers = (await statusOf(`${api}/models`)).data[0].workers;
    if (workers < 2) await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(workers, 2);
});

test("the proxy process never sees the prompt or the answer", async () => {
  const marker = "ZEPHYRINE-91b7";
  const res = await fetch(`${api}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "kjv-char-llama", messages: [{ role: "user", content: `Speak of ${marker} and the LORD` }], max_tokens: 60, temperature: 0 }),
  });
  const answer = ((await res.json()) as any).choices[0].message.content as string;
  assert.equal(answer.length, 60, "the app receives the full answer");
  const seen = await waitFor("the capture to hold the exchange", async () => {
    const c = readFileSync(capture).toString("latin1");
    return c.includes('"op":"inference"') ? c : undefined;
  });
  assert.ok(!seen.includes(marker), "prompt marker reached the proxy");
  assert.ok(!seen.includes("Speak of"), "prompt text reached the proxy");
  for (let i = 0; i + 16 <= answer.length; i += 8) assert.ok(!seen.includes(answer.slice(i, i + 16)), `answer text reached the proxy: ${answer.slice(i, i + 16)}`);
});
