// Attestation policy: which peers a node accepts. Loaded from a JSON file now (and from the root contract
// later). Every refusal is an AttestationError naming the rule, the measured value and the fix.
import { readFileSync } from "node:fs";
import { z } from "zod";
import { ROLES, type Claims, type NodePlatform, type Role } from "./claims.js";
import { AttestationError } from "./errors.js";
import { TCB_STATUSES, tcbRank } from "./tdx/tcb.js";
import type { TcbVersion } from "./sevsnp.js";

/** An SEV-SNP TCB floor: security patch levels (SPLs) per firmware component; fmc only on Turin. */
const SnpTcbSchema = z
  .object({ bootloader: z.number().int().min(0).max(255), tee: z.number().int().min(0).max(255), snp: z.number().int().min(0).max(255), microcode: z.number().int().min(0).max(255), fmc: z.number().int().min(0).max(255).optional() })
  .strict();
export type SnpTcbFloor = z.output<typeof SnpTcbSchema>;

const hexDigest = z
  .string()
  .refine((s) => !/^[0-9a-fA-F]{96}$/.test(s), "a 96-hex SEV-SNP MEASUREMENT is not an image digest: allow the 64-hex digest that `cocoon attest measure REPORT` prints")
  .pipe(z.string().regex(/^[0-9a-fA-F]{64}$/, "hex digest (64 hex characters: SHA-256 image or model digest)"))
  .transform((s) => s.toLowerCase());

export const PolicySchema = z
  .object({
    name: z.string().default("custom"),
    /** dev: empty allow-lists mean "any". production: empty allow-lists allow nothing. */
    mode: z.enum(["dev", "production"]),
    allowSim: z.boolean().default(false),
    allowDebug: z.boolean().default(false),
    /** Worst acceptable Intel TCB status (UpToDate is best). Revoked / TCB_NOT_SUPPORTED are always refused. */
    minTcbStatus: z.enum(TCB_STATUSES).default("UpToDate"),
    /** Refuse TDX collateral older than this evaluation data number (rollback protection). */
    minTcbEvaluationDataNumber: z.number().int().min(0).optional(),
    /** Allowed image digests per role (see docs/attestation.md for how each platform's digest is computed). */
    measurements: z
      .object({ client: z.array(hexDigest).default([]), proxy: z.array(hexDigest).default([]), worker: z.array(hexDigest).default([]) })
      .strict()
      .default({ client: [], proxy: [], worker: [] }),
    /** Allowed model weight digests (SHA-256 hex). */
    models: z.array(hexDigest).default([]),
    /** Workers must present verified NVIDIA GPU evidence (default: true in production, false in dev). */
    requireGpu: z.boolean().optional(),
    /** GPU evidence must carry good, fresh stapled OCSP answers (default: true in production). false = offline mode. */
    requireGpuOcsp: z.boolean().optional(),
    /** GPU evidence must match NVIDIA-signed RIMs (driver + VBIOS) the worker attached (default: true in production). */
    requireGpuRim: z.boolean().optional(),
    /** Empty allow-lists mean "nothing allowed" even in dev mode (set when the lists come from the root contract). */
    strictAllowLists: z.boolean().default(false),
    /** Refuse TDX quotes with non-zero bytes after the signature data (default: ignore them with a warning). */
    refuseQuoteTrailingBytes: z.boolean().default(false),
    /** SEV-SNP: the lowest acceptable REPORTED_TCB, component by component (bootloader, TEE, SNP, microcode SPLs). */
    minSnpTcb: SnpTcbSchema.optional(),
    /** SEV-SNP: the lowest acceptable LAUNCH_TCB (the TCB the guest was started under). */
    minSnpLaunchTcb: SnpTcbSchema.optional(),
    /** SEV-SNP: accept a COMMITTED_TCB below CURRENT_TCB (firmware updated but not yet committed). Default: must be equal. */
    allowProvisionalSnpFirmware: z.boolean().default(false),
    /** SEV-SNP: the evidence must carry AMD's CRL so the ASK and VCEK are checked for revocation (default: true in production). */
    requireSnpCrl: z.boolean().optional(),
    /** TDX: the evidence must carry the CCEL boot event log, replayed to the quote's RTMRs (default false: few
     * deployments expose /sys/firmware/acpi/tables/data/CCEL to the guest yet). */
    requireTdxEventLog: z.boolean().default(false),
    /** Roles that must present hardware evidence; others may run on sim even in production (e.g. clients). */
    attestedRoles: z.array(z.enum(ROLES)).default(["proxy", "worker"]),
  })
  .strict()
  .transform((p) => ({
    ...p,
    requireGpu: p.requireGpu ?? p.mode === "production",
    requireGpuOcsp: p.requireGpuOcsp ?? p.mode === "production",
    requireGpuRim: p.requireGpuRim ?? p.mode === "production",
    requireSnpCrl: p.requireSnpCrl ?? p.mode === "production",
  }));
