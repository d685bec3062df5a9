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
    const bundle = await collectGpuEvidence(nonce, { nvidiaSmi: smi, python: helper });
    const back = decodeGpuEvidence(bundle);
    const v = verifyNvidiaEvidence(back.evidence, back.certChain, { expectedNonce: nonce });
    assert.equal(v.verified, true, v.errors.join("; "));
    await assert.rejects(collectGpuEvidence(Buffer.alloc(32, 1), { nvidiaSmi: smi, python: helper }), /signed nonce 5a5a.*not the requested 0101/);
    await assert.rejects(collectGpuEvidence(nonce, { nvidiaSmi: smi, python: tool("python-nopynvml", '{"error": "python module pynvml is missing: pip install nvidia-ml-py"}\n') }), /pynvml is missing/);
    await assert.rejects(collectGpuEvidence(nonce, { nvidiaSmi: smi, python: tool("python-fail", "", 1) }), /NVML did not return GPU evidence/);
    await assert.rejects(collectGpuEvidence(Buffer.alloc(8), { nvidiaSmi: smi, python: helper }), /must be 32 bytes/);
  });
});
