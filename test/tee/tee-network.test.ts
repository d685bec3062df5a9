// End to end on machines without a TEE: proxy, worker and client start with --platform tdx (and sev-snp), take
// quotes from a configfs-tsm stand-in, fetch collateral from a local PCS v4 stand-in (VCEK from a KDS stand-in),
// attach it to their RA-TLS evidence and accept each other through the real verifier code, because this test
// installed its own test root. The production policy refuses that root; without it installed nothing verifies.
import { describe, it, after, before } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProxyNode } from "../../src/proxy/proxy.js";
import { WorkerNode } from "../../src/worker/worker.js";
import { ClientNode } from "../../src/client/client.js";
import { OpenAiBackend } from "../../src/worker/backends/openai.js";
import { startFakeUpstream } from "../../src/dev/fake-upstream.js";
import { nodeSecurity, sealingKeysOf, type SecurityOptions } from "../../src/cli/security.js";
import { silentLogger } from "../../src/util/log.js";
import { verifyPeerCertificate, EvidenceCache } from "../../src/tee/ratls.js";
import { DEV_POLICY, PRODUCTION_POLICY, parsePolicy } from "../../src/tee/policy.js";
import { decodeEvidenceBundle } from "../../src/tee/evidence.js";
import { createNodeIdentity } from "../../src/tee/identity.js";
import { TdxCollateralStore } from "../../src/tee/tdx/pcs.js";
import { VcekStore } from "../../src/tee/kds.js";
import { readRaTlsExtensions } from "../../src/tee/cert.js";
import { runAttestMeasure } from "../../src/cli/attest.js";
import { mergeRootAllowLists } from "../../src/payments/root-policy.js";
import { installTestAmdRootsForTestsOnly, installTestIntelRootForTestsOnly, uninstallTestRoots } from "../../src/tee/roots/test-roots.js";
import { FakeTsm, TestAmd, TestIntel, servePcs } from "./test-tee.js";

