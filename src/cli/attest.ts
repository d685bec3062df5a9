// `cocoon attest`: verify attestation evidence files and show this node's own evidence.
//   cocoon attest verify FILE [--collateral FILE | --pccs URL | --kds URL] [--amd-crl FILE] [--at ISO-TIME] [--json] [--policy dev|production|FILE] [--allow-sim]
//                             [--role ROLE] [--nonce HEX] [--rim PATH] [--event-log FILE]
//   cocoon attest show [--platform auto|sim|tdx|sev-snp] [--role ROLE] [--json] [--out CERT.pem]
//                      [--tsm-root DIR] [--pccs URL] [--kds URL] [--collateral-cache DIR]
//   cocoon attest measure [FILE] [--mrtd HEX --rtmr0 HEX .. --rtmr3 HEX [--mrconfigid/--mrowner/--mrownerconfig HEX]]
//                         [--measurement HEX [--host-data HEX]]
//                         [--kind worker|proxy|both] [--root ADDRESS]
//   cocoon attest model-digest DIR
// Exit status 0 only when the evidence verified (and passed the policy, when one is given).
import { readFileSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import { detectEvidence, type EvidenceKind } from "../tee/detect.js";
import { AttestationError, errorText } from "../tee/errors.js";
import { createNodeIdentity } from "../tee/identity.js";
import { loadReferenceMeasurements, verifyNvidiaEvidence } from "../tee/nvidia.js";
import { DEV_POLICY, checkPlatformPolicy, parsePolicy, resolvePolicySpec, type Policy } from "../tee/policy.js";
import { EvidenceCache, verifyBundleEvidence, verifyPeerCertificate } from "../tee/ratls.js";
import { snpImageDigest, snpPolicyFacts, vcekDer, verifySnpReport } from "../tee/sevsnp.js";
import { verifySimEvidence } from "../tee/sim.js";
import { ROLES, decodeClaims, type Claims, type Role } from "../tee/claims.js";
import { verifyTdxQuote } from "../tee/tdx/verify.js";
import { decodeEvidenceBundle } from "../tee/evidence.js";
import { readRaTlsExtensions } from "../tee/cert.js";
import type { Verdict } from "../tee/verdict.js";
import { detectTee, type TeeProbe } from "../tee/tsm.js";
import { parseTdxQuote } from "../tee/tdx/quote.js";
import { tdxImageDigest } from "../tee/tdx/verify.js";
import { applyEventLog } from "../tee/tdx/eventlog.js";
import { parseSnpReport } from "../tee/sevsnp.js";
import { parseSimEvidence, simImageDigest } from "../tee/sim.js";
import { modelDirDigest } from "../tee/model-digest.js";
import { DEFAULT_COLLATERAL_CACHE, evidenceSources } from "./security.js";
import { TdxCollateralStore } from "../tee/tdx/pcs.js";
import { VcekStore } from "../tee/kds.js";
import { createLogger } from "../util/log.js";

export interface AttestVerifyOptions {
  collateral?: string;
  /** TDX without --collateral: fetch it from this PCCS / PCS. */
  pccs?: string;
  /** SEV-SNP without --collateral: fetch the VCEK from this KDS. */
  kds?: string;
  /** SEV-SNP: AMD's CRL (DER) to check the ASK/VCEK against; with --kds it is fetched. */
  amdCrl?: string;
  /** TDX: the CCEL boot event log, replayed into RTMR0-2 (and RTMR3 when it extends it) and compared with the quote. */
  eventLog?: string;
  collateralCache?: string;
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
  let collateral: Buffer | undefined = opts.collateral ? readFileSync(opts.collateral) : undefined;
  // Without --collateral, --pccs / --kds fetch it (through the verified cache) the way a node does.
  if (!collateral && detected.kind === "tdx" && opts.pccs) {
    collateral = Buffer.from(JSON.stringify(await new TdxCollateralStore({ baseUrl: opts.pccs, cacheDir: opts.collateralCache ?? DEFAULT_COLLATERAL_CACHE, now: () => now }).forQuote(detected.data)));
  }
  let amdCrl: Buffer | undefined = opts.amdCrl ? readFileSync(opts.amdCrl) : undefined;
  if (detected.kind === "sev-snp" && opts.kds) {
    const kds = new VcekStore({ baseUrl: opts.kds, cacheDir: opts.collateralCache ?? DEFAULT_COLLATERAL_CACHE, now: () => now });
    collateral ??= await kds.forReport(detected.data);
    amdCrl ??= await kds.crlFor(vcekDer(collateral));
  }
  let verdict: Verdict;
  let claims: Claims | undefined;
  let unreadablePlatform = false;
  let policyResult: AttestReport["policy"];
  switch (detected.kind) {
    case "tdx":
      verdict = verifyTdxQuote(detected.data, { collateral, now, allowDebug: policy?.allowDebug, minTcbEvaluationDataNumber: policy?.minTcbEvaluationDataNumber });
      if (opts.eventLog) applyEventLog(verdict, readFileSync(opts.eventLog));
      break;
    case "sev-snp":
      if (!collateral) {
        verdict = verifySnpReport(detected.data, Buffer.alloc(0), { now });
        verdict.errors.unshift("no VCEK given: pass the VCEK certificate (DER or PEM) with --collateral FILE");
      } else verdict = verifySnpReport(detected.data, collateral, { now, allowDebug: policy?.allowDebug, ...(amdCrl ? { crl: amdCrl } : {}) });
      break;
    case "nvidia": {
      const chain = detected.certChain ?? collateral?.toString("latin1") ?? "";
      verdict = verifyNvidiaEvidence(detected.data, chain, { now, expectedNonce: opts.nonce, reference: opts.rim ? loadReferenceMeasurements(opts.rim, { now }) : undefined });
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
        const snp = snpPolicyFacts(verdict);
        checkPlatformPolicy(policy, { role, platform: verdict.platform as "tdx" | "sev-snp" | "sim", imageDigest: verdict.imageDigest, tcbStatus: verdict.platform === "tdx" ? verdict.status : undefined, hasTdxEventLog: verdict.checks.rtmrReplay === true, ...(snp ? { snp } : {}) });
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


export interface MeasureOptions {
  mrtd?: string;
  rtmr0?: string;
  rtmr1?: string;
  rtmr2?: string;
  rtmr3?: string;
  mrconfigid?: string;
  mrowner?: string;
  mrownerconfig?: string;
  /** SEV-SNP register values: MEASUREMENT (48 bytes) and HOST_DATA (32 bytes, default zeros). */
  measurement?: string;
  hostData?: string;
  kind?: string;
  root?: string;
}

export interface MeasureResult {
  source: string;
  platform: "tdx" | "sim" | "sev-snp";
  imageDigest: string;
  /** What the root owner runs to allow it. */
  rootCommand: string;
  policyLine: string;
  notes: string[];
}

const HEX48 = /^[0-9a-fA-F]{96}$/;
function register48(v: string | undefined, name: string, required: boolean): Buffer {
  if (v === undefined) {
    if (required) throw new Error(`--${name} is required with register values (48 bytes, 96 hex characters)`);
    return Buffer.alloc(48);
  }
  if (!HEX48.test(v.trim())) throw new Error(`--${name} must be 96 hex characters (a 48-byte TDX register), got "${v}"`);
  return Buffer.from(v.trim(), "hex");
}

/** The image digest the root expects, from evidence (quote, report, sim evidence, RA-TLS certificate) or registers. */
export function runAttestMeasure(file: string | undefined, o: MeasureOptions): MeasureResult {
  const kind = (o.kind ?? "worker").toLowerCase();
  if (!["worker", "proxy", "both"].includes(kind)) throw new Error(`--kind must be worker, proxy or both, got "${o.kind}"`);
  const tdxRegisters = [o.mrtd, o.rtmr0, o.rtmr1, o.rtmr2, o.rtmr3, o.mrconfigid, o.mrowner, o.mrownerconfig].some((v) => v !== undefined);
  const snpRegisters = [o.measurement, o.hostData].some((v) => v !== undefined);
  const registers = tdxRegisters || snpRegisters;
  if (file && registers) throw new Error("give either an evidence FILE or register values (--mrtd, --rtmr0..3, or --measurement), not both");
  if (tdxRegisters && snpRegisters) throw new Error("give TDX registers (--mrtd, --rtmr0..3) or SEV-SNP values (--measurement, --host-data), not both");
  const notes: string[] = [];
  let platform: MeasureResult["platform"];
  let digest: string;
  let source: string;
  if (!file) {
    if (!registers) throw new Error("give an evidence FILE (TDX quote, sim evidence, SEV-SNP report or RA-TLS certificate), --mrtd and --rtmr0..3, or --measurement");
    source = "register values";
    if (snpRegisters) {
      platform = "sev-snp";
      if (o.measurement === undefined) throw new Error("--measurement is required with --host-data (the SEV-SNP launch MEASUREMENT, 96 hex characters)");
      if (!HEX48.test(o.measurement.trim())) throw new Error(`--measurement must be 96 hex characters (the 48-byte SEV-SNP MEASUREMENT), got "${o.measurement}"`);
      const hostData = o.hostData === undefined ? "00".repeat(32) : o.hostData.trim();
      if (!/^[0-9a-fA-F]{64}$/.test(hostData)) throw new Error(`--host-data must be 64 hex characters (the 32-byte SEV-SNP HOST_DATA), got "${o.hostData}"`);
      digest = snpImageDigest({ measurement: Buffer.from(o.measurement.trim(), "hex"), hostData: Buffer.from(hostData, "hex") });
    } else {
      platform = "tdx";
      digest = tdxImageDigest({
        mrTd: register48(o.mrtd, "mrtd", true),
        rtmr: [register48(o.rtmr0, "rtmr0", true), register48(o.rtmr1, "rtmr1", true), register48(o.rtmr2, "rtmr2", true), register48(o.rtmr3, "rtmr3", true)],
        mrConfigId: register48(o.mrconfigid, "mrconfigid", false),
        mrOwner: register48(o.mrowner, "mrowner", false),
        mrOwnerConfig: register48(o.mrownerconfig, "mrownerconfig", false),
      });
    }
  } else {
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      throw new Error(`cannot read ${file}: ${errorText(e)} (give an evidence file: TDX quote, SEV-SNP report, sim evidence or RA-TLS certificate)`);
    }
    const det = detectEvidence(bytes);
    source = `${KIND_NAMES[det.kind]} ${file}`;
    let quote = det.data;
    let p: string = det.kind;
    if (det.kind === "ratls-cert") {
      const b = decodeEvidenceBundle(readRaTlsExtensions(det.data).evidence);
      quote = b.quote;
      p = b.platform;
    }
    if (p === "tdx") {
      platform = "tdx";
      digest = tdxImageDigest(parseTdxQuote(quote).body);
    } else if (p === "sim") {
      platform = "sim";
      digest = simImageDigest(parseSimEvidence(quote));
      notes.push("sim evidence: INSECURE development image; production refuses sim whatever the allow-lists say");
    } else if (p === "sev-snp") {
      platform = "sev-snp";
      const rep = parseSnpReport(quote);
      digest = snpImageDigest(rep);
      notes.push(`SEV-SNP image digest = SHA-256("cocoon-ts/sev-snp-image/v1\\n" ‖ MEASUREMENT ${rep.measurement.toString("hex")} ‖ HOST_DATA ${rep.hostData.toString("hex")})`);
    } else {
      throw new Error(`${source} carries no launch measurement (NVIDIA evidence measures the GPU, not the image)`);
    }
    notes.push("the evidence was parsed, not verified: check it with `cocoon attest verify` before allowing it");
  }
  const roles = kind === "both" ? ["worker", "proxy"] : [kind];
  return {
    source,
    platform,
    imageDigest: digest,
    rootCommand: `cocoon root allow-image --root ${o.root ?? "<ROOT ADDRESS>"} --kind ${kind} --digest ${digest} --key-file <OWNER KEY FILE>`,
    policyLine: `"measurements": { ${roles.map((r) => `"${r}": ["${digest}"]`).join(", ")} }`,
    notes,
  };
}

export interface ShowOptions {
  platform: string;
  role: string;
  tsmRoot?: string;
  pccs?: string;
  kds?: string;
  collateralCache?: string;
}

/** `attest show`: with --platform auto, first what this machine offers (and why not); then the node's evidence. */
export async function runAttestShow(o: ShowOptions): Promise<{ probe?: TeeProbe; identity?: Awaited<ReturnType<typeof createNodeIdentity>>; verdict?: Verdict }> {
  if (!["auto", "sim", "tdx", "sev-snp"].includes(o.platform)) throw new Error(`--platform must be auto, sim, tdx or sev-snp, got ${JSON.stringify(o.platform)}`);
  let platform = o.platform as "auto" | "sim" | "tdx" | "sev-snp";
  let probe: TeeProbe | undefined;
  if (platform === "auto") {
    probe = await detectTee(o.tsmRoot);
    if (!probe.platform) return { probe };
    platform = probe.platform;
  }
  const sources = platform === "sim" ? {} : evidenceSources(o, createLogger("attest"));
  const identity = await createNodeIdentity({ role: parseRole(o.role), platform, ...sources });
  const verdict = verifyBundleEvidence(decodeEvidenceBundle(identity.evidence), { now: new Date(), allowDebug: true });
  return { probe, identity, verdict };
}

export function registerAttestCommand(program: Command): void {
  const attest = program.command("attest").description("make and verify attestation evidence (TDX, SEV-SNP, NVIDIA GPU, sim, RA-TLS certificates)");
  attest
    .command("verify")
    .description("verify an evidence file; exit status 0 only when it verified")
    .argument("<file>", "TDX quote, SEV-SNP report, NVIDIA evidence (binary or hex), sim evidence or RA-TLS certificate (PEM/DER)")
    .option("--collateral <file>", "TDX: QuoteCollateralV3 JSON; SEV-SNP: VCEK certificate; NVIDIA: GPU certificate chain (PEM)")
    .option("--pccs <url>", "TDX without --collateral: fetch the collateral from this PCCS / Intel PCS (v4 API)")
    .option("--kds <url>", "SEV-SNP: fetch the VCEK (without --collateral) and AMD's CRL (without --amd-crl) from this AMD KDS")
    .option("--event-log <file>", "TDX: the CCEL boot event log (/sys/firmware/acpi/tables/data/CCEL), replayed and compared with the quote's RTMRs")
    .option("--amd-crl <file>", "SEV-SNP: AMD's CRL (DER, from KDS /vcek/v1/{product}/crl) to check the ASK and VCEK for revocation")
    .option("--collateral-cache <dir>", "cache of fetched collateral, verified on every load (default ~/.cocoon/collateral)")
    .option("--at <iso-time>", "evaluation time (default: now), e.g. 2025-07-19T10:00:00Z")
    .option("--json", "print a JSON report")
    .option("--policy <policy>", "apply an attestation policy: dev, production or a policy JSON file (see docs/attestation.md)")
    .option("--allow-sim", "accept INSECURE sim evidence (development only)")
    .option("--role <role>", "role whose allowed measurements apply to bare evidence (client, proxy, worker)", "worker")
    .option("--nonce <hex>", "NVIDIA: the nonce the GPU must have signed")
    .option("--rim <path>", "NVIDIA: reference measurements, file or folder: NVIDIA-signed RIM XML (signature and chain checked at --at) or JSON")
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
    .description("make this node's evidence and print it (claims, measurements, certificate); --platform auto says what this machine offers")
    .option("--platform <platform>", "auto (detect), sim (development, INSECURE), tdx or sev-snp", "sim")
    .option("--role <role>", "client, proxy or worker", "worker")
    .option("--json", "print JSON")
    .option("--out <file>", "write the RA-TLS certificate (PEM) to this file")
    .option("--tsm-root <dir>", "configfs-tsm report directory (default /sys/kernel/config/tsm/report)")
    .option("--pccs <url>", "TDX: PCCS or Intel PCS for the collateral attached to the quote")
    .option("--kds <url>", "SEV-SNP: AMD KDS for the VCEK when the host supplies no certificate table")
    .option("--collateral-cache <dir>", "cache of fetched collateral (default ~/.cocoon/collateral)")
    .action(async (opts: ShowOptions & { json?: boolean; out?: string }) => {
      try {
        const { probe, identity: id, verdict: v } = await runAttestShow(opts);
        if (!id || !v) {
          const text = `no TEE found on this machine:\n${probe!.findings.map((f) => `  - ${f}`).join("\n")}\nUse --platform sim for development (INSECURE), or see docs/attestation.md, "Deploying on real hardware".`;
          process.stdout.write(opts.json ? `${JSON.stringify({ probe }, null, 2)}\n` : `${text}\n`);
          process.exitCode = 1;
          return;
        }
        if (opts.out) writeFileSync(opts.out, id.tls.certPem);
        const out = {
          ...(probe ? { probe } : {}),
          platform: id.platform,
          insecure: id.insecure || v.insecure,
          role: id.role,
          claims: id.claims,
          reportData: id.reportData.toString("hex"),
          measurements: v.measurements,
          imageDigest: v.imageDigest,
          verified: v.verified,
          status: v.status,
          errors: v.errors,
          evidence: id.quote.toString("base64"),
          certificate: id.tls.certPem,
        };
        if (opts.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
        else {
          const lines = probe ? [...probe.findings.map((f) => `found: ${f}`)] : [];
          lines.push(`node evidence: platform ${id.platform}, role ${id.role}, ${v.verified ? `verifies (status ${v.status})` : `does NOT verify (${v.errors.join("; ") || v.status})`}`);
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
  attest
    .command("measure")
    .description("print the image digest the root expects (from evidence, from MRTD/RTMR values, or from a SEV-SNP MEASUREMENT) and the root command that allows it")
    .argument("[file]", "TDX quote, SEV-SNP report, sim evidence or RA-TLS certificate")
    .option("--mrtd <hex>", "MRTD (96 hex characters)")
    .option("--rtmr0 <hex>", "RTMR0")
    .option("--rtmr1 <hex>", "RTMR1")
    .option("--rtmr2 <hex>", "RTMR2")
    .option("--rtmr3 <hex>", "RTMR3")
    .option("--mrconfigid <hex>", "MRCONFIGID (default zeros)")
    .option("--mrowner <hex>", "MROWNER (default zeros)")
    .option("--mrownerconfig <hex>", "MROWNERCONFIG (default zeros)")
    .option("--measurement <hex>", "SEV-SNP: the launch MEASUREMENT (96 hex characters), instead of TDX registers")
    .option("--host-data <hex>", "SEV-SNP: HOST_DATA (64 hex characters, default zeros)")
    .option("--kind <kind>", "worker, proxy or both", "worker")
    .option("--root <address>", "the root contract, to fill into the printed command")
    .option("--json", "print JSON")
    .action((file: string | undefined, opts: MeasureOptions & { json?: boolean }) => {
      try {
        const r = runAttestMeasure(file, opts);
        if (opts.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        else {
          const lines = [`image digest (${r.platform}, from ${r.source}):`, `  ${r.imageDigest}`];
          if (r.rootCommand) lines.push("allow it on the root (owner):", `  ${r.rootCommand}`);
          lines.push("or in a policy file:", `  ${r.policyLine}`);
          for (const n of r.notes) lines.push(`note: ${n}`);
          process.stdout.write(`${lines.join("\n")}\n`);
        }
        process.exitCode = 0;
      } catch (e) {
        process.stderr.write(`cocoon attest measure: ${errorText(e)}\n`);
        process.exitCode = 2;
      }
    });
  attest
    .command("model-digest")
    .description("print the weights digest of a model directory (what a worker with --model-dir attests) and the root command")
    .argument("<dir>", "the directory the engine loads the weights from")
    .action(async (dir: string) => {
      try {
        const r = await modelDirDigest(dir);
        process.stdout.write(`model digest (Merkle tree over ${r.files.length} file(s)):\n  ${r.digest}\nprice it on the root (owner):\n  cocoon root set-model --root <ROOT ADDRESS> --digest ${r.digest} --prompt-price <nanoTON> --completion-price <nanoTON> --key-file <OWNER KEY FILE>\n`);
        process.exitCode = 0;
      } catch (e) {
        process.stderr.write(`cocoon attest model-digest: ${errorText(e)}\n`);
        process.exitCode = 2;
      }
    });
}
