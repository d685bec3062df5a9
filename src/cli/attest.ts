// `cocoon attest`: verify attestation evidence files and show this node's own evidence.
//   cocoon attest verify FILE [--collateral FILE] [--at ISO-TIME] [--json] [--policy dev|production|FILE] [--allow-sim]
//                             [--role ROLE] [--nonce HEX] [--rim PATH]
//   cocoon attest show [--platform sim|tdx|sev-snp] [--role ROLE] [--json] [--out CERT.pem]
// Exit status 0 only when the evidence verified (and passed the policy, when one is given).
import { readFileSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import { detectEvidence, type EvidenceKind } from "../tee/detect.js";
import { AttestationError, errorText } from "../tee/errors.js";
import { createNodeIdentity } from "../tee/identity.js";
import { loadReferenceMeasurements, verifyNvidiaEvidence } from "../tee/nvidia.js";
import { DEV_POLICY, checkPlatformPolicy, parsePolicy, resolvePolicySpec, type Policy } from "../tee/policy.js";
import { EvidenceCache, verifyBundleEvidence, verifyPeerCertificate } from "../tee/ratls.js";
import { verifySnpReport } from "../tee/sevsnp.js";
import { verifySimEvidence } from "../tee/sim.js";
import { ROLES, decodeClaims, type Claims, type Role } from "../tee/claims.js";
import { verifyTdxQuote } from "../tee/tdx/verify.js";
import { decodeEvidenceBundle } from "../tee/evidence.js";
import { readRaTlsExtensions } from "../tee/cert.js";
import type { Verdict } from "../tee/verdict.js";

export interface AttestVerifyOptions {
  collateral?: string;
  at?: string;
  json?: boolean;
  policy?: string;
  allowSim?: boolean;
  role?: string;
  nonce?: string;
  rim?: string;
}

export interface AttestReport {
  file: string;
  kind: EvidenceKind | "unknown";
  platform: string;
  verified: boolean;
  status: string;
  insecure: boolean;
  measurements: Verdict["measurements"];
  imageDigest: string;
  reportData: string;
  advisoryIds: string[];
  errors: string[];
  checks: Record<string, boolean>;
  details: Record<string, unknown>;
  claims?: Claims;
  policy?: { name: string; passed: boolean; rule?: string; measured?: string };
  evaluatedAt: string;
}

const KIND_NAMES: Record<EvidenceKind, string> = {
  tdx: "Intel TDX quote",
  "sev-snp": "AMD SEV-SNP report",
  nvidia: "NVIDIA GPU evidence (SPDM)",
  sim: "sim evidence (INSECURE development platform)",
  "ratls-cert": "Cocoon RA-TLS certificate",
};

function parseAt(at: string | undefined): Date {
  if (at === undefined) return new Date();
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) throw new Error(`--at ${JSON.stringify(at)} is not an ISO time (example: 2025-07-19T10:00:00Z)`);
  return d;
}

function parseRole(r: string | undefined): Role {
  const role = (r ?? "worker") as Role;
  if (!ROLES.includes(role)) throw new Error(`--role must be one of ${ROLES.join(", ")}, got ${JSON.stringify(r)}`);
  return role;
}