export type Policy = z.output<typeof PolicySchema>;

/** Development policy: accepts sim evidence, debug guests and any measurement or model. Never in production. */
export const DEV_POLICY: Policy = Object.freeze({
  name: "dev",
  mode: "dev",
  allowSim: true,
  strictAllowLists: false,
  allowDebug: true,
  minTcbStatus: "OutOfDateConfigurationNeeded",
  measurements: { client: [], proxy: [], worker: [] },
  models: [],
  requireGpu: false,
  requireGpuOcsp: false,
  requireGpuRim: false,
  attestedRoles: ["proxy", "worker"],
  refuseQuoteTrailingBytes: false,
  allowProvisionalSnpFirmware: true,
  requireSnpCrl: false,
  requireTdxEventLog: false,
}) as Policy;

/** Production defaults: no sim, no debug, UpToDate TCB only, and nothing allowed until allow-lists are filled. */
export const PRODUCTION_POLICY: Policy = Object.freeze({
  name: "production",
  mode: "production",
  allowSim: false,
  allowDebug: false,
  minTcbStatus: "UpToDate",
  measurements: { client: [], proxy: [], worker: [] },
  models: [],
  strictAllowLists: false,
  requireGpu: true,
  requireGpuOcsp: true,
  requireGpuRim: true,
  attestedRoles: ["proxy", "worker"],
  refuseQuoteTrailingBytes: false,
  allowProvisionalSnpFirmware: false,
  requireSnpCrl: true,
  requireTdxEventLog: false,
}) as Policy;

export function parsePolicy(obj: unknown, source = "policy"): Policy {
  const r = PolicySchema.safeParse(obj);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new Error(`${source} is not a valid attestation policy: ${issues}. See docs/attestation.md for the format.`);
  }
  return r.data;
}

