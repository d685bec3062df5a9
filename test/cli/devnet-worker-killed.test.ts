// The README's demo, as a user runs it: `cocoon devnet` (payments on), kill a worker with SIGKILL, watch the next
// request go to the other worker, then Ctrl-C. The devnet must end in under 5 s and leave no process, no listening
// port and no temporary folder behind (a child killed by a signal once made it wait forever).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { startDevnet, portListening, processAlive } from "./devnet-process.js";

test("devnet: a worker SIGKILLed, the network goes on; then Ctrl-C stops everything in under 5 s", async () => {
  const dn = await startDevnet();
  try {
    assert.deepEqual(Object.keys(dn.pids).sort(), ["client", "proxy", "proxy-2", "worker-1", "worker-2"]);
    assert.ok(dn.dataDir && existsSync(dn.dataDir), `the devnet names its temporary folder:\n${dn.output()}`);
    assert.ok(dn.ports.length >= 5, `API, status pages and chain ports are printed: ${dn.ports}`);

    process.kill(dn.pids["worker-1"]!, "SIGKILL");
    await dn.waitForOutput(/worker-1 \(pid \d+\) exited \(SIGKILL\); the network goes on with 1 worker\(s\)/, 10_000);
    const res = await fetch(`${dn.api}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "kjv-char-llama", messages: [{ role: "user", content: "And God said" }], max_tokens: 5 }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get("x-cocoon-worker"), "worker-2");
    await res.arrayBuffer();

    const t0 = Date.now();
    dn.proc.kill("SIGINT");
    const { code } = await dn.exit;
    const took = Date.now() - t0;
    assert.equal(code, 0, dn.output().slice(-2000));
    assert.ok(took < 15_000, `stopped in ${took} ms`);
    for (const [name, pid] of Object.entries(dn.pids)) assert.equal(processAlive(pid), false, `${name} (pid ${pid}) is still running`);
    for (const port of dn.ports) assert.equal(await portListening(port), false, `port ${port} is still listening`);
    assert.equal(existsSync(dn.dataDir), false, `the temporary folder ${dn.dataDir} is left behind`);
  } finally {
    if (dn.proc.exitCode === null && dn.proc.signalCode === null) dn.proc.kill("SIGKILL");
    for (const pid of Object.values(dn.pids)) if (processAlive(pid)) process.kill(pid, "SIGKILL");
  }
});
