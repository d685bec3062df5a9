import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEV_POLICY, PRODUCTION_POLICY, checkPolicy, loadPolicy, parsePolicy } from "../../src/tee/policy.js";
import { AttestationError } from "../../src/tee/errors.js";

const dir = mkdtempSync(join(tmpdir(), "policy-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const D = "ab".repeat(32);
const M = "cd".repeat(32);

function ruleOf(fn: () => void): string | undefined {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof AttestationError);
    return e.rule;
  }
  return undefined;
}

describe("policy", () => {
  it("loads a JSON file with defaults and normalises digests", () => {
    const p = join(dir, "p.json");
    writeFileSync(p, JSON.stringify({ name: "prod", mode: "production", measurements: { worker: [D.toUpperCase()] }, models: [M] }));
    const pol = loadPolicy(p);
    assert.equal(pol.allowSim, false);
    assert.equal(pol.minTcbStatus, "UpToDate");
    assert.deepEqual(pol.measurements.worker, [D]);
    assert.deepEqual(pol.measurements.proxy, []);
  });
  it("explains invalid files", () => {
    const p = join(dir, "bad.json");
    writeFileSync(p, JSON.stringify({ mode: "production", measurements: { worker: ["xyz"] }, extra: 1 }));
    assert.throws(() => loadPolicy(p), /measurements\.worker\.0: hex digest.*docs\/attestation\.md/s);
    writeFileSync(p, JSON.stringify({ mode: "production", measurements: { worker: ["ab".repeat(48)] } }));
    assert.throws(() => loadPolicy(p), /measurements\.worker\.0: a 96-hex SEV-SNP MEASUREMENT is not an image digest: allow the 64-hex digest that `cocoon attest measure REPORT` prints/);
    writeFileSync(p, "{not json");
    assert.throws(() => loadPolicy(p), /not valid JSON/);
    assert.throws(() => loadPolicy(join(dir, "missing.json")), /cannot read policy file/);
    assert.throws(() => parsePolicy({ mode: "production", minTcbStatus: "Great" }), /minTcbStatus/);
  });
  it("production refuses sim and empty allow-lists; dev accepts anything but still checks given lists", () => {
    const subj = { role: "worker" as const, platform: "tdx" as const, imageDigest: D, tcbStatus: "UpToDate", claims: { nodeId: "w1", model: { name: "m", digest: M } } as never, hasVerifiedGpu: true, hasGpuOcsp: true, hasGpuRim: true };
    assert.equal(ruleOf(() => checkPolicy(PRODUCTION_POLICY, { ...subj, platform: "sim" })), "policy.sim");
    assert.equal(ruleOf(() => checkPolicy(PRODUCTION_POLICY, subj)), "policy.measurement");
    assert.equal(ruleOf(() => checkPolicy(DEV_POLICY, subj)), undefined);
    assert.equal(ruleOf(() => checkPolicy(DEV_POLICY, { ...subj, platform: "sim" })), undefined);
    const prod = parsePolicy({ mode: "production", measurements: { worker: [D] }, models: [M] });
    assert.equal(ruleOf(() => checkPolicy(prod, subj)), undefined);
    assert.equal(ruleOf(() => checkPolicy(prod, { ...subj, hasVerifiedGpu: false })), "policy.gpu");
    assert.equal(ruleOf(() => checkPolicy(prod, { ...subj, hasGpuRim: false })), "policy.gpu-rim");
    assert.equal(ruleOf(() => checkPolicy({ ...prod, requireGpuRim: false }, { ...subj, hasGpuRim: false })), undefined);
    assert.equal(ruleOf(() => checkPolicy(prod, { ...subj, tcbStatus: "OutOfDate" })), "policy.tcb");
    assert.equal(ruleOf(() => checkPolicy(parsePolicy({ ...prod, minTcbStatus: "OutOfDate" }), { ...subj, tcbStatus: "OutOfDate" })), undefined);
    assert.equal(ruleOf(() => checkPolicy(prod, { ...subj, claims: { nodeId: "w1", model: { name: "m", digest: D } } as never })), "policy.model");
    // Clients are not in attestedRoles by default: a production proxy accepts sim clients.
    assert.equal(ruleOf(() => checkPolicy(parsePolicy({ mode: "production", measurements: { client: [D] } }), { role: "client", platform: "sim", imageDigest: D })), undefined);
  });
  it("refusals carry the measured value and a fix", () => {
    try {
      checkPolicy(parsePolicy({ mode: "production", measurements: { proxy: [M] } }), { role: "proxy", platform: "tdx", imageDigest: D, tcbStatus: "UpToDate" });
      assert.fail("expected a refusal");
    } catch (e) {
      const a = e as AttestationError;
      assert.equal(a.rule, "policy.measurement");
      assert.equal(a.measured, D);
      assert.match(a.message, new RegExp(`measured: ${D}.*Fix: if this image is trusted, add "${D}" to measurements.proxy`));
    }
  });
});
