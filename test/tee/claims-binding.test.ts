// Issue #10.6 (low items): the sim warning tells the truth, --policy takes dev|production|FILE, a worker may announce
// only the model its claims bind, and a worker's id is bound into its claims so the proxy can check the announced one.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNodeIdentity } from "../../src/tee/identity.js";
import { verifyPeerCertificate, EvidenceCache } from "../../src/tee/ratls.js";
import { DEV_POLICY, PRODUCTION_POLICY, parsePolicy, resolvePolicySpec } from "../../src/tee/policy.js";
import { attestedWorkerId, decodeClaims, workerIdMismatch } from "../../src/tee/claims.js";
import { AttestationError } from "../../src/tee/errors.js";
import { SIM_WARNING, simWarning } from "../../src/tee/sim.js";
import { nodeSecurity } from "../../src/cli/security.js";
import { formatReport, runAttestVerify } from "../../src/cli/attest.js";
import type { Logger } from "../../src/util/log.js";

const tmp = mkdtempSync(join(tmpdir(), "claims-binding-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const fresh = () => ({ cache: new EvidenceCache() });
const DIGEST = "ef".repeat(32);

function capture(): { log: Logger; warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, log: { debug() {}, info() {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) } };
}

async function refusedBy(p: Promise<unknown>): Promise<AttestationError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AttestationError, String(e));
    return e;
  }
  assert.fail("expected a refusal");
}

describe("sim warning", () => {
  it("a sim node its policy accepts is not told that it is refused", async () => {
    const { log, warnings } = capture();
    const sec = await nodeSecurity("worker", { policy: "dev" }, log);
    assert.equal(warnings.length, 1);
    assert.doesNotMatch(warnings[0]!, /refuses this node/);
    assert.match(warnings[0]!, /INSECURE.*Policy "dev" accepts sim for development; a production policy refuses sim workers/);
    assert.match(String((sec.statusExtra().attestation as { warning: string }).warning), /Policy "dev" accepts sim/);
  });
  it("a sim client under the production policy (clients need no hardware evidence) is told so", async () => {
    const { log, warnings } = capture();
    await nodeSecurity("client", { policy: "production" }, log);
    assert.match(warnings[0]!, /Policy "production" does not require hardware evidence from a client/);
    assert.match(simWarning(PRODUCTION_POLICY, "worker"), /^INSECURE.*refuses sim workers: peers will refuse this node/);
    assert.ok(!SIM_WARNING.includes("refuses"));
  });
});

describe("--policy dev|production|FILE", () => {
  it("resolves the built-in names and files; a missing file names the choices", () => {
    assert.equal(resolvePolicySpec("dev"), DEV_POLICY);
    assert.equal(resolvePolicySpec(undefined), DEV_POLICY);
    assert.equal(resolvePolicySpec("production"), PRODUCTION_POLICY);
    const f = join(tmp, "p.json");
    writeFileSync(f, JSON.stringify({ name: "mine", mode: "dev" }));
    assert.equal(resolvePolicySpec(f).name, "mine");
    assert.throws(() => resolvePolicySpec(join(tmp, "nope.json")), /cannot read policy file .*--policy takes dev, production or a JSON file/);
  });
  it("cocoon attest verify --policy dev accepts a sim certificate; --policy production refuses it by rule", async () => {
    const id = await createNodeIdentity({ role: "worker", nodeId: "w-cli" });
    const cert = join(tmp, "cert.pem");
    writeFileSync(cert, id.tls.certPem);
    const dev = await runAttestVerify(cert, { policy: "dev" });
    assert.equal(dev.verified, true, dev.errors.join("; "));
    assert.equal(dev.policy?.name, "dev");
    assert.match(formatReport(dev), /claims: role worker "w-cli"/);
    const prod = await runAttestVerify(cert, { policy: "production" });
    assert.equal(prod.verified, false);
    assert.equal(prod.policy?.rule, "policy.sim");
  });
});

