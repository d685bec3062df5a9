// Child process: the fake OpenAI-compatible upstream (src/dev/fake-upstream.ts) on its own CPU time, so the
// load generator and the upstream do not share one event loop. Reports {type:"ready", url} over IPC.
//   argv: [tokens] [tokenDelayMs] [model]
import { startFakeUpstream } from "../../src/dev/fake-upstream.js";

const tokens = Number(process.argv[2] ?? 16);
const tokenDelayMs = Number(process.argv[3] ?? 0);
const up = await startFakeUpstream({ model: process.argv[4] ?? "fake-model", tokens, tokenDelayMs });
process.send?.({ type: "ready", url: up.url });
const stop = () => void up.close().finally(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.on("disconnect", stop);