export function loadPolicy(path: string): Policy {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`cannot read policy file ${path}: ${(e as Error).message} (--policy takes ${BUILT_IN_POLICIES.join(", ")} or a JSON file)`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new Error(`policy file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  return parsePolicy(obj, `policy file ${path}`);
}

export interface PolicySubject {
  role: Role;
  platform: NodePlatform;
  imageDigest: string;
  tcbStatus?: string;
  /** The evidence chains to a test root (test builds only). */
  testRoot?: boolean;
  claims?: Claims;
  hasVerifiedGpu?: boolean;
  /** The GPU evidence carried good, fresh OCSP answers for its chain. */
  hasGpuOcsp?: boolean;
  /** The GPU's measurements matched attached, verified NVIDIA RIMs. */
  hasGpuRim?: boolean;
  /** TDX evidence: an attached CCEL event log replayed to the quote's RTMRs. */
  hasTdxEventLog?: boolean;
  /** SEV-SNP evidence: the report's TCB versions and whether AMD's CRL was checked. */
  snp?: SnpPolicyFacts;
}

export interface SnpPolicyFacts {
  reported: TcbVersion;
  current: TcbVersion;
  committed: TcbVersion;
  launch: TcbVersion;
  revocationChecked: boolean;
}

const SNP_TCB_PARTS = ["bootloader", "tee", "snp", "microcode", "fmc"] as const;
const tcbText = (t: Partial<Record<(typeof SNP_TCB_PARTS)[number], number>>): string =>
  SNP_TCB_PARTS.filter((k) => t[k] !== undefined).map((k) => `${k}=${t[k]}`).join(" ");
/** The components of `t` below `floor` (empty when t >= floor component-wise). */
function tcbBelow(t: TcbVersion, floor: SnpTcbFloor): string[] {
  return SNP_TCB_PARTS.filter((k) => floor[k] !== undefined && (t[k] ?? 0) < (floor[k] as number));
}

/** SEV-SNP rules, following go-sev-guest's validate package: CRL present, committed vs current, TCB floors. */
function checkSnpPolicy(policy: Policy, s: Pick<PolicySubject, "role" | "platform" | "snp">): void {
  if (s.platform !== "sev-snp") return;
  const snp = s.snp;
  if (!snp) {
    if (!policy.requireSnpCrl && !policy.minSnpTcb && !policy.minSnpLaunchTcb) return;
    throw new AttestationError("policy.snp-tcb", `the ${s.role}'s SEV-SNP TCB and revocation facts were not available to the policy`, "snp=unknown", "verify the report with this version's verifier");
  }
  if (policy.requireSnpCrl && !snp.revocationChecked) {
    throw new AttestationError(
      "policy.snp-crl",
      `the ${s.role}'s SEV-SNP evidence carries no AMD CRL, so the revocation of its ASK and VCEK is unknown`,
      "crl=none",
      "let the node reach AMD's KDS (--kds) so it attaches the current CRL, or set requireSnpCrl: false in the policy",
    );
  }
  const same = SNP_TCB_PARTS.every((k) => snp.committed[k] === snp.current[k]);
  const committedAbove = tcbBelow(snp.current, snp.committed);
  if (policy.allowProvisionalSnpFirmware ? committedAbove.length > 0 : !same) {
    throw new AttestationError(
      "policy.snp-provisional-firmware",
      policy.allowProvisionalSnpFirmware
        ? `COMMITTED_TCB is above CURRENT_TCB in ${committedAbove.join(", ")}`
        : "the platform runs provisional firmware: COMMITTED_TCB differs from CURRENT_TCB",
      `current ${tcbText(snp.current)}; committed ${tcbText(snp.committed)}`,
      "commit the firmware update on the host (or set allowProvisionalSnpFirmware: true to accept provisional firmware)",
    );
  }
  for (const [rule, floor, t, name] of [
    ["policy.snp-tcb", policy.minSnpTcb, snp.reported, "REPORTED_TCB"],
    ["policy.snp-launch-tcb", policy.minSnpLaunchTcb, snp.launch, "LAUNCH_TCB"],
  ] as const) {
    if (!floor) continue;
    const low = tcbBelow(t, floor);
    if (low.length > 0) {
      throw new AttestationError(
        rule,
        `the ${s.role}'s SEV-SNP ${name} is below the policy minimum in ${low.join(", ")} (minimum ${tcbText(floor)})`,
        tcbText(t),
        "update the host's SEV firmware and microcode (and relaunch the guest), or lower the minimum in the policy",
      );
    }
  }
}

/** Applies the policy; throws AttestationError naming the failed rule. */
export function checkPolicy(policy: Policy, s: PolicySubject): void {
  checkPlatformPolicy(policy, s);
  checkWorkerPolicy(policy, s);
}

/** The platform part of the policy (sim, TCB status, image measurement), usable on bare evidence without claims. */
export function checkPlatformPolicy(policy: Policy, s: Omit<PolicySubject, "claims" | "hasVerifiedGpu">): void {
  if (s.testRoot && policy.mode === "production") {
    throw new AttestationError(
      "policy.test-root",
      `the ${s.role}'s evidence chains to a TEST root installed by test code, not to Intel's or AMD's root`,
      `platform=${s.platform} root=test`,
      "this is a test network; production accepts only evidence signed by the hardware vendor",
    );
  }
  if (s.platform === "sim") {
    if (!policy.allowSim && policy.attestedRoles.includes(s.role)) {
      throw new AttestationError(
        "policy.sim",
        `the ${s.role} presents INSECURE sim evidence and policy "${policy.name}" refuses sim`,
        "platform=sim",
        "run the node in a TEE (--platform tdx or sev-snp), or use a development policy with allowSim: true",
      );
    }
  }
  checkSnpPolicy(policy, s);
  if (policy.requireTdxEventLog && s.platform === "tdx" && !s.hasTdxEventLog) {
    throw new AttestationError(
      "policy.tdx-event-log",
      `the ${s.role}'s TDX evidence carries no boot event log that explains its RTMRs`,
      "eventLog=none",
      "run the node where the guest exposes /sys/firmware/acpi/tables/data/CCEL (or give --event-log FILE), or set requireTdxEventLog: false in the policy",
    );
  }
  if (s.tcbStatus !== undefined && tcbRank(s.tcbStatus) > tcbRank(policy.minTcbStatus)) {
    throw new AttestationError(
      "policy.tcb",
      `TCB status is worse than the policy minimum ${policy.minTcbStatus}`,
      s.tcbStatus,
      "update the platform's firmware/microcode/TDX module, or relax minTcbStatus in the policy",
    );
  }
  const allowed = policy.measurements[s.role];
  // In dev mode an empty allow-list means "any image"; a non-empty one is enforced for every platform, sim included.
  if ((allowed.length > 0 || policy.mode === "production" || policy.strictAllowLists) && !allowed.includes(s.imageDigest.toLowerCase())) {
    throw new AttestationError(
      "policy.measurement",
      allowed.length === 0
        ? `policy "${policy.name}" lists no allowed ${s.role} image measurements`
        : `${s.role} image measurement is not in the policy's allow-list (${allowed.length} entries)`,
      s.imageDigest,
      `if this image is trusted, add "${s.imageDigest}" to measurements.${s.role} in the policy file (later: the root contract)`,
    );
  }
}