describe("a TDX network on stand-ins, through the real verifier", () => {
  const intel = new TestIntel();
  const tsm = new FakeTsm("tdx_guest", (inblob) => ({ outblob: intel.quote(inblob) }));
  let pcs: Awaited<ReturnType<typeof servePcs>>;
  const cache = mkdtempSync(join(tmpdir(), "tee-net-"));
  let opts: SecurityOptions;
  before(async () => {
    tsm.start();
    pcs = await servePcs(() => intel.collateral);
    opts = { platform: "tdx", tsmRoot: tsm.root, pccs: pcs.url, collateralCache: cache };
    installTestIntelRootForTestsOnly(intel.rootPem);
  });
  after(async () => {
    uninstallTestRoots();
    tsm.stop();
    await pcs.close();
    rmSync(cache, { recursive: true, force: true });
  });

  it("client, proxy and worker start on tdx, attach collateral, and a sealed request goes through", async () => {
    const upstream = await startFakeUpstream({ model: "m" });
    const proxySec = await nodeSecurity("proxy", opts, silentLogger);
    const proxy = new ProxyNode({ identity: proxySec.identity, workerPort: 0, clientPort: 0, statusPort: 0, verifyWorker: proxySec.verifierFor("worker"), verifyClient: proxySec.verifierFor("client"), log: silentLogger });
    await proxy.start();
    const backend = new OpenAiBackend({ upstream: upstream.url });
    await backend.start();
    const workerSec = await nodeSecurity("worker", { ...opts, nodeId: "w1" }, silentLogger, { name: "m", digest: "ab".repeat(32) });
    const worker = new WorkerNode({ proxies: [{ host: "127.0.0.1", port: proxy.workerPort }], backend, capacity: 2, identity: () => workerSec.identity, verifyProxy: workerSec.verifierFor("proxy"), sealing: sealingKeysOf(workerSec.node), workerId: "w1", log: silentLogger });
    await worker.start();
    const clientSec = await nodeSecurity("client", opts, silentLogger);
    const client = new ClientNode({ port: 0, proxy: { host: "127.0.0.1", port: proxy.clientPort }, verifyProxy: clientSec.verifierFor("proxy"), verifyWorkerCert: clientSec.workerCertVerifier, selfInsecure: true, log: silentLogger });
    await client.start();
    try {
      // Each node's certificate carries a TDX quote over its claims and the collateral fetched from the PCS.
      const bundle = decodeEvidenceBundle(readRaTlsExtensions(workerSec.node.tls.certDer).evidence);
      assert.equal(bundle.platform, "tdx");
      assert.ok(bundle.collateral, "collateral attached");
      assert.ok(pcs.requests.some((r) => r.startsWith("/tdx/certification/v4/tcb?fmspc=B0C06F000000")));
      assert.ok(readdirSync(cache).some((f) => f.startsWith("tdx-collateral-B0C06F000000")));
      for (let i = 0; i < 300 && proxy.pool.size < 1; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(proxy.pool.size, 1, "the proxy accepted the tdx worker");
      const res = await fetch(`${client.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }) });
      assert.equal(res.status, 200, await res.clone().text());
      const body = (await res.json()) as { choices: { message: { content: string } }[] };
      assert.ok(body.choices[0].message.content.length > 0);
    } finally {
      await client.stop();
      await worker.stop();
      await proxy.stop();
      await upstream.close();
    }
  });

  it("the production policy refuses evidence that chains to the test root", async () => {
    const sec = await nodeSecurity("proxy", opts, silentLogger);
    const dev = await verifyPeerCertificate(sec.node.tls.certDer, DEV_POLICY, { cache: new EvidenceCache() });
    assert.equal(dev.platform, "tdx");
    assert.equal(dev.insecure, true);
    assert.equal(dev.verdict.testRoot, true);
    const prod = { ...PRODUCTION_POLICY, measurements: { client: [], proxy: [dev.imageDigest], worker: [] } };
    await assert.rejects(verifyPeerCertificate(sec.node.tls.certDer, prod, { cache: new EvidenceCache() }), /policy\.test-root/);
  });

  it("without the test root installed the same evidence is refused (nothing trusts it)", async () => {
    const sec = await nodeSecurity("proxy", opts, silentLogger);
    uninstallTestRoots();
    try {
      await assert.rejects(verifyPeerCertificate(sec.node.tls.certDer, DEV_POLICY, { cache: new EvidenceCache() }), /evidence\.tdx.*not the pinned root/);
    } finally {
      installTestIntelRootForTestsOnly(intel.rootPem);
    }
  });

  it("a peer that attached no collateral is verified with this node's PCCS, or refused as NoCollateral without one", async () => {
    const bare = await createNodeIdentity({ role: "proxy", platform: "tdx", tsmRoot: tsm.root });
    assert.equal(decodeEvidenceBundle(readRaTlsExtensions(bare.tls.certDer).evidence).collateral, undefined);
    await assert.rejects(verifyPeerCertificate(bare.tls.certDer, DEV_POLICY, { cache: new EvidenceCache() }), /evidence\.tdx.*no collateral given/);
    const store = new TdxCollateralStore({ baseUrl: pcs.url, cacheDir: cache });
    const peer = await verifyPeerCertificate(bare.tls.certDer, DEV_POLICY, { cache: new EvidenceCache(), collateralSource: (q) => store.forQuote(q) });
    assert.equal(peer.platform, "tdx");
    const clientSec = await nodeSecurity("client", { pccs: pcs.url, collateralCache: cache }, silentLogger);
    assert.match((await clientSec.verifierFor("proxy")(bare.tls.certDer)).description, /proxy on tdx/);
    await assert.rejects(verifyPeerCertificate(bare.tls.certDer, DEV_POLICY, { cache: new EvidenceCache(), collateralSource: () => Promise.reject(new Error("PCCS down")) }), /could not fetch it: PCCS down/);
  });

  it("a node whose collateral service is unreachable and has no cache does not start, and says why", async () => {
    const empty = mkdtempSync(join(tmpdir(), "tee-net-empty-"));
    try {
      await assert.rejects(nodeSecurity("proxy", { ...opts, pccs: "http://127.0.0.1:9", collateralCache: empty }, silentLogger), /collateral service unreachable at http:\/\/127\.0\.0\.1:9/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe("an SEV-SNP node on stand-ins", () => {
  const amd = new TestAmd();
  const tsm = new FakeTsm("sev_guest", (inblob) => ({ outblob: amd.report(inblob) }));
  const cache = mkdtempSync(join(tmpdir(), "tee-snp-"));
  const requests: string[] = [];
  let crl = amd.crl();
  const kds = createServer((req, res) => {
    requests.push(req.url ?? "");
    if (/^\/vcek\/v1\/Milan\/[0-9a-f]{128}\?blSPL=\d+&teeSPL=\d+&snpSPL=\d+&ucodeSPL=\d+$/.test(req.url ?? "")) res.writeHead(200).end(amd.vcek);
    else if (req.url === "/vcek/v1/Milan/crl") res.writeHead(200).end(crl);
    else res.writeHead(404).end();
  });
  before(async () => {
    tsm.start();
    await new Promise<void>((r) => kds.listen(0, "127.0.0.1", r));
    installTestAmdRootsForTestsOnly({ ark: amd.ark, ask: amd.ask });
  });
  after(async () => {
    uninstallTestRoots();
    tsm.stop();
    await new Promise((r) => kds.close(r));
    rmSync(cache, { recursive: true, force: true });
  });

  it("fetches the VCEK from the KDS by chip id and TCB, caches it, and verifies through the real code", async () => {
    const kdsUrl = `http://127.0.0.1:${(kds.address() as AddressInfo).port}`;
    const sec = await nodeSecurity("worker", { platform: "sev-snp", tsmRoot: tsm.root, kds: kdsUrl, collateralCache: cache, nodeId: "w" }, silentLogger);
    assert.deepEqual(requests.map((u) => u.replace(/[0-9a-f]{128}\?.*/, "HWID?TCB")), ["/vcek/v1/Milan/HWID?TCB", "/vcek/v1/Milan/crl"]);
    assert.deepEqual(decodeEvidenceBundle(readRaTlsExtensions(sec.node.tls.certDer).evidence).amdCrl, crl, "AMD's CRL travels with the report");
    const peer = await verifyPeerCertificate(sec.node.tls.certDer, DEV_POLICY, { cache: new EvidenceCache() });
    assert.equal(peer.platform, "sev-snp");
    assert.equal(peer.verdict.testRoot, true);
    assert.equal(peer.verdict.checks.askNotRevoked, true);
    const needsCrl = parsePolicy({ mode: "dev", requireSnpCrl: true, minSnpTcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 } });
    await verifyPeerCertificate(sec.node.tls.certDer, needsCrl, { cache: new EvidenceCache() });
    // The root contract's 32-byte image lists can hold SEV-SNP images: the digest `cocoon attest measure` prints for
    // this node's certificate is the one the verifier matches.
    const certFile = join(cache, "snp-cert.pem");
    writeFileSync(certFile, sec.node.tls.certPem);
    const measured = runAttestMeasure(certFile, {});
    assert.equal(measured.platform, "sev-snp");
    assert.equal(measured.imageDigest, peer.imageDigest);
    const rootLists = (images: string[]) => mergeRootAllowLists(DEV_POLICY, { version: 1, workerImages: new Set(images), proxyImages: new Set(), models: new Map() }, "EQroot");
    await verifyPeerCertificate(sec.node.tls.certDer, rootLists([measured.imageDigest]), { cache: new EvidenceCache() });
    await assert.rejects(verifyPeerCertificate(sec.node.tls.certDer, rootLists(["00".repeat(32)]), { cache: new EvidenceCache() }), new RegExp(`policy\\.measurement.*${measured.imageDigest}`, "s"));
    await nodeSecurity("worker", { platform: "sev-snp", tsmRoot: tsm.root, kds: "http://127.0.0.1:9", collateralCache: cache }, silentLogger);
    assert.equal(requests.length, 2, "the second node used the verified cache (VCEK and CRL)");
    // A peer that attached no CRL: refused where the policy requires one, unless this node fetches it from its KDS.
    const noCrl = await createNodeIdentity({ role: "worker", platform: "sev-snp", tsmRoot: tsm.root, vcek: amd.vcek, nodeId: "w3" });
    assert.equal(decodeEvidenceBundle(readRaTlsExtensions(noCrl.tls.certDer).evidence).amdCrl, undefined);
    await assert.rejects(verifyPeerCertificate(noCrl.tls.certDer, needsCrl, { cache: new EvidenceCache() }), /policy\.snp-crl/);
    const kdsStore = new VcekStore({ baseUrl: kdsUrl, cacheDir: cache });
    const fetched = await verifyPeerCertificate(noCrl.tls.certDer, needsCrl, { cache: new EvidenceCache(), amdCrlSource: (v) => kdsStore.crlFor(v) });
    assert.equal(fetched.verdict.checks.askNotRevoked, true);
    // The KDS revokes the ASK: a node that fetches the new CRL is refused by its peers with the named check.
    crl = amd.crl({ revoke: [amd.askSerial] });
    rmSync(join(cache, "amd-crl-Milan.der"));
    const revoked = await nodeSecurity("worker", { platform: "sev-snp", tsmRoot: tsm.root, kds: kdsUrl, collateralCache: cache, nodeId: "w2" }, silentLogger);
    await assert.rejects(verifyPeerCertificate(revoked.node.tls.certDer, DEV_POLICY, { cache: new EvidenceCache() }), /evidence\.sev-snp.*ASK \(serial [0-9a-f]+\) is revoked/);
    await assert.rejects(verifyPeerCertificate(sec.node.tls.certDer, { ...PRODUCTION_POLICY, requireGpu: false, measurements: { client: [], proxy: [], worker: [peer.imageDigest] } }, { cache: new EvidenceCache() }), /policy\.test-root/);
  });
});
