import { describe, it } from "node:test";
import assert from "node:assert/strict";
import tls from "node:tls";
import type { AddressInfo } from "node:net";
import { X509Certificate, createHash } from "node:crypto";
import { createNodeIdentity } from "../../src/tee/identity.js";
import { AttestationError, EvidenceCache, verifyPeerCertificate, type VerifiedPeer } from "../../src/tee/ratls.js";
import { DEV_POLICY, PRODUCTION_POLICY, parsePolicy, type Policy } from "../../src/tee/policy.js";
import { buildRaTlsCertificate, readRaTlsExtensions } from "../../src/tee/cert.js";
import { claimsReportData, decodeClaims, gpuNonce } from "../../src/tee/claims.js";
import { decodeEvidenceBundle, encodeEvidenceBundle, encodeGpuEvidence } from "../../src/tee/evidence.js";
import { attestationHeaderValue, createSimEvidence, verifySimEvidence } from "../../src/tee/sim.js";
import { generateKeyPairSync } from "node:crypto";
import { parseCollateral } from "../../src/tee/tdx/collateral.js";
import { NV_AT, TDX_V4, nvChain, nvEvidence, vec, vecText } from "./helpers.js";
import { TestNvidia } from "./test-tee.js";
import { installTestNvidiaRootForTestsOnly, uninstallTestRoots } from "../../src/tee/roots/test-roots.js";

const MODEL = { name: "Qwen/Qwen3-0.6B@abc", digest: createHash("sha256").update("weights").digest("hex") };
const fresh = () => ({ cache: new EvidenceCache() });

async function refusal(p: Promise<unknown>, rule: string): Promise<AttestationError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AttestationError, `expected AttestationError, got ${e}`);
    assert.equal(e.rule, rule, e.message);
    assert.match(e.message, /measured: .*Fix: /);
    return e;
  }
  assert.fail(`expected a refusal by ${rule}`);
}

