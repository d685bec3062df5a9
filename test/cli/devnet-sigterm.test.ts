// `cocoon devnet` passes SIGTERM on as a graceful stop: the client drains first (the apps' requests, and its newest
// voucher to a proxy still up), then the proxy and the workers; the devnet exits 0 and leaves nothing behind.
// (Whether a running request survives a role's SIGTERM is tested on each role in drain-on-sigterm.test.ts: the
// devnet's model answers too fast to catch a request in flight.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { startDevnet, portListening, processAlive } from "./devnet-process.js";

test("devnet: SIGTERM drains every role, client first, then exits 0 with nothing left", async () => {
  const dn = await startDevnet(["--workers", "1", "--no-payments"]);
  try {
    dn.proc.kill("SIGTERM");
    const { code } = await dn.exit;
    const out = dn.output();
    assert.equal(code, 0, out.slice(-2000));
    assert.match(out, /received SIGTERM: stopping the devnet after running requests finish/);
    // A role's "drained" line, as a readable line on a terminal or as a JSON log line (what a pipe gets).
    const drained = (role: string) => out.search(new RegExp(`\\[${role}\\] drained|"name":"${role}","msg":"drained`));
    for (const role of ["client", "proxy", "worker-1"]) assert.ok(drained(role) >= 0, `${role} drained:\n${out.slice(-2000)}`);
    assert.ok(drained("client") < drained("proxy") && drained("client") < drained("worker-1"), "the client drains before the proxy and workers are asked to");
    for (const [name, pid] of Object.entries(dn.pids)) assert.equal(processAlive(pid), false, `${name} (pid ${pid}) is still running`);
    for (const port of dn.ports) assert.equal(await portListening(port), false, `port ${port} is still listening`);
  } finally {
    if (dn.proc.exitCode === null && dn.proc.signalCode === null) dn.proc.kill("SIGKILL");
    for (const pid of Object.values(dn.pids)) if (processAlive(pid)) process.kill(pid, "SIGKILL");
  }
});
