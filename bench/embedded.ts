// Embedded model: tokens/s of the same GGUF through the whole network (client -> proxy -> worker with
// --backend embedded, sealed, streamed) against the same engine called directly in this process, with the
// same settings (1 thread, 1 sequence, greedy, same prompt and max_tokens).
import { basename } from "node:path";
import { EmbeddedBackend } from "../src/worker/backends/embedded.js";
import { parseGenerationRequest } from "../src/protocol/openai.js";
import { countSseEvents } from "./lib/load.js";
import { CLI } from "./lib/peers.js";
import { forkReady, waitUntil, type Child } from "./lib/procs.js";
import { summarize, type Summary } from "./lib/stats.js";

export interface EmbeddedConfig {
  modelFile: string;
  maxTokens: number;
  rounds: number;
  threads: number;
}

export interface EmbeddedResult {
  model: string;
  maxTokens: number;
  direct: Summary;
  network: Summary;
  /** Completion tokens reported per answer (direct, network). */
  tokens: { direct: number; network: number };
  /** Time to first streamed chunk through the network, ms. */
  firstChunkMs: Summary;
}

const PROMPT = "And God said";

type Progress = (line: string) => void;

export async function measureEmbedded(cfg: EmbeddedConfig, progress: Progress): Promise<EmbeddedResult> {
  const model = basename(cfg.modelFile).replace(/\.gguf$/i, "");
  const body = { model, prompt: PROMPT, max_tokens: cfg.maxTokens, temperature: 0 };

  // Direct: the engine in this process.
  const backend = await EmbeddedBackend.load({ modelFile: cfg.modelFile, capacity: 1, threads: cfg.threads });
  const direct: number[] = [];
  let directTokens = 0;
  try {
    const req = parseGenerationRequest("completions", body);
    for (let r = 0; r <= cfg.rounds; r++) {
      const t0 = performance.now();
      const gen = backend.generate(req, new AbortController().signal);
      let step = await gen.next();
      while (!step.done) step = await gen.next();
      const ms = performance.now() - t0;
      directTokens = step.value.usage.completion_tokens;
      if (r === 0) continue; // warm-up
      direct.push((directTokens * 1000) / ms);
      progress(`  direct   round ${r}/${cfg.rounds}: ${directTokens} tokens, ${((directTokens * 1000) / ms).toFixed(0)} tokens/s`);
    }
  } finally {
    await backend.close();
  }

  // Through the network, as separate processes.
  const env = { COCOON_LOG: "warn" };
  const children: Child[] = [];
  const network: number[] = [];
  const firstChunk: number[] = [];
  let networkTokens = 0;
  try {
    const proxy = await forkReady("cocoon proxy (embedded)", CLI, ["proxy", "--worker-port", "0", "--client-port", "0", "--status-port", "0"], env);
    children.push(proxy.child);
    const worker = await forkReady(
      "cocoon worker (embedded)",
      CLI,
      ["worker", "--proxy", `127.0.0.1:${proxy.ready.workerPort}`, "--backend", "embedded", "--model-file", cfg.modelFile, "--threads", String(cfg.threads), "--capacity", "1", "--status-port", "0"],
      env,
      60_000,
    );
    children.push(worker.child);
    const client = await forkReady("cocoon client (embedded)", CLI, ["client", "--port", "0", "--proxy", `127.0.0.1:${proxy.ready.clientPort}`], env);
    children.push(client.child);
    const url = `http://127.0.0.1:${client.ready.port}`;
    await waitUntil(`the client to list ${model}`, async () => {
      const m = (await (await fetch(`${url}/v1/models`)).json()) as { data?: { id: string }[] };
      return !!m.data?.some((x) => x.id === model);
    });
    for (let r = 0; r <= cfg.rounds; r++) {
      const t0 = performance.now();
      const res = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
      });
      if (res.status !== 200) throw new Error(`the network answered HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      let text = "";
      let first = Number.NaN;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (Number.isNaN(first)) first = performance.now() - t0;
        text += dec.decode(value, { stream: true });
      }
      const ms = performance.now() - t0;
      const { done } = countSseEvents(text);
      if (!done) throw new Error(`the network's stream did not end with [DONE]: ${text.slice(-300)}`);
      const usage = text
        .split("\n")
        .filter((l) => l.startsWith("data: {") && l.includes('"usage"'))
        .map((l) => (JSON.parse(l.slice(6)) as { usage?: { completion_tokens: number } }).usage)
        .find((u) => u && typeof u.completion_tokens === "number");
      if (!usage) throw new Error("the network's stream carried no usage; cannot count tokens");
      networkTokens = usage.completion_tokens;
      if (r === 0) continue;
      network.push((networkTokens * 1000) / ms);
      firstChunk.push(first);
      progress(`  network  round ${r}/${cfg.rounds}: ${networkTokens} tokens, ${((networkTokens * 1000) / ms).toFixed(0)} tokens/s, first chunk after ${first.toFixed(1)} ms`);
    }
  } finally {
    for (const c of children.reverse()) await c.stop();
  }
  return { model, maxTokens: cfg.maxTokens, direct: summarize(direct), network: summarize(network), tokens: { direct: directTokens, network: networkTokens }, firstChunkMs: summarize(firstChunk) };
}
