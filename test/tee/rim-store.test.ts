// NVIDIA RIMs fetched from a RIM service (a local stand-in speaking its GET /v1/rim/{id} -> {"rim": base64} shape and
// serving the real signed RIMs of test/fixtures/nvidia-rim, plus a tampered one), cached on disk and verified on
// every load, attached to a worker's GPU evidence and required by peers (requireGpuRim) through the real verifier.
// The real RIMs' signer certificate is valid 2023-06..2025-06, so everything here runs at 2024-06-01.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateRawSync } from "node:zlib";
import fc from "fast-check";
import { RimStore, attachRims, rimIdsFor, vbiosVersionText } from "../../src/tee/rim-store.js";
import { NV_OPAQUE, parseNvidiaEvidence, referenceFromRims } from "../../src/tee/nvidia.js";
import { verifyRim } from "../../src/tee/rim.js";
import { decodeGpuEvidence, encodeGpuEvidence } from "../../src/tee/evidence.js";
import { createNodeIdentity } from "../../src/tee/identity.js";
import { EvidenceCache, verifyPeerCertificate } from "../../src/tee/ratls.js";
import { DEV_POLICY, parsePolicy } from "../../src/tee/policy.js";
import { withRims } from "../../src/cli/security.js";
import { silentLogger } from "../../src/util/log.js";
import { installTestIntelRootForTestsOnly, installTestNvidiaRootForTestsOnly, uninstallTestRoots } from "../../src/tee/roots/test-roots.js";
import { nvEvidence } from "./helpers.js";
import { FakeTsm, TestIntel, TestNvidia } from "./test-tee.js";

