// The embedded backend's sequence slots under churn (issue #21): a request gets a slot or a clear `overloaded`,
// never the engine's "No sequences left", and a cancelled request's slot is free the moment its generator ends.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { EmbeddedBackend } from "../../src/worker/backends/embedded.js";
import { BackendError } from "../../src/worker/backends/backend.js";
import type { GenerationRequest } from "../../src/protocol/openai.js";

const CAPACITY = 4;
let backend: EmbeddedBackend;
before(async () => {
  backend = await EmbeddedBackend.load({ capacity: CAPACITY });
});
after(() => backend.close());

const req = (over: Partial<GenerationRequest> = {}): GenerationRequest => ({
  endpoint: "completions",
  model: "kjv-char-llama",
  prompt: "And God said",
  maxTokens: 6,
  temperature: 0,
  stop: [],
  ...over,
});

/** Deterministic pseudo-random numbers, so a failing round can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

type Mode = "complete" | "pre-aborted" | "abort-before-first-token" | "abort-midway" | "return-early" | "throw-early";
/** Ways a request that takes a slot can end. */
const HOLDING: Mode[] = ["complete", "abort-before-first-token", "abort-midway", "return-early", "throw-early"];

type Outcome = { kind: "done"; finishReason: string } | { kind: "stopped-by-consumer" } | { kind: "error"; err: unknown };

/**
 * Starts a generation and issues its first next() synchronously (so every request of a round asks for a slot in the
 * same tick), then drives it to the end the way `mode` says.
 */
function start(mode: Mode, cutAfter: number, over: Partial<GenerationRequest> = {}): Promise<Outcome> {
  const ac = new AbortController();
  if (mode === "pre-aborted") ac.abort();
  const gen = backend.generate(req({ maxTokens: 12, ...over }), ac.signal);
  const first = gen.next();
  if (mode === "abort-before-first-token") ac.abort();
  return (async (): Promise<Outcome> => {
    try {
      let step = await first;
      let tokens = 0;
      while (!step.done) {
        tokens += step.value.length;
        if (tokens >= cutAfter) {
          if (mode === "abort-midway") ac.abort();
          if (mode === "return-early") {
            await gen.return(undefined as never);
            return { kind: "stopped-by-consumer" };
          }
          if (mode === "throw-early") {
            await assert.rejects(gen.throw(new Error("consumer failed")), /consumer failed/);
            return { kind: "stopped-by-consumer" };
          }
        }
        step = await gen.next();
      }
      return { kind: "done", finishReason: step.value.finishReason };
    } catch (err) {
      return { kind: "error", err };
    }
  })();
}

function describe(o: Outcome): string {
  return o.kind === "error" ? `error ${(o.err as Error).name}: ${(o.err as Error).message}` : JSON.stringify(o);
}

test("churn with cancels: exactly `capacity` requests run, the rest get `overloaded`, and slots come back at once", async () => {
  const random = rng(21);
  for (let round = 0; round < 40; round++) {
    // No delay between rounds: the previous round's cancelled requests ended just now.
    const extra = 1 + Math.floor(random() * 2);
    const modes = Array.from({ length: CAPACITY + extra }, () => HOLDING[Math.floor(random() * HOLDING.length)]!);
    // Requests cancelled before they start need no slot: mixed in anywhere, they must neither take one nor be refused.
    for (let n = Math.floor(random() * 3); n > 0; n--) modes.splice(Math.floor(random() * (modes.length + 1)), 0, "pre-aborted");
    const outcomes = await Promise.all(modes.map((m) => start(m, 1 + Math.floor(random() * 4))));
    const overloaded = outcomes.filter((o) => o.kind === "error" && o.err instanceof BackendError && o.err.code === "overloaded");
    const others = outcomes.filter((o) => o.kind === "error" && !overloaded.includes(o));
    assert.deepEqual(others.map(describe), [], `round ${round}: only \`overloaded\` may fail (modes ${modes.join(", ")})`);
    assert.equal(overloaded.length, extra, `round ${round}: exactly ${CAPACITY} of ${CAPACITY + extra} run; got ${outcomes.map(describe).join("; ")}`);
    for (const [i, o] of outcomes.entries()) {
      if (o.kind !== "done") continue;
      const want = modes[i] === "complete" ? "length" : "cancelled";
      // The request that overloaded is an error, so every "done" one ran; a cancel that raced the last token may finish normally.
      assert.ok(o.finishReason === want || o.finishReason === "length", `round ${round}: ${modes[i]} ended ${o.finishReason}`);
    }
    assert.deepEqual(backend.slots!(), { total: CAPACITY, busy: 0 }, `round ${round}: every slot is free once its generator ended`);
  }
});

test("`capacity` requests run together right after cancels, and the next one is refused with `overloaded`", async () => {
  for (let round = 0; round < 10; round++) {
    // Cancel a full house in every way at once...
    await Promise.all([start("return-early", 1), start("abort-midway", 2), start("abort-before-first-token", 1), start("throw-early", 1)]);
    // ...and fill every slot again in the same tick.
    const ac = new AbortController();
    const gens = Array.from({ length: CAPACITY }, () => backend.generate(req({ maxTokens: 3 }), ac.signal));
    const firsts = gens.map((g) => g.next());
    assert.deepEqual(backend.slots!(), { total: CAPACITY, busy: CAPACITY });
    await assert.rejects(backend.generate(req(), ac.signal).next(), (err: unknown) => {
      assert.ok(err instanceof BackendError, `expected a BackendError, got ${String(err)}`);
      assert.equal(err.code, "overloaded");
      assert.match(err.message, new RegExp(`all ${CAPACITY} sequences are busy`));
      return true;
    });
    await Promise.all(firsts);
    for (const g of gens) while (!(await g.next()).done);
    assert.deepEqual(backend.slots!(), { total: CAPACITY, busy: 0 });
  }
});

test("a reused slot forgets its last request: greedy output is exact on every slot after cancels", async () => {
  // Leave every slot with a different, half-finished history.
  await Promise.all([
    start("abort-midway", 3, { prompt: "In the beginning" }),
    start("return-early", 5, { prompt: "Jesus wept" }),
    start("throw-early", 2, { prompt: "The LORD is my shepherd" }),
    start("abort-before-first-token", 1, { prompt: "Blessed are" }),
  ]);
  // Sequential requests take the slots in turn, so each of the CAPACITY runs lands on a different slot.
  for (let i = 0; i < CAPACITY; i++) {
    const gen = backend.generate(req({ maxTokens: 60 }), new AbortController().signal);
    let text = "";
    for (;;) {
      const step = await gen.next();
      if (step.done) break;
      text += step.value.join("");
    }
    // Recorded when the model was built (models/README.md); see embedded.test.ts.
    assert.equal(text, " unto the LORD thy God of the LORD of hosts, and the LORD sh", `run ${i}`);
  }
  assert.deepEqual(backend.slots!(), { total: CAPACITY, busy: 0 });
});

test("a request that is not served takes no slot: wrong model and too-long prompts are refused as bad requests", async () => {
  await assert.rejects(backend.generate(req({ model: "other" }), new AbortController().signal).next(), /serves kjv-char-llama/);
  await assert.rejects(backend.generate(req({ prompt: "In the beginning ".repeat(100) }), new AbortController().signal).next(), (e: any) => e.code === "context_length_exceeded" && /maximum context length is \d+ tokens/.test(e.message));
  assert.deepEqual(backend.slots!(), { total: CAPACITY, busy: 0 });
});