describe("announced models under the dev policy", () => {
  it("a worker without a weights digest binds its model name; the verifier exposes only that name", async () => {
    const sec = await nodeSecurity("worker", { policy: "dev" }, capture().log, { name: "my/model" });
    assert.deepEqual(sec.node.claims.model, { name: "my/model", digest: null });
    const verify = (await nodeSecurity("proxy", { policy: "dev" }, capture().log)).verifierFor("worker");
    const peer = await verify(sec.node.tls.certDer);
    assert.deepEqual(peer.models, ["my/model"], "the proxy refuses any other announced name");
  });
  it("a digest-less model is refused wherever digests are checked: production, or a dev policy with a model list", async () => {
    const id = await createNodeIdentity({ role: "worker", model: { name: "my/model" }, nodeId: "w1" });
    const peer = await verifyPeerCertificate(id.tls.certDer, DEV_POLICY, fresh());
    const prodLike = parsePolicy({ mode: "production", allowSim: true, requireGpu: false, measurements: { worker: [peer.imageDigest] }, models: [DIGEST] });
    const e = await refusedBy(verifyPeerCertificate(id.tls.certDer, prodLike, fresh()));
    assert.equal(e.rule, "policy.model");
    assert.match(e.message, /declared without a weights digest/);
    const devWithList = parsePolicy({ mode: "dev", allowSim: true, models: [DIGEST] });
    assert.equal((await refusedBy(verifyPeerCertificate(id.tls.certDer, devWithList, fresh()))).rule, "policy.model");
    const withDigest = await createNodeIdentity({ role: "worker", model: { name: "my/model", digest: DIGEST }, nodeId: "w1" });
    assert.equal((await verifyPeerCertificate(withDigest.tls.certDer, devWithList, fresh())).claims.model?.digest, DIGEST);
  });
});

describe("worker id bound in the claims", () => {
  it("attestedWorkerId reads the bound id; workerIdMismatch refuses another announced id", async () => {
    const id = await createNodeIdentity({ role: "worker", nodeId: "worker-ü-1" });
    assert.equal(decodeClaims(id.claimsBytes).nodeId, "worker-ü-1");
    const peer = await verifyPeerCertificate(id.tls.certDer, DEV_POLICY, fresh());
    assert.equal(attestedWorkerId(peer), "worker-ü-1");
    assert.equal(workerIdMismatch(peer, "worker-ü-1"), undefined);
    assert.match(String(workerIdMismatch(peer, "w2")), /announces worker id "w2" but its attestation binds "worker-ü-1"/);
    // Unbound (dev only) and non-worker peers: nothing to compare.
    const unbound = await verifyPeerCertificate((await createNodeIdentity({ role: "worker" })).tls.certDer, DEV_POLICY, fresh());
    assert.equal(unbound.claims.nodeId, null);
    assert.equal(attestedWorkerId(unbound), undefined);
    assert.equal(workerIdMismatch(unbound, "anything"), undefined);
    const proxy = await verifyPeerCertificate((await createNodeIdentity({ role: "proxy", nodeId: "p1" })).tls.certDer, DEV_POLICY, fresh());
    assert.equal(attestedWorkerId(proxy), undefined);
    assert.equal(attestedWorkerId(undefined), undefined);
    assert.equal(attestedWorkerId({ claims: "not claims" }), undefined);
  });
  it("nodeSecurity binds SecurityOptions.nodeId, keeps it across renewals, and the verifier exposes it", async () => {
    const sec = await nodeSecurity("worker", { policy: "dev", nodeId: "w7" }, capture().log);
    assert.equal(sec.node.claims.nodeId, "w7");
    await sec.rotate();
    assert.equal(sec.node.claims.nodeId, "w7");
    const peer = await (await nodeSecurity("proxy", {}, capture().log)).verifierFor("worker")(sec.node.tls.certDer);
    assert.equal(peer.nodeId, "w7");
    assert.equal(attestedWorkerId(peer), "w7");
  });
  it("the production policy refuses a worker whose claims bind no id", async () => {
    const bound = await createNodeIdentity({ role: "worker", model: { name: "m", digest: DIGEST }, nodeId: "w1" });
    const imageDigest = (await verifyPeerCertificate(bound.tls.certDer, DEV_POLICY, fresh())).imageDigest;
    const prodLike = parsePolicy({ mode: "production", allowSim: true, requireGpu: false, measurements: { worker: [imageDigest] }, models: [DIGEST] });
    assert.equal(attestedWorkerId(await verifyPeerCertificate(bound.tls.certDer, prodLike, fresh())), "w1");
    const unbound = await createNodeIdentity({ role: "worker", model: { name: "m", digest: DIGEST } });
    assert.equal((await refusedBy(verifyPeerCertificate(unbound.tls.certDer, prodLike, fresh()))).rule, "policy.node-id");
  });
  it("ids beyond 128 characters are refused when the identity is made", async () => {
    await assert.rejects(createNodeIdentity({ role: "worker", nodeId: "x".repeat(129) }), /nodeId/);
  });
});