/** Verifies one evidence file; never throws for bad evidence (the report says why). */
export async function runAttestVerify(file: string, opts: AttestVerifyOptions): Promise<AttestReport> {
  const now = parseAt(opts.at);
  const role = parseRole(opts.role);
  const policy: Policy | undefined = opts.policy ? resolvePolicySpec(opts.policy) : undefined;
  const allowSim = opts.allowSim === true || policy?.allowSim === true;
  const base = { file, evaluatedAt: now.toISOString() };
  let detected;
  try {
    detected = detectEvidence(readFileSync(file));
  } catch (e) {
    const msg = (e as NodeJS.ErrnoException).code ? `cannot read ${file}: ${errorText(e)}` : errorText(e);
    return { ...base, kind: "unknown", platform: "unknown", verified: false, status: "Invalid", insecure: false, measurements: {}, imageDigest: "", reportData: "", advisoryIds: [], errors: [msg], checks: {}, details: {} };
  }
  const collateral = opts.collateral ? readFileSync(opts.collateral) : undefined;
  let verdict: Verdict;
  let claims: Claims | undefined;
  let unreadablePlatform = false;
  let policyResult: AttestReport["policy"];
  switch (detected.kind) {
    case "tdx":
      verdict = verifyTdxQuote(detected.data, { collateral, now, allowDebug: policy?.allowDebug, minTcbEvaluationDataNumber: policy?.minTcbEvaluationDataNumber });
      break;
    case "sev-snp":
      if (!collateral) {
        verdict = verifySnpReport(detected.data, Buffer.alloc(0), { now });
        verdict.errors.unshift("no VCEK given: pass the VCEK certificate (DER or PEM) with --collateral FILE");
      } else verdict = verifySnpReport(detected.data, collateral, { now, allowDebug: policy?.allowDebug });
      break;
    case "nvidia": {
      const chain = detected.certChain ?? collateral?.toString("latin1") ?? "";
      verdict = verifyNvidiaEvidence(detected.data, chain, { now, expectedNonce: opts.nonce, reference: opts.rim ? loadReferenceMeasurements(opts.rim) : undefined });
      if (!chain) verdict.errors.unshift("no certificate chain given: pass the GPU's PEM chain with --collateral FILE");
      break;
    }
    case "sim":
      verdict = verifySimEvidence(detected.data, { allowDebug: policy?.allowDebug });
      break;
    case "ratls-cert": {
      const p = policy ?? parsePolicy({ ...DEV_POLICY, name: "verify-only (no --policy)", allowSim, allowDebug: false, minTcbStatus: "OutOfDateConfigurationNeeded" });
      const col = collateral ? JSON.parse(collateral.toString()) : undefined;
      try {
        const peer = await verifyPeerCertificate(detected.data, p, { now, collateral: col, cache: new EvidenceCache() });
        verdict = peer.verdict;
        claims = peer.claims;
        policyResult = { name: p.name, passed: true };
      } catch (e) {
        // Show the platform verdict next to the refusal when the evidence itself could be read.
        let inner: Verdict | undefined;
        try {
          const ext = readRaTlsExtensions(detected.data);
          inner = verifyBundleEvidence(decodeEvidenceBundle(ext.evidence), { now, allowDebug: p.allowDebug, collateral: col });
          claims = decodeClaims(ext.claims);
        } catch {
          /* the refusal below explains */
        }
        const err = e instanceof AttestationError ? e : undefined;
        const refusal = errorText(e);
        verdict = {
          ...(inner ?? { platform: "tdx", status: "Invalid", insecure: false, measurements: {}, imageDigest: "", reportData: "", checks: {}, advisoryIds: [], details: {} }),
          verified: false,
          errors: [refusal, ...(inner?.errors ?? []).filter((x) => !refusal.includes(x))],
        };
        if (!inner) unreadablePlatform = true;
        policyResult = { name: p.name, passed: false, rule: err?.rule, measured: err?.measured };
      }
      break;
    }
  }
  let verified = verdict.verified;
  const errors = [...verdict.errors];
  if (detected.kind !== "ratls-cert") {
    if (verdict.platform === "sim" && verified && !allowSim) {
      verified = false;
      errors.push("sim evidence is INSECURE (signed by a public development key); refused. Pass --allow-sim or a policy with allowSim: true to accept it for development");
    }
    if (policy && verified && verdict.platform !== "nvidia") {
      try {
        checkPlatformPolicy(policy, { role, platform: verdict.platform as "tdx" | "sev-snp" | "sim", imageDigest: verdict.imageDigest, tcbStatus: verdict.platform === "tdx" ? verdict.status : undefined });
        policyResult = { name: policy.name, passed: true };
      } catch (e) {
        verified = false;
        errors.push(errorText(e));
        policyResult = { name: policy.name, passed: false, rule: (e as AttestationError).rule, measured: (e as AttestationError).measured };
      }
    }
  }
  return {
    ...base,
    kind: detected.kind,
    platform: unreadablePlatform ? "unknown" : verdict.platform,
    verified,
    status: verdict.status,
    insecure: verdict.insecure,
    measurements: verdict.measurements,
    imageDigest: verdict.imageDigest,
    reportData: verdict.reportData,
    advisoryIds: verdict.advisoryIds,
    errors,
    checks: verdict.checks,
    details: verdict.details,
    claims,
    policy: policyResult,
  };
}

const INSECURE_BANNER = "!!! INSECURE: sim evidence is signed by a public development key and proves nothing about the hardware !!!";

export function formatReport(r: AttestReport): string {
  const lines: string[] = [];
  lines.push(`${r.file}: ${r.kind === "unknown" ? "unrecognised evidence" : KIND_NAMES[r.kind]}`);
  if (r.insecure) lines.push(INSECURE_BANNER);
  lines.push(`verdict: ${r.verified ? "VERIFIED" : "NOT VERIFIED"} (platform ${r.platform}, status ${r.status}, evaluated at ${r.evaluatedAt})`);
  const m = r.measurements;
  const show = (k: string, v: string) => lines.push(`  ${k.padEnd(14)} ${v}`);
  for (const [k, v] of Object.entries(m)) {
    if (r.platform === "nvidia") continue;
    if (Array.isArray(v)) v.forEach((x, i) => show(`${k}${i}`, x));
    else show(k, v);
  }
  if (r.platform === "nvidia") show("blocks", String(Object.keys(m).length));
  if (r.imageDigest) show("image digest", r.imageDigest);
  if (r.reportData) show(r.platform === "nvidia" ? "nonce" : "reportData", r.reportData);
  if (r.advisoryIds.length) show("advisories", r.advisoryIds.join(", "));
  if (r.claims) {
    lines.push(`claims: role ${r.claims.role}${r.claims.nodeId !== null ? ` ${JSON.stringify(r.claims.nodeId)}` : " (no id bound)"}, platform ${r.claims.platform}, expires ${r.claims.expiresAt}`);
    if (r.claims.model) lines.push(`  model ${r.claims.model.name} (${r.claims.model.digest ?? "no weights digest"})`);
  }
  const notes = r.details.notes;
  if (Array.isArray(notes)) for (const n of notes) lines.push(`note: ${n}`);
  if (r.policy) lines.push(`policy "${r.policy.name}": ${r.policy.passed ? "passed" : `refused by rule ${r.policy.rule ?? "?"} (measured ${r.policy.measured ?? "?"})`}`);
  const checks = Object.entries(r.checks);
  if (checks.length) lines.push(`checks: ${checks.map(([k, v]) => `${v ? "ok" : "FAIL"} ${k}`).join(", ")}`);
  if (r.errors.length) {
    lines.push("errors:");
    for (const e of r.errors) lines.push(`  - ${e}`);
  }
  return lines.join("\n");
}