const DIR = fileURLToPath(new URL("../fixtures/nvidia-rim/", import.meta.url));
const rimText = (f: string): string => readFileSync(join(DIR, f), "utf8");
const DRIVER_XML = rimText("Driver_RIM_test_no_gpu.swidtag");
const VBIOS_XML = rimText("1010_0200_882_96005E0001_PROD.swidtag");
const AT = new Date("2024-06-01T00:00:00Z");
// The ids the real H100 evidence vector names (driver 550.90.07, VBIOS 96.00.9F.00.01). The stand-in serves the
// fixture RIMs (driver 545.00, VBIOS 96.00.5E.00.01) under them: no real RIM for that GPU is in the stored repositories.
const DRIVER_ID = "NV_GPU_DRIVER_GH100_550.90.07";
const VBIOS_ID = "NV_GPU_VBIOS_1010_0200_882_96009F0001";
// One hex digit of a measurement value changed: the signed digest no longer matches.
const TAMPERED_XML = VBIOS_XML.replace(/Hash0="([0-9a-f])/, (_m, c: string) => `Hash0="${c === "0" ? "1" : "0"}`);

async function serveRims(rims: Map<string, string>): Promise<{ url: string; requests: string[]; close: () => Promise<void> }> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const m = /^\/v1\/rim\/([^/?]+)$/.exec(req.url ?? "");
    const xml = m ? rims.get(decodeURIComponent(m[1])) : undefined;
    if (!xml) {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}');
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ id: m![1], rim: Buffer.from(xml).toString("base64"), sha256: "", last_updated: "2024-05-01" }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, close: () => new Promise((r) => server.close(() => r())) };
}

describe("RIM ids from GPU evidence", () => {
  it("names the driver and VBIOS RIMs of the real H100 evidence as NVIDIA's verifier does", () => {
    const ev = parseNvidiaEvidence(nvEvidence());
    assert.equal(vbiosVersionText(ev.opaque.get(NV_OPAQUE.VBIOS_VERSION)!), "96.00.9F.00.01");
    assert.deepEqual(rimIdsFor(ev), { driver: DRIVER_ID, vbios: VBIOS_ID });
    // The fixture VBIOS RIM's file name follows the same project_sku_chip_version pattern.
    assert.ok(readdirSync(DIR).includes("1010_0200_882_96005E0001_PROD.swidtag"));
  });
});

describe("RimStore: the RIM service, cached and verified on every load", () => {
  let svc: Awaited<ReturnType<typeof serveRims>>;
  const cache = mkdtempSync(join(tmpdir(), "rim-cache-"));
  const warnings: string[] = [];
  before(async () => {
    svc = await serveRims(new Map([[DRIVER_ID, DRIVER_XML], [VBIOS_ID, VBIOS_XML], ["NV_GPU_VBIOS_TAMPERED", TAMPERED_XML], ["NV_GPU_DRIVER_JUNK", "<x/>"]]));
  });
  after(async () => {
    await svc.close();
    rmSync(cache, { recursive: true, force: true });
  });
  const store = () => new RimStore({ baseUrl: svc.url, cacheDir: cache, now: () => AT, log: (l) => warnings.push(l) });

  it("fetches, verifies and caches; the next load comes from the cache (verified again)", async () => {
    const first = await store().get(VBIOS_ID);
    assert.equal(first.rim.version, "96.00.5E.00.01");
    assert.deepEqual(svc.requests, [`/v1/rim/${VBIOS_ID}`]);
    assert.equal(readFileSync(join(cache, `rim-${VBIOS_ID}.swidtag`), "utf8"), VBIOS_XML);
    const again = await store().get(VBIOS_ID);
    assert.equal(again.xml, VBIOS_XML);
    assert.equal(svc.requests.length, 1, "served from the cache");
  });

  it("a forged cache entry is not trusted: it is fetched again, with a warning", async () => {
    writeFileSync(join(cache, `rim-${DRIVER_ID}.swidtag`), TAMPERED_XML);
    const before = svc.requests.length;
    const r = await store().get(DRIVER_ID);
    assert.equal(r.xml, DRIVER_XML);
    assert.equal(svc.requests.length, before + 1);
    assert.match(warnings.join("\n"), /cached RIM .* is not usable .*digest does not match.*fetching it again/);
  });

  it("a tampered, unknown, malformed or unreachable RIM is refused by name, and nothing is cached", async () => {
    await assert.rejects(store().get("NV_GPU_VBIOS_TAMPERED"), /the RIM service's NV_GPU_VBIOS_TAMPERED does not verify: .*digest does not match/);
    await assert.rejects(store().get("NV_GPU_DRIVER_JUNK"), /does not verify: .*not a SWID <SoftwareIdentity>/);
    await assert.rejects(store().get("NV_GPU_DRIVER_GH100_1.2.3"), /answered 404 .*no RIM for this driver\/VBIOS version/);
    await assert.rejects(store().get("../etc/passwd"), /is not a RIM id/);
    await assert.rejects(new RimStore({ baseUrl: "http://127.0.0.1:9", cacheDir: cache, now: () => AT }).get("NV_GPU_DRIVER_GH100_9.9"), /RIM service unreachable at http:\/\/127\.0\.0\.1:9.*--rim-service/);
    assert.ok(!readdirSync(cache).some((f) => f.includes("TAMPERED") || f.includes("JUNK")));
    // At 2026 the real RIMs' signer has expired: a cached RIM is verified at every load, so it is refused then.
    await assert.rejects(new RimStore({ baseUrl: svc.url, cacheDir: cache, now: () => new Date("2026-01-01T00:00:00Z") }).get(VBIOS_ID), /does not verify: .*is not valid at 2026-01-01/);
  });

  it("random service answers never crash the store", async () => {
    const junk = createServer((_req, res) => res.writeHead(200).end(answer));
    let answer = "";
    await new Promise<void>((r) => junk.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(junk.address() as AddressInfo).port}`;
    const junkCache = mkdtempSync(join(tmpdir(), "rim-junk-"));
    try {
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.string(), fc.base64String().map((b) => JSON.stringify({ rim: b })), fc.json()), async (a) => {
          answer = a;
          await assert.rejects(new RimStore({ baseUrl: url, cacheDir: junkCache, now: () => AT }).get("NV_GPU_DRIVER_GH100_1"), /RIM service's answer .* is not|does not verify/);
        }),
        { numRuns: 25 },
      );
    } finally {
      rmSync(junkCache, { recursive: true, force: true });
      await new Promise((r) => junk.close(r));
    }
  });
});

