// Child process: the fake streaming engine (bench/fake-stream-engine.ts) on its own CPU time. Reports
// {type:"ready", url} over IPC.   argv: tokens stepMs [model]
import { startFakeStreamEngine } from "../fake-stream-engine.js";

const engine = await startFakeStreamEngine({ tokens: Number(process.argv[2] ?? 128), stepMs: Number(process.argv[3] ?? 20), model: process.argv[4] ?? "fake-model" });
process.send?.({ type: "ready", url: engine.url });
const stop = () => void engine.close().finally(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.on("disconnect", stop);