export function registerAttestCommand(program: Command): void {
  const attest = program.command("attest").description("make and verify attestation evidence (TDX, SEV-SNP, NVIDIA GPU, sim, RA-TLS certificates)");
  attest
    .command("verify")
    .description("verify an evidence file; exit status 0 only when it verified")
    .argument("<file>", "TDX quote, SEV-SNP report, NVIDIA evidence (binary or hex), sim evidence or RA-TLS certificate (PEM/DER)")
    .option("--collateral <file>", "TDX: QuoteCollateralV3 JSON; SEV-SNP: VCEK certificate; NVIDIA: GPU certificate chain (PEM)")
    .option("--at <iso-time>", "evaluation time (default: now), e.g. 2025-07-19T10:00:00Z")
    .option("--json", "print a JSON report")
    .option("--policy <policy>", "apply an attestation policy: dev, production or a policy JSON file (see docs/attestation.md)")
    .option("--allow-sim", "accept INSECURE sim evidence (development only)")
    .option("--role <role>", "role whose allowed measurements apply to bare evidence (client, proxy, worker)", "worker")
    .option("--nonce <hex>", "NVIDIA: the nonce the GPU must have signed")
    .option("--rim <path>", "NVIDIA: reference measurement file or folder (RIM XML or JSON)")
    .action(async (file: string, opts: AttestVerifyOptions) => {
      try {
        const r = await runAttestVerify(file, opts);
        process.stdout.write(`${opts.json ? JSON.stringify(r, null, 2) : formatReport(r)}\n`);
        process.exitCode = r.verified ? 0 : 1;
      } catch (e) {
        process.stderr.write(`cocoon attest verify: ${errorText(e)}\n`);
        process.exitCode = 2;
      }
    });
  attest
    .command("show")
    .description("make this node's evidence and print it (claims, measurements, certificate)")
    .option("--platform <platform>", "sim (development, INSECURE), tdx or sev-snp", "sim")
    .option("--role <role>", "client, proxy or worker", "worker")
    .option("--json", "print JSON")
    .option("--out <file>", "write the RA-TLS certificate (PEM) to this file")
    .action(async (opts: { platform: string; role: string; json?: boolean; out?: string }) => {
      try {
        if (!["sim", "tdx", "sev-snp"].includes(opts.platform)) throw new Error(`--platform must be sim, tdx or sev-snp, got ${JSON.stringify(opts.platform)}`);
        const id = await createNodeIdentity({ role: parseRole(opts.role), platform: opts.platform as "sim" | "tdx" | "sev-snp" });
        const v = verifyBundleEvidence(decodeEvidenceBundle(id.evidence), { now: new Date(), allowDebug: true });
        if (opts.out) writeFileSync(opts.out, id.tls.certPem);
        const out = {
          platform: id.platform,
          insecure: id.insecure,
          role: id.role,
          claims: id.claims,
          reportData: id.reportData.toString("hex"),
          measurements: v.measurements,
          imageDigest: v.imageDigest,
          evidence: id.quote.toString("base64"),
          certificate: id.tls.certPem,
        };
        if (opts.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
        else {
          const lines = [`node evidence: platform ${id.platform}, role ${id.role}`];
          if (id.insecure) lines.push(INSECURE_BANNER);
          lines.push(`  reportData     ${out.reportData}`, `  image digest   ${v.imageDigest}`);
          for (const [k, val] of Object.entries(v.measurements)) {
            if (Array.isArray(val)) val.forEach((x, i) => lines.push(`  ${`${k}${i}`.padEnd(14)} ${x}`));
            else lines.push(`  ${k.padEnd(14)} ${val}`);
          }
          lines.push(`claims: ${JSON.stringify(id.claims)}`);
          lines.push(opts.out ? `certificate written to ${opts.out}` : id.tls.certPem.trimEnd());
          process.stdout.write(`${lines.join("\n")}\n`);
        }
        process.exitCode = 0;
      } catch (e) {
        process.stderr.write(`cocoon attest show: ${errorText(e)}\n`);
        process.exitCode = 1;
      }
    });
}
