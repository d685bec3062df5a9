// `cocoon devnet` (payments on) whose only proxy is SIGKILLed: it says it stops, and it does, promptly, even when the
// user presses Ctrl-C meanwhile; no process, listening port or temporary folder is left (it once hung for minutes).
// With two proxies (the default), one SIGKILLed: the network goes on through the other, found on the root.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { startDevnet, portListening, processAlive } from "./devnet-process.js";

test("devnet: the proxy SIGKILLed, then Ctrl-C: everything stops in under 5 s, nothing left behind", async () => {
  const dn = await startDevnet(["--workers", "1", "--proxies", "1"]);
  try {
    assert.deepEqual(Object.keys(dn.pids).sort(), ["client", "proxy", "worker-1"]);
    assert.ok(dn.dataDir && existsSync(dn.dataDir));

    const t0 = Date.now();
    process.kill(dn.pids.proxy!, "SIGKILL");
    await dn.waitForOutput(/proxy \(pid \d+\) exited \(SIGKILL\); the devnet cannot work without it and stops/, 5_000);
    dn.proc.kill("SIGINT");
    const { code } = await dn.exit;
    const took = Date.now() - t0;
    assert.equal(code, 1, `a devnet that lost its proxy exits with 1:\n${dn.output().slice(-2000)}`);
    assert.ok(took < 15_000, `stopped in ${took} ms:\n${dn.output().slice(-2000)}`);
    for (const [name, pid] of Object.entries(dn.pids)) assert.equal(processAlive(pid), false, `${name} (pid ${pid}) is still running`);
    for (const port of dn.ports) assert.equal(await portListening(port), false, `port ${port} is still listening`);
    assert.equal(existsSync(dn.dataDir), false, `the temporary folder ${dn.dataDir} is left behind`);
  } finally {
    if (dn.proc.exitCode === null && dn.proc.signalCode === null) dn.proc.kill("SIGKILL");
    for (const pid of Object.values(dn.pids)) if (processAlive(pid)) process.kill(pid, "SIGKILL");
  }
});

test("devnet with two proxies on the root: one SIGKILLed, requests go on through the other", async () => {
  const dn = await startDevnet(["--workers", "1"]);
  try {
    assert.deepEqual(Object.keys(dn.pids).sort(), ["client", "proxy", "proxy-2", "worker-1"]);
    assert.match(dn.output(), /registered proxy .* clients connect to 127\.0\.0\.1:\d+, workers to 127\.0\.0\.1:\d+/);
    const ask = () => fetch(`${dn.api}/chat/completions`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "kjv-char-llama", messages: [{ role: "user", content: "And God said" }], max_tokens: 4 }),
    });
    // Both proxies serve: the worker and the client found both on the root.
    const st = (await (await fetch(`${dn.api.replace(/\/v1$/, "")}/status`)).json()) as any;
    assert.equal(st.discovery.registered.length, 2);
    process.kill(dn.pids.proxy!, "SIGKILL");
    await dn.waitForOutput(/proxy \(pid \d+\) exited \(SIGKILL\); the network goes on with 1 proxy/, 10_000);
    for (let i = 0; i < 3; i++) {
      const res = await ask();
      assert.equal(res.status, 200, await res.text());
      const after = (await (await fetch(`${dn.api.replace(/\/v1$/, "")}/status`)).json()) as any;
      assert.equal(res.headers.get("x-cocoon-proxy"), after.peers.find((p: any) => p.connected).contract);
    }
    dn.proc.kill("SIGINT");
    const { code } = await dn.exit;
    assert.equal(code, 0);
  } finally {
    if (dn.proc.exitCode === null && dn.proc.signalCode === null) dn.proc.kill("SIGKILL");
    for (const pid of Object.values(dn.pids)) if (processAlive(pid)) process.kill(pid, "SIGKILL");
  }
});