describe("node identity and RA-TLS certificates", () => {
  it("sim identity: claims bind the keys, certificate verifies under the dev policy", async () => {
    const id = await createNodeIdentity({ role: "worker", model: MODEL });
    assert.equal(id.platform, "sim");
    assert.equal(id.insecure, true);
    assert.equal(id.hpke.publicKey.length, 32);
    assert.equal(id.hpke.privateKey.length, 32);
    assert.equal(id.receipt.publicKey.length, 32);
    assert.equal(id.claims.hpkePublicKey, Buffer.from(id.hpke.publicKey).toString("hex"));
    assert.deepEqual(id.reportData, claimsReportData(id.claimsBytes));
    const cert = new X509Certificate(id.tls.certDer);
    assert.equal(cert.publicKey.asymmetricKeyType, "ed25519");
    const peer = await verifyPeerCertificate(id.tls.certDer, DEV_POLICY, { expectedRole: "worker", ...fresh() });
    assert.equal(peer.platform, "sim");
    assert.equal(peer.insecure, true);
    assert.equal(peer.claims.model?.digest, MODEL.digest);
    assert.equal(peer.verdict.status, "INSECURE-SIM");
    assert.equal(typeof peer.measurements.mrtd, "string");
  });

  it("production policy refuses sim, naming the rule", async () => {
    const id = await createNodeIdentity({ role: "proxy" });
    const e = await refusal(verifyPeerCertificate(id.tls.certDer, PRODUCTION_POLICY, fresh()), "policy.sim");
    assert.match(e.message, /INSECURE sim evidence/);
    assert.equal(e.measured, "platform=sim");
  });

  it("role, expiry and clock checks", async () => {
    const id = await createNodeIdentity({ role: "proxy", validitySeconds: 3600 });
    await refusal(verifyPeerCertificate(id.tls.certDer, DEV_POLICY, { expectedRole: "worker", ...fresh() }), "ratls.role");
    await refusal(verifyPeerCertificate(id.tls.certDer, DEV_POLICY, { now: new Date(Date.now() + 2 * 3600_000), ...fresh() }), "ratls.expired");
    const ok = await verifyPeerCertificate(id.tls.certDer, DEV_POLICY, { expectedRole: ["proxy", "worker"], ...fresh() });
    assert.equal(ok.claims.role, "proxy");
    await assert.rejects(createNodeIdentity({ role: "proxy", validitySeconds: 10 }), /validitySeconds/);
    await assert.rejects(createNodeIdentity({ role: "worker", model: { name: "x", digest: "zz" } }), /model digest/);
  });

  it("hardware platforms without a TEE fail with a clear message", async () => {
    await assert.rejects(createNodeIdentity({ role: "worker", platform: "tdx" }), /no usable tdx TEE.*--platform sim/);
  });

  it("replaying another node's evidence and claims with a new key fails (key binding)", async () => {
    const victim = await createNodeIdentity({ role: "worker", model: MODEL });
    const { evidence, claims } = readRaTlsExtensions(victim.tls.certDer);
    const attacker = generateKeyPairSync("ed25519");
    const forged = buildRaTlsCertificate({
      privateKey: attacker.privateKey,
      publicKeySpki: attacker.publicKey.export({ format: "der", type: "spki" }),
      commonName: "cocoon-worker",
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3600_000),
      evidence,
      claims,
    });
    await refusal(verifyPeerCertificate(forged.der, DEV_POLICY, fresh()), "ratls.key-binding");
  });

  it("replaying evidence with the attacker's own claims fails (REPORTDATA binding)", async () => {
    const victim = await createNodeIdentity({ role: "worker", model: MODEL });
    const attacker = await createNodeIdentity({ role: "worker", model: MODEL });
    const { claims } = readRaTlsExtensions(attacker.tls.certDer);
    const { evidence } = readRaTlsExtensions(victim.tls.certDer);
    // The attacker holds its own TLS key and claims, and borrows the victim's (genuine) evidence.
    const { createPrivateKey } = await import("node:crypto");
    const priv = createPrivateKey(attacker.tls.keyPem);
    const forged = buildRaTlsCertificate({
      privateKey: priv,
      publicKeySpki: Buffer.from(decodeClaims(claims).tlsPublicKey, "hex"),
      commonName: "cocoon-worker",
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3600_000),
      evidence,
      claims,
    });
    await refusal(verifyPeerCertificate(forged.der, DEV_POLICY, fresh()), "ratls.reportdata");
  });

  it("tampered evidence, non-canonical claims and unknown critical extensions are refused", async () => {
    const id = await createNodeIdentity({ role: "worker" });
    const { createPrivateKey } = await import("node:crypto");
    const priv = createPrivateKey(id.tls.keyPem);
    const spki = Buffer.from(id.claims.tlsPublicKey, "hex");
    const mk = (evidence: Buffer, claims: Buffer) =>
      buildRaTlsCertificate({ privateKey: priv, publicKeySpki: spki, commonName: "x", notBefore: new Date(Date.now() - 1000), notAfter: new Date(Date.now() + 3600_000), evidence, claims }).der;
    const b = decodeEvidenceBundle(id.evidence);
    const badQuote = Buffer.from(b.quote);
    badQuote[100] ^= 1;
    await refusal(verifyPeerCertificate(mk(encodeEvidenceBundle({ ...b, quote: badQuote }), id.claimsBytes), DEV_POLICY, fresh()), "evidence.sim");
    const spaced = Buffer.from(JSON.stringify(JSON.parse(id.claimsBytes.toString()), null, 1));
    await refusal(verifyPeerCertificate(mk(id.evidence, spaced), DEV_POLICY, fresh()), "ratls.claims");
    await refusal(verifyPeerCertificate(mk(Buffer.from("{}"), id.claimsBytes), DEV_POLICY, fresh()), "ratls.evidence-format");
    const extra = buildRaTlsCertificate({
      privateKey: priv, publicKeySpki: spki, commonName: "x", notBefore: new Date(Date.now() - 1000), notAfter: new Date(Date.now() + 3600_000),
      evidence: id.evidence, claims: id.claimsBytes, extraExtensions: [{ oid: "1.2.3.4.5", critical: true, value: Buffer.from([5, 0]) }],
    }).der;
    const c = await refusal(verifyPeerCertificate(extra, DEV_POLICY, fresh()), "ratls.critical-extension");
    assert.equal(c.measured, "1.2.3.4.5");
    const selfSigned = Buffer.from(id.tls.certDer);
    selfSigned[selfSigned.length - 5] ^= 1; // inside the signature
    await refusal(verifyPeerCertificate(selfSigned, DEV_POLICY, fresh()), "ratls.self-signature");
    await refusal(verifyPeerCertificate(Buffer.from("not a certificate"), DEV_POLICY, fresh()), "ratls.format");
  });

  it("a genuine TDX quote (with collateral) replayed into a certificate fails the REPORTDATA binding", async () => {
    const id = await createNodeIdentity({ role: "proxy", now: TDX_V4.at });
    const { createPrivateKey } = await import("node:crypto");
    const claims = JSON.parse(id.claimsBytes.toString());
    claims.platform = "tdx";
    const { encodeClaims } = await import("../../src/tee/claims.js");
    const claimsBytes = encodeClaims(claims);
    const bundle = encodeEvidenceBundle({ platform: "tdx", quote: vec(TDX_V4.quote), collateral: parseCollateral(vecText(TDX_V4.collateral)) });
    const der = buildRaTlsCertificate({
      privateKey: createPrivateKey(id.tls.keyPem), publicKeySpki: Buffer.from(id.claims.tlsPublicKey, "hex"), commonName: "cocoon-proxy",
      notBefore: new Date(TDX_V4.at.getTime() - 60_000), notAfter: new Date(TDX_V4.at.getTime() + 3600_000), evidence: bundle, claims: claimsBytes,
    }).der;
    const e = await refusal(verifyPeerCertificate(der, PRODUCTION_POLICY, { now: TDX_V4.at, ...fresh() }), "ratls.reportdata");
    assert.match(e.measured, /^9a9d48e7/);
    // Later, the same certificate's collateral has expired: the platform check refuses first.
    const later = new Date("2025-07-19T10:30:00Z");
    const bundleOld = encodeEvidenceBundle({ platform: "tdx", quote: vec(TDX_V4.quote) });
    const der2 = buildRaTlsCertificate({
      privateKey: createPrivateKey(id.tls.keyPem), publicKeySpki: Buffer.from(id.claims.tlsPublicKey, "hex"), commonName: "cocoon-proxy",
      notBefore: new Date(TDX_V4.at.getTime() - 60_000), notAfter: new Date(TDX_V4.at.getTime() + 3600_000), evidence: bundleOld, claims: claimsBytes,
    }).der;
    const n = await refusal(verifyPeerCertificate(der2, PRODUCTION_POLICY, { now: later, ...fresh() }), "evidence.tdx");
    assert.equal(n.measured, "NoCollateral");
  });

  it("policy rules: measurement and model allow-lists, TCB minimum", async () => {
    const id = await createNodeIdentity({ role: "worker", model: MODEL, nodeId: "w1" });
    const peer = await verifyPeerCertificate(id.tls.certDer, DEV_POLICY, fresh());
    const strict: Policy = parsePolicy({ mode: "production", allowSim: true, requireGpu: false, measurements: { worker: ["11".repeat(32)] }, models: [MODEL.digest] });
    const e = await refusal(verifyPeerCertificate(id.tls.certDer, strict, fresh()), "policy.measurement");
    assert.equal(e.measured, peer.imageDigest);
    assert.match(e.fix, new RegExp(`add "${peer.imageDigest}" to measurements.worker`));
    const okMeas = parsePolicy({ ...strict, measurements: { worker: [peer.imageDigest] } });
    assert.equal((await verifyPeerCertificate(id.tls.certDer, okMeas, fresh())).imageDigest, peer.imageDigest);
    const wrongModel = parsePolicy({ ...okMeas, models: ["22".repeat(32)] });
    const m = await refusal(verifyPeerCertificate(id.tls.certDer, wrongModel, fresh()), "policy.model");
    assert.equal(m.measured, MODEL.digest);
    const noModel = await createNodeIdentity({ role: "worker" });
    await refusal(verifyPeerCertificate(noModel.tls.certDer, parsePolicy({ mode: "production", allowSim: true, measurements: { worker: [peer.imageDigest] } }), fresh()), "policy.model");
  });

  it("GPU evidence is bound both ways: its digest in the claims, the claims' nonce in the evidence", async () => {
    const nv = new TestNvidia();
    installTestNvidiaRootForTestsOnly(nv.rootPem);
    try {
      let nonce: Buffer | undefined;
      const id = await createNodeIdentity({ role: "worker", model: MODEL, gpuCollector: async (n) => ((nonce = n), nv.bundle(n)) });
      assert.deepEqual(nonce, gpuNonce(id.claims));
      const peer = await verifyPeerCertificate(id.tls.certDer, DEV_POLICY, { now: new Date(), ...fresh() });
      assert.equal(peer.gpu?.verified, true);
      assert.equal(peer.gpu?.reportData, nonce!.toString("hex"));
      assert.equal(peer.claims.gpuEvidenceDigest, createHash("sha256").update(decodeEvidenceBundle(readRaTlsExtensions(id.tls.certDer).evidence).gpu!).digest("hex"));
      // Evidence of another identity (or machine), replayed into this one: digest bound, nonce not.
      const other = await createNodeIdentity({ role: "worker", model: MODEL, gpuCollector: async (n) => nv.bundle(n) });
      const stolen = decodeEvidenceBundle(readRaTlsExtensions(other.tls.certDer).evidence).gpu!;
      const replay = await createNodeIdentity({ role: "worker", model: MODEL, gpuEvidence: stolen });
      await refusal(verifyPeerCertificate(replay.tls.certDer, DEV_POLICY, fresh()), "evidence.nvidia");
      // The real vector (nvtrust's fixed nonce) cannot be bound to any new identity either.
      const real = await createNodeIdentity({ role: "worker", model: MODEL, gpuEvidence: encodeGpuEvidence({ evidence: nvEvidence(), certChain: nvChain() }) });
      await assert.rejects(verifyPeerCertificate(real.tls.certDer, DEV_POLICY, fresh()), /nonce .* is not the expected/);
      // Evidence signed under a test NVIDIA root is refused by the production policy.
      const prod = parsePolicy({ mode: "production", allowSim: true, measurements: { worker: [peer.imageDigest] }, models: [MODEL.digest] });
      await refusal(verifyPeerCertificate(id.tls.certDer, prod, fresh()), "policy.test-root");
    } finally {
      uninstallTestRoots();
    }
    assert.ok(NV_AT);
  });

  it("verified evidence is cached by hash and the cache is bounded", async () => {
    const cache = new EvidenceCache(2);
    const ids = await Promise.all([0, 1, 2].map(() => createNodeIdentity({ role: "proxy" })));
    await verifyPeerCertificate(ids[0].tls.certDer, DEV_POLICY, { cache });
    await verifyPeerCertificate(ids[0].tls.certDer, DEV_POLICY, { cache });
    assert.equal(cache.hits, 1);
    await verifyPeerCertificate(ids[1].tls.certDer, DEV_POLICY, { cache });
    await verifyPeerCertificate(ids[2].tls.certDer, DEV_POLICY, { cache });
    assert.equal(cache.size, 2);
  });
});