describe("RIMs attached to a worker's GPU evidence, required by peers", () => {
  const intel = new TestIntel({ now: AT });
  const gpu = new TestNvidia(AT);
  const tsm = new FakeTsm("tdx_guest", (inblob) => ({ outblob: intel.quote(inblob) }));
  const cache = mkdtempSync(join(tmpdir(), "rim-net-"));
  let svc: Awaited<ReturnType<typeof serveRims>>;
  // Blocks carrying the RIMs' values (a GPU whose driver and VBIOS are the ones the RIMs describe).
  const ref = referenceFromRims([DRIVER_XML, VBIOS_XML].map((x, i) => ({ rim: verifyRim(x, { now: AT }), source: String(i) })));
  const matching = new Map([...ref].map(([i, vals]) => [i, Buffer.from(vals[0], "hex")]));
  const REQUIRE = parsePolicy({ mode: "dev", allowSim: true, allowDebug: true, minTcbStatus: "OutOfDateConfigurationNeeded", requireGpu: true, requireGpuRim: true });
  before(async () => {
    tsm.start();
    svc = await serveRims(new Map([[DRIVER_ID, DRIVER_XML], [VBIOS_ID, VBIOS_XML]]));
    installTestIntelRootForTestsOnly(intel.rootPem);
    installTestNvidiaRootForTestsOnly(gpu.rootPem);
  });
  after(async () => {
    uninstallTestRoots();
    tsm.stop();
    await svc.close();
    rmSync(cache, { recursive: true, force: true });
  });
  const store = () => new RimStore({ baseUrl: svc.url, cacheDir: cache, now: () => AT });
  const worker = (collect: (nonce: Buffer) => Promise<Buffer>) =>
    createNodeIdentity({ role: "worker", platform: "tdx", tsmRoot: tsm.root, collateral: intel.collateral, nodeId: "w1", model: { name: "m", digest: "ab".repeat(32) }, now: AT, gpuCollector: collect });
  const verify = (der: Buffer, policy = REQUIRE) => verifyPeerCertificate(der, policy, { now: AT, cache: new EvidenceCache() });

  it("a worker attaches its driver and VBIOS RIMs from the service; a peer verifies them and the measurements match", async () => {
    const node = await worker((nonce) => withRims(encodeGpuEvidence({ evidence: gpu.transcript(nonce, matching), certChain: gpu.chainPem }), store(), silentLogger));
    assert.ok(node.tls.certDer.length < 60 * 1024, `RIMs travel compressed (certificate of ${node.tls.certDer.length} bytes)`);
    const peer = await verify(node.tls.certDer);
    assert.equal(peer.gpu?.checks.referenceMeasurements, true, peer.gpu?.errors.join("; "));
    assert.ok(svc.requests.includes(`/v1/rim/${DRIVER_ID}`) && svc.requests.includes(`/v1/rim/${VBIOS_ID}`));
  });

  it("a measurement the RIMs do not allow is refused (evidence.nvidia), naming the block", async () => {
    const changed = new Map(matching).set(22, Buffer.alloc(48, 0xee));
    const node = await worker((nonce) => attachRims(encodeGpuEvidence({ evidence: gpu.transcript(nonce, changed), certChain: gpu.chainPem }), store()));
    await assert.rejects(verify(node.tls.certDer), /evidence\.nvidia.*index 22 = eeeeeeeeeeeeeeee\.\.\. not in the reference values/);
  });

  it("a tampered attached RIM is refused, whatever the policy", async () => {
    const node = await worker(async (nonce) => encodeGpuEvidence({ evidence: gpu.transcript(nonce, matching), certChain: gpu.chainPem, rims: [DRIVER_XML, TAMPERED_XML] }));
    await assert.rejects(verify(node.tls.certDer, DEV_POLICY), /evidence\.nvidia.*attached RIM #2.*digest does not match/);
  });

  it("without RIMs (service unreachable): the worker still starts, requireGpuRim refuses it, a policy without it accepts", async () => {
    const warned: string[] = [];
    const log = { ...silentLogger, warn: (l: string) => void warned.push(l) } as typeof silentLogger;
    const down = new RimStore({ baseUrl: "http://127.0.0.1:9", cacheDir: mkdtempSync(join(tmpdir(), "rim-down-")), now: () => AT });
    const node = await worker((nonce) => withRims(encodeGpuEvidence({ evidence: gpu.transcript(nonce, matching), certChain: gpu.chainPem }), down, log));
    assert.match(warned.join("\n"), /RIM service unreachable.*carries no RIMs.*requireGpuRim/);
    await assert.rejects(verify(node.tls.certDer), /policy\.gpu-rim/);
    const ok = await verify(node.tls.certDer, { ...REQUIRE, requireGpuRim: false });
    assert.equal(ok.gpu?.verified, true);
    assert.equal(parsePolicy({ mode: "production" }).requireGpuRim, true, "production requires RIMs by default");
    assert.equal(decodeGpuEvidence(encodeGpuEvidence({ evidence: Buffer.alloc(1), certChain: "" })).rims, undefined);
  });

  it("attached RIMs round-trip compressed; a decompression bomb or junk is refused as a format error", () => {
    const g = decodeGpuEvidence(encodeGpuEvidence({ evidence: Buffer.alloc(1), certChain: "", rims: [DRIVER_XML, VBIOS_XML] }));
    assert.deepEqual(g.rims, [DRIVER_XML, VBIOS_XML]);
    const bomb = deflateRawSync(Buffer.alloc(4 * 1024 * 1024, 0x20)).toString("base64");
    const bundle = (rims: string[]) => Buffer.from(JSON.stringify({ v: 1, evidence: "00", certChain: "", rims }));
    assert.throws(() => decodeGpuEvidence(bundle([bomb])), /RIM #1 is not raw-DEFLATE data of at most 262144 bytes/);
    assert.throws(() => decodeGpuEvidence(bundle(["AAAA"])), /RIM #1 is not raw-DEFLATE data/);
  });
});
