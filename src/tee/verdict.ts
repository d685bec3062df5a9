// The common result shape of every evidence verifier (TDX, SEV-SNP, NVIDIA, sim). Verifiers never throw on bad
// evidence: they return verified=false with the reasons in `errors` and the individual results in `checks`.
export type Platform = "tdx" | "sev-snp" | "nvidia" | "sim";

export interface Verdict {
  platform: Platform;
  /** True only when every check passed and the status is acceptable for this platform. */
  verified: boolean;
  /** TDX: Intel TCB status (UpToDate, OutOfDate, ..., TCB_NOT_SUPPORTED), or Invalid / NoCollateral.
   * SEV-SNP and NVIDIA: Verified or Invalid. sim: INSECURE-SIM or Invalid. */
  status: string;
  /** True for the sim platform: no hardware protects this evidence. */
  insecure: boolean;
  /** The chain ends in a test root installed by test code (src/tee/roots/test-roots.ts): never production. */
  testRoot?: boolean;
  /** Platform measurements as lowercase hex (TDX: mrtd, rtmr[], mrconfigid, ...; SNP: measurement, ...). */
  measurements: Record<string, string | string[]>;
  /** Digest identifying the launched image, compared with policy allow-lists (see docs/attestation.md). */
  imageDigest: string;
  /** REPORTDATA (TDX, sim) / REPORT_DATA (SNP) / requester nonce (NVIDIA) as hex. */
  reportData: string;
  errors: string[];
  /** Facts worth a look that did not fail verification (e.g. unsigned bytes after a TDX quote's signature data). */
  warnings?: string[];
  checks: Record<string, boolean>;
  advisoryIds: string[];
  /** Platform-specific extra facts (FMSPC, TCB versions, chip id, ...). */
  details: Record<string, unknown>;
}

/** Runs one named check, recording success or the error text. Returns the value or undefined on failure. */
export class CheckList {
  readonly checks: Record<string, boolean> = {};
  readonly errors: string[] = [];
  run<T>(name: string, fn: () => T): T | undefined {
    try {
      const v = fn();
      this.checks[name] = true;
      return v;
    } catch (e) {
      this.checks[name] = false;
      this.errors.push(e instanceof Error ? e.message : String(e));
      return undefined;
    }
  }
  fail(name: string, message: string): void {
    this.checks[name] = false;
    this.errors.push(message);
  }
  get allPassed(): boolean {
    return Object.values(this.checks).every(Boolean) && this.errors.length === 0;
  }
}
