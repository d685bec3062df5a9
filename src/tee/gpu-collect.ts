// NVIDIA GPU evidence collection on the worker's machine (the nvtrust protocol through NVML):
//  1. `nvidia-smi conf-compute -f` must say "CC status: ON" (else a clear message: how to turn CC mode on);
//  2. NVML (through Python's nvidia-ml-py / pynvml, as nvtrust's local verifier does) returns the SPDM
//     GET_MEASUREMENTS transcript signed over the 32-byte nonce we give (gpuNonce of the node's claims) and the
//     device certificate chain: nvmlDeviceGetConfComputeGpuAttestationReport / nvmlDeviceGetConfComputeGpuCertificate.
// Node has no NVML binding, so step 2 runs a short Python program; both tools are overridable (tests put stand-ins
// there). The result is the GPU evidence bundle of evidence.ts, bound into the claims by digest.
// Not run on a real GPU in this repository's CI: see docs/attestation.md, "GPU evidence".
import { execFile } from "node:child_process";
import { encodeGpuEvidence } from "./evidence.js";
import { parseNvidiaEvidence } from "./nvidia.js";
import { toHex } from "../crypto/bytes.js";
import { X509Certificate } from "node:crypto";
import { errorText } from "./errors.js";
import { NVIDIA_OCSP_URL, fetchOcspStaples } from "./ocsp.js";
import { NVIDIA_DEVICE_IDENTITY_CA_PEM } from "./roots/index.js";
import { testNvidiaRootFor } from "./roots/test-roots.js";
import { splitPem } from "./x509.js";

const TOOL_TIMEOUT_MS = 60_000;

export class GpuEvidenceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GpuEvidenceError";
  }
}

export interface GpuCollectOptions {
  /** GPU index (default 0). */
  index?: number;
  nvidiaSmi?: string;
  python?: string;
  /** OCSP service whose answers are stapled to the evidence (default NVIDIA's); null: offline, staple nothing. */
  ocspUrl?: string | null;
  fetchImpl?: typeof fetch;
  /** Told when the OCSP service cannot be reached (the evidence then carries no answers). */
  onWarning?: (line: string) => void;
}

/** The Python side: prints {"report": hex, "certChain": PEM} for GPU `index` over the nonce (hex) in argv. */
export const NVML_COLLECT_PY = `
import sys, json
try:
    import pynvml
except ImportError:
    print(json.dumps({"error": "python module pynvml is missing: pip install nvidia-ml-py"})); sys.exit(0)
index, nonce = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(index)
r = pynvml.nvmlDeviceGetConfComputeGpuAttestationReport(h, nonce)
c = pynvml.nvmlDeviceGetConfComputeGpuCertificate(h)
report = bytes(r.attestationReport[: r.attestationReportSize])
chain = bytes(c.attestationCertChain[: c.attestationCertChainSize]).decode("latin1")
print(json.dumps({"report": report.hex(), "certChain": chain}))
`;

function run(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: TOOL_TIMEOUT_MS, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stdout, stderr }));
      else resolve({ stdout, stderr });
    });
  });
}

/** Reads the confidential-computing mode; throws GpuEvidenceError with the fix when it is off or unknown. */
export async function checkCcMode(o: GpuCollectOptions = {}): Promise<void> {
  const smi = o.nvidiaSmi ?? "nvidia-smi";
  let out: string;
  try {
    out = (await run(smi, ["conf-compute", "-f"])).stdout;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === "ENOENT") throw new GpuEvidenceError(`${smi} not found: install the NVIDIA driver (R535 or newer) inside this confidential VM`);
    throw new GpuEvidenceError(`${smi} conf-compute -f failed (${(err.stderr || err.message).trim()}); the driver may be too old for confidential computing`);
  }
  const m = /CC status:\s*(\w+)/i.exec(out);
  if (!m) throw new GpuEvidenceError(`cannot read the CC mode from \`${smi} conf-compute -f\` (it printed: ${out.trim().slice(0, 200)})`);
  if (m[1].toUpperCase() !== "ON") {
    throw new GpuEvidenceError(
      `the GPU's confidential-computing mode is ${m[1].toUpperCase()}: it produces no attestation. Turn it on from the host (nvtrust's host_tools/python/nvidia_gpu_tools.py --gpu-name=H100 --set-cc-mode=on --reset-after-cc-mode-switch), pass the GPU to the TD again, and check with \`${smi} conf-compute -f\``,
    );
  }
}

/** Collects GPU evidence over `nonce` (32 bytes) and returns the evidence bundle (evidence.ts encodeGpuEvidence). */
export async function collectGpuEvidence(nonce: Buffer, o: GpuCollectOptions = {}): Promise<Buffer> {
  if (nonce.length !== 32) throw new Error(`the GPU nonce must be 32 bytes, got ${nonce.length}`);
  await checkCcMode(o);
  const py = o.python ?? "python3";
  let out: string;
  try {
    out = (await run(py, ["-c", NVML_COLLECT_PY, String(o.index ?? 0), toHex(nonce)])).stdout;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === "ENOENT") throw new GpuEvidenceError(`${py} not found: GPU evidence is read through NVML with Python (pip install nvidia-ml-py)`);
    throw new GpuEvidenceError(`NVML did not return GPU evidence: ${(err.stderr || err.message).trim().split("\n").slice(-1)[0]}`);
  }
  let j: { report?: string; certChain?: string; error?: string };
  try {
    j = JSON.parse(out.trim().split("\n").slice(-1)[0]) as typeof j;
  } catch {
    throw new GpuEvidenceError(`the NVML helper printed something unexpected: ${out.trim().slice(0, 200)}`);
  }
  if (j.error) throw new GpuEvidenceError(j.error);
  if (!j.report || !/^([0-9a-f]{2})+$/.test(j.report) || !j.certChain?.includes("BEGIN CERTIFICATE")) throw new GpuEvidenceError("the NVML helper returned no report or no certificate chain");
  const evidence = Buffer.from(j.report, "hex");
  // The transcript must be over our nonce, or peers will refuse it; say so here rather than at every peer.
  const got = parseNvidiaEvidence(evidence).requesterNonce;
  if (!got.equals(nonce)) throw new GpuEvidenceError(`the GPU signed nonce ${toHex(got)}, not the requested ${toHex(nonce)}`);
  let ocsp: Buffer[] | undefined;
  if (o.ocspUrl !== null) {
    try {
      ocsp = await fetchOcspStaples(fullChain(j.certChain), o.ocspUrl ?? NVIDIA_OCSP_URL, o.fetchImpl);
    } catch (e) {
      o.onWarning?.(`GPU evidence carries no OCSP answers: ${errorText(e)}; peers whose policy requires OCSP will refuse this worker`);
    }
  }
  return encodeGpuEvidence({ evidence, certChain: j.certChain, ...(ocsp ? { ocsp } : {}) });
}

/** The GPU's chain with the root it ends at (NVML may leave the root out). */
function fullChain(pem: string): X509Certificate[] {
  const ders = splitPem(pem);
  const certs = ders.map((d) => new X509Certificate(d));
  const last = certs[certs.length - 1];
  if (last && !(last.checkIssued(last) && last.verify(last.publicKey))) certs.push(new X509Certificate(testNvidiaRootFor(ders) ?? NVIDIA_DEVICE_IDENTITY_CA_PEM));
  return certs;
}