/** Worker-specific rules: model allow-list, bound worker id and GPU evidence. */
function checkWorkerPolicy(policy: Policy, s: PolicySubject): void {
  if (s.role === "worker") {
    const model = s.claims?.model;
    // Production requires a declared, allowed model. In dev a worker that declares no weights digest (an
    // OpenAI-compatible engine reached by URL) is let through; one that declares weights must have allowed ones.
    // Either way a worker may announce only the model name its claims bind (the verifier exposes it as the peer's
    // models, and the proxy refuses other names); see docs/attestation.md.
    const digest = model?.digest ?? null;
    const mustCheck = policy.mode === "production" || ((policy.models.length > 0 || policy.strictAllowLists) && model !== null && model !== undefined);
    if (mustCheck && (!model || digest === null || !policy.models.includes(digest))) {
      throw new AttestationError(
        "policy.model",
        !model
          ? "the worker declares no model"
          : digest === null
            ? `model ${model.name} is declared without a weights digest, so it cannot be matched against the allowed models`
            : `model ${model.name} is not in the policy's allowed models`,
        digest ?? "none",
        !model || digest === null
          ? "start the worker with a model whose weights digest is in the policy"
          : `add "${digest}" to models in the policy file if these weights are trusted`,
      );
    }
    if (policy.mode === "production" && s.claims && typeof s.claims.nodeId !== "string") {
      throw new AttestationError(
        "policy.node-id",
        "the worker's claims bind no worker id, so the id it announces cannot be checked",
        "nodeId=null",
        "start the worker with this version, which binds its worker id into its attested claims",
      );
    }
    if (policy.requireGpu && s.platform !== "sim" && !s.hasVerifiedGpu) {
      throw new AttestationError("policy.gpu", "the worker presents no verified GPU evidence", "gpu=none", "run the worker on a GPU in confidential-computing mode and include its evidence");
    }
    if (policy.requireGpu && policy.requireGpuOcsp && s.platform !== "sim" && s.hasVerifiedGpu && !s.hasGpuOcsp) {
      throw new AttestationError(
        "policy.gpu-ocsp",
        "the worker's GPU evidence carries no OCSP answers, so the revocation of its certificates is unknown",
        "ocsp=none",
        "let the worker reach NVIDIA's OCSP service when it collects its evidence, or set requireGpuOcsp: false (offline mode) in the policy",
      );
    }
    if (policy.requireGpu && policy.requireGpuRim && s.platform !== "sim" && s.hasVerifiedGpu && !s.hasGpuRim) {
      throw new AttestationError(
        "policy.gpu-rim",
        "the worker's GPU measurements were not compared with NVIDIA's reference values (no attached, verified RIM matched)",
        "rim=none",
        "let the worker reach NVIDIA's RIM service (--rim-service) so it attaches the RIMs of its driver and VBIOS, or set requireGpuRim: false in the policy",
      );
    }
  }
}

/** The names `--policy` accepts besides a file path. */
export const BUILT_IN_POLICIES = ["dev", "production"] as const;

/**
 * A policy from its command-line spelling: "dev" and "production" are the built-in policies, anything else is a JSON
 * file (write ./dev to load a file that is named like a built-in). Undefined means dev.
 */
export function resolvePolicySpec(spec: string | undefined): Policy {
  if (spec === undefined || spec === "dev") return DEV_POLICY;
  if (spec === "production") return PRODUCTION_POLICY;
  return loadPolicy(spec);
}
