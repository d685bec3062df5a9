// The embedded backend: real llama.cpp generation with the model this project trains and ships.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { EmbeddedBackend, DEFAULT_MODEL_FILE, sha256File } from "../../src/worker/backends/embedded.js";
import type { GenerationRequest } from "../../src/protocol/openai.js";

let backend: EmbeddedBackend;
before(async () => {
  backend = await EmbeddedBackend.load({ capacity: 2 });
});
after(() => backend.close());

const req = (over: Partial<GenerationRequest>): GenerationRequest => ({
  endpoint: "completions",
  model: "kjv-char-llama",
  prompt: "And God said",
  maxTokens: 40,
  temperature: 0,
  stop: [],
  ...over,
});

async function run(r: GenerationRequest, signal = new AbortController().signal) {
  const gen = backend.generate(r, signal);
  const deltas: string[] = [];
  for (;;) {
    const step = await gen.next();
    if (step.done) return { deltas, text: deltas.join(""), result: step.value };
    assert.ok(step.value.length > 0, "never an empty batch");
    deltas.push(...step.value.map((d) => (typeof d === "string" ? d : (d.content ?? ""))));
  }
}

test("the shipped model file matches its committed SHA-256", async () => {
  const sums = readFileSync(new URL("../../models/SHA256SUMS", import.meta.url), "utf8");
  const expected = /^([0-9a-f]{64})\s+\*?kjv-char-llama\.gguf$/m.exec(sums)?.[1];
  assert.ok(expected, "models/SHA256SUMS lists the model");
  assert.equal(await sha256File(DEFAULT_MODEL_FILE), expected);
  assert.equal(backend.models()[0]!.digest, expected);
});

test("greedy decoding is deterministic and streams token by token", async () => {
  const a = await run(req({}));
  const b = await run(req({}));
  assert.equal(a.text, b.text);
  assert.equal(a.result.usage.completion_tokens, 40);
  assert.equal(a.result.finishReason, "length");
  assert.equal(a.result.usageSource, "engine");
  // A character-level model emits one character per token, each as its own delta.
  assert.equal(a.deltas.length, 40);
  assert.ok(a.deltas.every((d) => d.length === 1));
  // Trained on the King James Bible: the continuation is English letters and spaces, not noise.
  assert.match(a.text, /^[A-Za-z ,.;:'\n]+$/);
  assert.ok(/\b(the|and|of|unto|LORD)\b/.test(a.text), `expected KJV-like words in ${JSON.stringify(a.text)}`);
});

test("greedy output is the exact text this model was verified to produce", async () => {
  // Recorded when the model was built (models/README.md); llama.cpp and torch agree on it token for token.
  const r = await run(req({ maxTokens: 60 }));
  assert.equal(r.text, " unto the LORD thy God of the LORD of hosts, and the LORD sh");
});

test("sampling with a seed is reproducible, and differs from greedy", async () => {
  const s1 = await run(req({ temperature: 0.8, seed: 42 }));
  const s2 = await run(req({ temperature: 0.8, seed: 42 }));
  const g = await run(req({}));
  assert.equal(s1.text, s2.text);
  assert.notEqual(s1.text, g.text);
});

test("stop strings end the answer before the stop text", async () => {
  const full = await run(req({ maxTokens: 60 }));
  const word = full.text.trim().split(/\s+/)[2]!;
  const stopped = await run(req({ maxTokens: 60, stop: [` ${word}`] }));
  assert.equal(stopped.result.finishReason, "stop");
  assert.equal(stopped.text, full.text.slice(0, full.text.indexOf(` ${word}`)));
});

test("chat requests use the transcript format and generate", async () => {
  const r = await run(req({ endpoint: "chat", prompt: undefined, messages: [{ role: "user", content: "Who made the heaven?" }], maxTokens: 20 }));
  assert.equal(r.result.usage.completion_tokens, 20);
  assert.ok(r.result.usage.prompt_tokens > 20);
});

test("abort stops generation and frees the sequence", async () => {
  const ac = new AbortController();
  const gen = backend.generate(req({ maxTokens: 200 }), ac.signal);
  await gen.next();
  ac.abort();
  let result;
  for (;;) {
    const s = await gen.next();
    if (s.done) {
      result = s.value;
      break;
    }
  }
  assert.equal(result.finishReason, "cancelled");
  // Both sequences are free again: two concurrent requests run.
  const [x, y] = await Promise.all([run(req({ maxTokens: 5 })), run(req({ maxTokens: 5 }))]);
  assert.equal(x.text, y.text);
});

test("a prompt longer than the context is refused with a clear message", async () => {
  await assert.rejects(run(req({ prompt: "In the beginning ".repeat(100) })), (e: any) => e.code === "context_length_exceeded" && /maximum context length is \d+ tokens/.test(e.message));
});
