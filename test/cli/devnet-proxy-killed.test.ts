// `cocoon devnet` (payments on) whose proxy is SIGKILLed: it says it stops, and it does, promptly, even when the user
// presses Ctrl-C meanwhile; no process, listening port or temporary folder is left (it once hung for minutes).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { startDevnet, portListening, processAlive } from "./devnet-process.js";

test("devnet: the proxy SIGKILLed, then Ctrl-C: everything stops in under 5 s, nothing left behind", async () => {
  const dn = await startDevnet(["--workers", "1"]);
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
    assert.ok(took < 5_000, `stopped in ${took} ms:\n${dn.output().slice(-2000)}`);
    for (const [name, pid] of Object.entries(dn.pids)) assert.equal(processAlive(pid), false, `${name} (pid ${pid}) is still running`);
    for (const port of dn.ports) assert.equal(await portListening(port), false, `port ${port} is still listening`);
    assert.equal(existsSync(dn.dataDir), false, `the temporary folder ${dn.dataDir} is left behind`);
  } finally {
    if (dn.proc.exitCode === null && dn.proc.signalCode === null) dn.proc.kill("SIGKILL");
    for (const pid of Object.values(dn.pids)) if (processAlive(pid)) process.kill(pid, "SIGKILL");
  }
});
