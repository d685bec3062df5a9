// Test trust anchors: a test may install its own Intel-style root (and AMD ARK/ASK) so that a whole network can
// run `--platform tdx` / `sev-snp` on machines without a TEE, through the real verifier code. This is a hook for
// test code only: no CLI flag or environment variable reaches it, evidence that chains to an installed test root
// is marked `insecure` and `testRoot` in its verdict, and the production policy refuses it (rule policy.test-root).
import { X509Certificate } from "node:crypto";
import { INTEL_SGX_ROOT_CA_PEM } from "./index.js";

interface TestRoots {
  intel: string[];
  amd: { ark: string; ask: string }[];
  nvidia: string[];
}
const installed: TestRoots = { intel: [], amd: [], nvidia: [] };

/**
 * TEST CODE ONLY. Trusts `pem` as an additional Intel SGX root in this process (until uninstallTestRoots).
 * Refuses to run under NODE_ENV=production so that a stray import cannot widen a deployed node's trust.
 */
export function installTestIntelRootForTestsOnly(pem: string): void {
  refuseInProduction();
  installed.intel.push(pem);
}

/** TEST CODE ONLY. Trusts an AMD ARK/ASK pair (any product) in this process. */
export function installTestAmdRootsForTestsOnly(roots: { ark: string; ask: string }): void {
  refuseInProduction();
  installed.amd.push(roots);
}

/** TEST CODE ONLY. Trusts `pem` as an additional NVIDIA Device Identity CA in this process. */
export function installTestNvidiaRootForTestsOnly(pem: string): void {
  refuseInProduction();
  installed.nvidia.push(pem);
}

export function uninstallTestRoots(): void {
  installed.intel.length = 0;
  installed.amd.length = 0;
  installed.nvidia.length = 0;
}

/** An installed NVIDIA test root whose key signed the last certificate of `chainDer`, if any. */
export function testNvidiaRootFor(chainDer: Buffer[]): string | undefined {
  const last = chainDer[chainDer.length - 1];
  if (installed.nvidia.length === 0 || !last) return undefined;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(last);
  } catch {
    return undefined;
  }
  return installed.nvidia.find((p) => {
    const root = new X509Certificate(p);
    return root.fingerprint256 === cert.fingerprint256 || (cert.checkIssued(root) && cert.verify(root.publicKey));
  });
}

function refuseInProduction(): void {
  if (process.env.NODE_ENV === "production") throw new Error("test trust anchors cannot be installed with NODE_ENV=production");
}

const fingerprintOfPem = (pem: string): string => new X509Certificate(pem).fingerprint256;

/** The root to check `chainDer` against: an installed test root when the chain ends in one, else Intel's. */
export function trustedIntelRootFor(chainDer: Buffer[]): string {
  const last = chainDer[chainDer.length - 1];
  if (installed.intel.length > 0 && last) {
    let fp: string | undefined;
    try {
      fp = new X509Certificate(last).fingerprint256;
    } catch {
      fp = undefined;
    }
    const hit = installed.intel.find((p) => fingerprintOfPem(p) === fp);
    if (hit) return hit;
  }
  return INTEL_SGX_ROOT_CA_PEM;
}

export function isTestIntelRoot(pem: string): boolean {
  return installed.intel.includes(pem);
}

/** An installed AMD test root pair whose ASK issued `vcekDer`, if any. */
export function testAmdRootsFor(vcekDer: Buffer): { ark: string; ask: string } | undefined {
  if (installed.amd.length === 0) return undefined;
  let vcek: X509Certificate;
  try {
    vcek = new X509Certificate(vcekDer);
  } catch {
    return undefined;
  }
  return installed.amd.find((r) => {
    const ask = new X509Certificate(r.ask);
    return vcek.checkIssued(ask) && vcek.verify(ask.publicKey);
  });
}
