// The TDX boot event log travels with a node's evidence: a node on the test-root TDX network reads its CCEL log
// (--event-log, here the real go-eventlog COS log), attaches it, and peers replay it against the quote's RTMRs
// through the real verifier. The test root signs quotes over any RTMRs, so one stand-in TSM quotes the RTMRs the
// log replays to and another quotes other RTMRs (a log that does not explain the quote).
import { describe, it, after, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { ProxyNode } from "../../src/proxy/proxy.js";
import { WorkerNode } from "../../src/worker/worker.js";
import { OpenAiBackend } from "../../src/worker/backends/openai.js";
import { startFakeUpstream } from "../../src/dev/fake-upstream.js";
import { nodeSecurity, sealingKeysOf, type SecurityOptions } from "../../src/cli/security.js";
import { silentLogger } from "../../src/util/log.js";
import { EvidenceCache, verifyBundleEvidence, verifyPeerCertificate } from "../../src/tee/ratls.js";
import { DEV_POLICY, parsePolicy } from "../../src/tee/policy.js";
import { decodeEvidenceBundle, encodeEvidenceBundle } from "../../src/tee/evidence.js";
import { readRaTlsExtensions } from "../../src/tee/cert.js";
import { createNodeIdentity } from "../../src/tee/identity.js";
import { EVENT_LOG_MAX_BYTES, replayCcelEventLog } from "../../src/tee/tdx/eventlog.js";
import { installTestIntelRootForTestsOnly, uninstallTestRoots } from "../../src/tee/roots/test-roots.js";
import { FakeTsm, TestIntel, servePcs } from "./test-tee.js";

const LOG = readFileSync(fileURLToPath(new URL("../fixtures/tdx-eventlog/cos-113-intel-tdx-dupe-separator-unpadded.bin", import.meta.url)));
const REPLAYED = replayCcelEventLog(LOG).rtmr.map((h) => Buffer.from(h, "hex"));
const REQUIRE_LOG = { ...DEV_POLICY, requireTdxEventLog: true };

describe("TDX event log attached to evidence, replayed by peers", () => {
  const intel = new TestIntel();
  const matching = new FakeTsm("tdx_guest", (inblob) => ({ outblob: intel.quote(inblob, REPLAYED) }));
  const other = new FakeTsm("tdx_guest", (inblob) => ({ outblob: intel.quote(inblob) }));
  const dir = mkdtempSync(join(tmpdir(), "tee-evlog-"));
  const logFile = join(dir, "CCEL");
  let pcs: Awaited<ReturnType<typeof servePcs>>;
  let base: SecurityOptions;
  before(async () => {
    matching.start();
    other.start();
    pcs = await servePcs(() => intel.collateral);
    // As sysfs shows it: the log, then the ACPI region's 0xFF padding (which the node strips before attaching).
    writeFileSync(logFile, Buffer.concat([LOG, Buffer.alloc(8192, 0xff)]));
    base = { platform: "tdx", pccs: pcs.url, collateralCache: join(dir, "cache") };
    installTestIntelRootForTestsOnly(intel.rootPem);
  });
  after(async () => {
    uninstallTestRoots();
    matching.stop();
    other.stop();
    await pcs.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a node attaches its log (padding stripped); a peer requiring it replays it, checks rtmrReplay and records the digests", async () => {
    const sec = await nodeSecurity("proxy", { ...base, tsmRoot: matching.root, eventLog: logFile }, silentLogger);
    const bundle = decodeEvidenceBundle(readRaTlsExtensions(sec.node.tls.certDer).evidence);
    assert.deepEqual(bundle.eventLog, LOG);
    const peer = await verifyPeerCertificate(sec.node.tls.certDer, REQUIRE_LOG, { cache: new EvidenceCache() });
    assert.equal(peer.verdict.checks.rtmrReplay, true);
    const details = peer.verdict.details.eventLog as { events: number; replayed: string[]; digests: { rtmr: number; type: number; digest: string }[] };
    assert.equal(details.events, 43);
    assert.deepEqual(details.replayed, ["RTMR0", "RTMR1", "RTMR2"]);
    assert.equal(details.digests.length, 43);
    assert.deepEqual(details.digests[0], { rtmr: replayCcelEventLog(LOG).events[0].mrIndex - 1, type: replayCcelEventLog(LOG).events[0].type, digest: replayCcelEventLog(LOG).events[0].digest });
  });

  it("a log that does not explain the quote's RTMRs is refused, with or without the policy requiring a log", async () => {
    const sec = await nodeSecurity("proxy", { ...base, tsmRoot: other.root, eventLog: logFile }, silentLogger);
    for (const policy of [DEV_POLICY, REQUIRE_LOG]) {
      await assert.rejects(verifyPeerCertificate(sec.node.tls.certDer, policy, { cache: new EvidenceCache() }), (e: Error) => {
        assert.match(e.message, /evidence\.tdx/);
        assert.match(e.message, /the event log does not explain the quote: RTMR0 in the quote is/);
        return true;
      });
    }
  });

  it("without a log: accepted by default, refused by requireTdxEventLog (policy.tdx-event-log)", async () => {
    const sec = await nodeSecurity("proxy", { ...base, tsmRoot: matching.root, eventLog: "none" }, silentLogger);
    assert.equal(decodeEvidenceBundle(readRaTlsExtensions(sec.node.tls.certDer).evidence).eventLog, undefined);
    const ok = await verifyPeerCertificate(sec.node.tls.certDer, DEV_POLICY, { cache: new EvidenceCache() });
    assert.equal(ok.verdict.checks.rtmrReplay, undefined);
    await assert.rejects(verifyPeerCertificate(sec.node.tls.certDer, REQUIRE_LOG, { cache: new EvidenceCache() }), /policy\.tdx-event-log.*carries no boot event log/);
    assert.equal(parsePolicy({ mode: "production" }).requireTdxEventLog, false, "production does not require a log by default");
  });

  it("a proxy requiring event logs admits a worker that carries its log, end to end", async () => {
    const policyFile = join(dir, "policy.json");
    writeFileSync(policyFile, JSON.stringify({ mode: "dev", allowSim: true, allowDebug: true, minTcbStatus: "OutOfDateConfigurationNeeded", requireTdxEventLog: true }));
    const upstream = await startFakeUpstream({ model: "m" });
    const proxySec = await nodeSecurity("proxy", { ...base, tsmRoot: matching.root, eventLog: logFile, policy: policyFile }, silentLogger);
    const proxy = new ProxyNode({ identity: proxySec.identity, workerPort: 0, clientPort: 0, statusPort: 0, verifyWorker: proxySec.verifierFor("worker"), verifyClient: proxySec.verifierFor("client"), log: silentLogger });
    await proxy.start();
    const backend = new OpenAiBackend({ upstream: upstream.url });
    await backend.start();
    const workerSec = await nodeSecurity("worker", { ...base, tsmRoot: matching.root, eventLog: logFile, policy: policyFile, nodeId: "w1" }, silentLogger, { name: "m", digest: "ab".repeat(32) });
    const worker = new WorkerNode({ proxies: [{ host: "127.0.0.1", port: proxy.workerPort }], backend, capacity: 1, identity: () => workerSec.identity, verifyProxy: workerSec.verifierFor("proxy"), sealing: sealingKeysOf(workerSec.node), workerId: "w1", log: silentLogger });
    await worker.start();
    try {
      for (let i = 0; i < 1000 && proxy.pool.size < 1; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(proxy.pool.size, 1, "the proxy accepted the worker and its event log");
    } finally {
      await worker.stop();
      await proxy.stop();
      await upstream.close();
    }
  });

  it("a node refuses to start with a missing, oversized or malformed --event-log, and says why", async () => {
    await assert.rejects(nodeSecurity("proxy", { ...base, tsmRoot: matching.root, eventLog: join(dir, "absent") }, silentLogger), /cannot read the TDX event log at .*absent/);
    const big = join(dir, "big");
    writeFileSync(big, Buffer.alloc(EVENT_LOG_MAX_BYTES + 1, 0xff));
    await assert.rejects(nodeSecurity("proxy", { ...base, tsmRoot: matching.root, eventLog: big }, silentLogger), /is 1048577 bytes; the limit is 1048576/);
    const junk = join(dir, "junk");
    writeFileSync(junk, Buffer.from("not an event log"));
    await assert.rejects(nodeSecurity("proxy", { ...base, tsmRoot: matching.root, eventLog: junk }, silentLogger), /is not a CCEL event log: TDX event log: the first event is not EV_NO_ACTION/);
  });

  it("a node whose RA-TLS certificate would exceed what TLS peers accept (~100 KiB) refuses to start, naming the parts", async () => {
    await assert.rejects(createNodeIdentity({ role: "worker", platform: "sim", gpuEvidence: Buffer.alloc(120 * 1024) }), /RA-TLS certificate would be \d+ bytes \(quote \d+, GPU evidence 122880 bytes\); TLS peers refuse certificates over 101888 bytes/);
  });

  it("a bundle whose event log exceeds the limit is refused when decoded", () => {
    const b = encodeEvidenceBundle({ platform: "tdx", quote: Buffer.alloc(8), eventLog: Buffer.alloc(EVENT_LOG_MAX_BYTES + 3) });
    assert.throws(() => decodeEvidenceBundle(b), /eventLog: the event log is larger than 1048576 bytes/);
  });

  it("random event log bytes next to a good quote fail the verdict (rtmrReplay=false), never throw", () => {
    const quote = intel.quote(Buffer.alloc(64), REPLAYED);
    const now = new Date();
    const good = verifyBundleEvidence({ platform: "tdx", quote, collateral: intel.collateral, eventLog: LOG }, { now, allowDebug: true });
    assert.equal(good.verified, true, good.errors.join("; "));
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 600 }), (bytes) => {
        const v = verifyBundleEvidence({ platform: "tdx", quote, collateral: intel.collateral, eventLog: Buffer.from(bytes) }, { now, allowDebug: true });
        assert.equal(v.verified, false);
        assert.equal(v.checks.rtmrReplay, false);
      }),
      { numRuns: 40 },
    );
  });
});