describe("sim evidence", () => {
  it("is insecure, signed by the dev key, and detects tampering", () => {
    const rd = Buffer.alloc(64, 7);
    const ev = createSimEvidence({ reportData: rd });
    const v = verifySimEvidence(ev);
    assert.equal(v.verified, true);
    assert.equal(v.insecure, true);
    assert.equal(v.reportData, rd.toString("hex"));
    const t = Buffer.from(ev);
    t[300] ^= 1;
    assert.equal(verifySimEvidence(t).verified, false);
    const dbg = createSimEvidence({ reportData: rd, debug: true });
    assert.equal(verifySimEvidence(dbg).checks.debugOff, false);
    assert.equal(verifySimEvidence(dbg, { allowDebug: true }).verified, true);
    assert.equal(attestationHeaderValue({ platform: "sim", insecure: true }), "insecure-sim");
    assert.equal(attestationHeaderValue({ platform: "tdx", insecure: false }), "tdx");
  });
});

describe("TLS 1.3 loopback with mutual RA-TLS", () => {
  it("both sides verify the peer certificate before any application data", async () => {
    const server = await createNodeIdentity({ role: "proxy" });
    const client = await createNodeIdentity({ role: "worker", model: MODEL });
    const seen: { server?: VerifiedPeer; client?: VerifiedPeer } = {};
    const srv = tls.createServer(
      { key: server.tls.keyPem, cert: server.tls.certPem, requestCert: true, rejectUnauthorized: false, minVersion: "TLSv1.3" },
      (sock) => {
        const der = sock.getPeerX509Certificate()?.raw;
        verifyPeerCertificate(Buffer.from(der!), DEV_POLICY, { expectedRole: "worker", ...fresh() })
          .then((p) => {
            seen.server = p;
            sock.end(`hello ${p.claims.role}`);
          })
          .catch((e) => sock.destroy(e));
      },
    );
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as AddressInfo).port;
    const reply = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", port, key: client.tls.keyPem, cert: client.tls.certPem, rejectUnauthorized: false, minVersion: "TLSv1.3" }, async () => {
        try {
          assert.equal(s.getProtocol(), "TLSv1.3");
          seen.client = await verifyPeerCertificate(Buffer.from(s.getPeerX509Certificate()!.raw), DEV_POLICY, { expectedRole: "proxy", ...fresh() });
        } catch (e) {
          reject(e);
        }
      });
      let data = "";
      s.on("data", (d) => (data += d));
      s.on("end", () => resolve(data));
      s.on("error", reject);
    });
    srv.close();
    assert.equal(reply, "hello worker");
    assert.equal(seen.client?.claims.tlsPublicKey, server.claims.tlsPublicKey);
    assert.equal(seen.server?.claims.tlsPublicKey, client.claims.tlsPublicKey);
  });
});
