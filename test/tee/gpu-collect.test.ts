// GPU evidence collection through stand-ins for nvidia-smi and the NVML helper (no GPU here): CC mode off or
// unknown gives the fix, the evidence must be over the requested nonce, and the result verifies end to end.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkCcMode, collectGpuEvidence } from "../../src/tee/gpu-collect.js";
import { decodeGpuEvidence } from "../../src/tee/evidence.js";
import { verifyNvidiaEvidence } from "../../src/tee/nvidia.js";
import { installTestNvidiaRootForTestsOnly, uninstallTestRoots } from "../../src/tee/roots/test-roots.js";
import { TestNvidia } from "./test-tee.js";
import { X509Certificate, generateKeyPairSync } from "node:crypto";
import { ocspRequest } from "../../src/tee/ocsp.js";
import { checkPolicy, parsePolicy } from "../../src/tee/policy.js";

const dir = mkdtempSync(join(tmpdir(), "gpu-"));
after(() => {
  uninstallTestRoots();
  rmSync(dir, { recursive: true, force: true });
});
function tool(name: string, stdout: string, code = 0): string {
  const out = join(dir, `${name}.out`);
  writeFileSync(out, stdout);
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\ncat ${JSON.stringify(out)}\nexit ${code}\n`);
  chmodSync(p, 0o755);
  return p;
}

describe("NVIDIA GPU evidence collection", () => {
  it("CC mode off, unreadable, or no driver: a clear message with the fix", async () => {
    await assert.rejects(checkCcMode({ nvidiaSmi: tool("smi-off", "CC status: OFF\n") }), /confidential-computing mode is OFF.*set-cc-mode=on/);
    await assert.rejects(checkCcMode({ nvidiaSmi: tool("smi-odd", "No devices were found\n") }), /cannot read the CC mode/);
    await assert.rejects(checkCcMode({ nvidiaSmi: join(dir, "missing-smi") }), /not found: install the NVIDIA driver/);
    await assert.doesNotReject(checkCcMode({ nvidiaSmi: tool("smi-on", "CC status: ON\n") }));
  });
  it("returns a bundle over the requested nonce that verifies; another nonce or a helper error is refused", async () => {
    const nv = new TestNvidia();
    installTestNvidiaRootForTestsOnly(nv.rootPem);
    const nonce = Buffer.alloc(32, 0x5a);
    const g = decodeGpuEvidence(nv.bundle(nonce));
    const helper = tool("python-ok", `${JSON.stringify({ report: g.evidence.toString("hex"), certChain: g.certChain })}\n`);
    const smi = tool("smi-on2", "CC status: ON\n");
    const bundle = await collectGpuEvidence(nonce, { nvidiaSmi: smi, python: helper, ocspUrl: null });
    const back = decodeGpuEvidence(bundle);
    const v = verifyNvidiaEvidence(back.evidence, back.certChain, { expectedNonce: nonce });
    assert.equal(v.verified, true, v.errors.join("; "));
    await assert.rejects(collectGpuEvidence(Buffer.alloc(32, 1), { nvidiaSmi: smi, python: helper, ocspUrl: null }), /signed nonce 5a5a.*not the requested 0101/);
    await assert.rejects(collectGpuEvidence(nonce, { nvidiaSmi: smi, python: tool("python-nopynvml", '{"error": "python module pynvml is missing: pip install nvidia-ml-py"}\n') }), /pynvml is missing/);
    await assert.rejects(collectGpuEvidence(nonce, { nvidiaSmi: smi, python: tool("python-fail", "", 1) }), /NVML did not return GPU evidence/);
    await assert.rejects(collectGpuEvidence(Buffer.alloc(8), { nvidiaSmi: smi, python: helper }), /must be 32 bytes/);
  });
});

describe("OCSP for the GPU chain (stapled by the worker, checked offline)", () => {
  const nv = new TestNvidia();
  const nonce = Buffer.alloc(32, 0x33);
  const g = decodeGpuEvidence(nv.bundle(nonce));
  const chain = nv.ders.map((d) => new X509Certificate(d));
  const staples = (o: Parameters<TestNvidia["ocspAnswer"]>[1] = {}) => chain.slice(0, -1).map((c, i) => nv.ocspAnswer(ocspRequest(c, chain[i + 1]), o));
  const verify = (ocsp?: Buffer[]) => verifyNvidiaEvidence(g.evidence, g.certChain, { expectedNonce: nonce, ...(ocsp ? { ocsp } : {}) });

  it("the collector staples one answer per certificate below the root; good answers verify", async () => {
    installTestNvidiaRootForTestsOnly(nv.rootPem);
    const seen: string[] = [];
    const fetchImpl = (async (url: string, init?: RequestInit) => {
      seen.push(String(url));
      return new Response(new Uint8Array(nv.ocspAnswer(Buffer.from(init!.body as Uint8Array))), { status: 200 });
    }) as typeof fetch;
    const helper = tool("python-ocsp", `${JSON.stringify({ report: g.evidence.toString("hex"), certChain: g.certChain })}\n`);
    const bundle = decodeGpuEvidence(await collectGpuEvidence(nonce, { nvidiaSmi: tool("smi-on3", "CC status: ON\n"), python: helper, ocspUrl: "http://ocsp.test/", fetchImpl }));
    assert.equal(bundle.ocsp?.length, chain.length - 1);
    assert.equal(seen.length, chain.length - 1);
    const v = verify(bundle.ocsp);
    assert.equal(v.checks.ocspGood, true, v.errors.join("; "));
    assert.equal(v.verified, true);
    const warnings: string[] = [];
    const offline = decodeGpuEvidence(await collectGpuEvidence(nonce, { nvidiaSmi: tool("smi-on4", "CC status: ON\n"), python: helper, ocspUrl: "http://127.0.0.1:9/", onWarning: (l) => warnings.push(l) }));
    assert.equal(offline.ocsp, undefined);
    assert.match(warnings.join(), /no OCSP answers: OCSP service unreachable/);
  });
  it("revoked, stale, forged or misdirected answers fail the GPU verdict", () => {
    installTestNvidiaRootForTestsOnly(nv.rootPem);
    const revoked = verify(staples({ revoked: [0] }));
    assert.equal(revoked.verified, false);
    assert.match(revoked.errors.join(), /the certificate is REVOKED/);
    assert.match(verify(staples({ now: new Date(Date.now() - 30 * 86_400_000) })).errors.join(), /is stale/);
    const forged = verify(staples({ signWith: generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey }));
    assert.match(forged.errors.join(), /not signed by the issuer/);
    const swapped = staples();
    [swapped[0], swapped[1]] = [swapped[1], swapped[0]];
    assert.match(verify(swapped).errors.join(), /not signed by the issuer/);
    const other = staples();
    other[0] = nv.ocspAnswer(ocspRequest(chain[1], chain[2]), { signWith: nv.keys[1] }); // right signer, wrong certificate
    assert.match(verify(other).errors.join(), /does not cover this certificate/);
    assert.match(verify(staples().slice(1)).errors.join(), /carries 3 OCSP answer\(s\) for 4/);
    assert.equal(verify().verified, true, "without staples: offline mode, noted");
    assert.match(String((verify().details as { notes: string[] }).notes), /offline mode/);
  });
  it("the production policy requires OCSP answers; requireGpuOcsp: false is the offline mode", () => {
    const claims = { model: { name: "m", digest: "cd".repeat(32) }, nodeId: "w" } as never;
    const s = { role: "worker" as const, platform: "tdx" as const, imageDigest: "ee".repeat(32), claims, hasVerifiedGpu: true, hasGpuOcsp: false, hasGpuRim: true };
    const p = parsePolicy({ mode: "production", measurements: { worker: ["ee".repeat(32)] }, models: ["cd".repeat(32)] });
    assert.throws(() => checkPolicy(p, s), /policy\.gpu-ocsp/);
    assert.doesNotThrow(() => checkPolicy(p, { ...s, hasGpuOcsp: true }));
    assert.doesNotThrow(() => checkPolicy({ ...p, requireGpuOcsp: false }, s));
  });
});
