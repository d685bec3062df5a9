import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { formatReport, runAttestMeasure, runAttestShow, runAttestVerify } from "../../src/cli/attest.js";
import { installTestIntelRootForTestsOnly, uninstallTestRoots } from "../../src/tee/roots/test-roots.js";
import { FakeTsm, TestIntel, servePcs } from "./test-tee.js";
import { createNodeIdentity } from "../../src/tee/identity.js";
import { createSimEvidence } from "../../src/tee/sim.js";
import { TDX_V4, TDX_V5_OUTDATED, VECTORS, NV_NONCE, vecText } from "./helpers.js";
import { nodeEntry } from "../helpers/entry.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "attest-cli-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const at = (d: Date) => d.toISOString();

describe("cocoon attest verify", () => {
  it("TDX v4 quote with collateral: JSON report with the required fields", async () => {
    const r = await runAttestVerify(VECTORS + TDX_V4.quote, { collateral: VECTORS + TDX_V4.collateral, at: at(TDX_V4.at) });
    assert.equal(r.kind, "tdx");
    assert.equal(r.platform, "tdx");
    assert.equal(r.verified, true);
    assert.equal(r.status, "UpToDate");
    assert.equal(r.measurements.mrtd, "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7");
    assert.equal((r.measurements.rtmr as string[]).length, 4);
    for (const k of ["mrconfigid", "mrowner", "mrownerconfig"]) assert.match(String(r.measurements[k]), /^[0-9a-f]{96}$/);
    assert.match(r.reportData, /^9a9d48e7/);
    assert.deepEqual(r.errors, []);
    assert.match(formatReport(r), /VERIFIED \(platform tdx, status UpToDate/);
  });
  it("TDX v5 outdated quote is refused; no collateral is not verified", async () => {
    const r = await runAttestVerify(VECTORS + TDX_V5_OUTDATED.quote, { collateral: VECTORS + TDX_V5_OUTDATED.collateral, at: at(TDX_V5_OUTDATED.at) });
    assert.equal(r.verified, false);
    assert.equal(r.status, "TCB_NOT_SUPPORTED");
    const n = await runAttestVerify(VECTORS + TDX_V4.quote, { at: at(TDX_V4.at) });
    assert.equal(n.verified, false);
    assert.equal(n.status, "NoCollateral");
  });
  it("SEV-SNP (hex) with the VCEK; NVIDIA (hex) with the chain and nonce", async () => {
    const s = await runAttestVerify(VECTORS + "sev-snp/virtee/report_milan.hex", { collateral: VECTORS + "sev-snp/virtee/vcek_milan.der", at: "2025-06-01T00:00:00Z" });
    assert.equal(s.platform, "sev-snp");
    assert.equal(s.verified, true);
    assert.match(String(s.measurements.measurement), /^7a1e5c26/);
    const noVcek = await runAttestVerify(VECTORS + "sev-snp/virtee/report_milan.hex", {});
    assert.equal(noVcek.verified, false);
    assert.match(noVcek.errors[0], /--collateral/);
    const n = await runAttestVerify(VECTORS + "nvidia/nvtrust/hopperAttestationReport.txt", { collateral: VECTORS + "nvidia/nvtrust/hopperCertChain.txt", nonce: NV_NONCE, at: "2025-06-01T00:00:00Z" });
    assert.equal(n.platform, "nvidia");
    assert.equal(n.verified, true);
    assert.equal(n.reportData, NV_NONCE);
  });
  it("sim evidence and sim certificates: refused unless allowed, labelled insecure", async () => {
    const simFile = join(tmp, "sim.bin");
    writeFileSync(simFile, createSimEvidence({ reportData: Buffer.alloc(64, 1) }));
    const refused = await runAttestVerify(simFile, {});
    assert.equal(refused.verified, false);
    assert.equal(refused.insecure, true);
    assert.match(refused.errors.join(" "), /INSECURE/);
    assert.equal((await runAttestVerify(simFile, { allowSim: true })).verified, true);
    const id = await createNodeIdentity({ role: "worker" });
    const certFile = join(tmp, "cert.pem");
    writeFileSync(certFile, id.tls.certPem);
    const c = await runAttestVerify(certFile, {});
    assert.equal(c.kind, "ratls-cert");
    assert.equal(c.verified, false);
    assert.equal(c.policy?.rule, "policy.sim");
    const ok = await runAttestVerify(certFile, { allowSim: true });
    assert.equal(ok.verified, true);
    assert.equal(ok.claims?.role, "worker");
    assert.match(formatReport(ok), /INSECURE/);
  });
  it("a policy file applies to bare evidence and names the failed rule", async () => {
    const pol = join(tmp, "policy.json");
    writeFileSync(pol, JSON.stringify({ mode: "production", measurements: { worker: ["00".repeat(32)] } }));
    const r = await runAttestVerify(VECTORS + TDX_V4.quote, { collateral: VECTORS + TDX_V4.collateral, at: at(TDX_V4.at), policy: pol });
    assert.equal(r.verified, false);
    assert.equal(r.policy?.rule, "policy.measurement");
    assert.equal(r.policy?.measured, r.imageDigest);
    writeFileSync(pol, JSON.stringify({ mode: "production", measurements: { worker: [r.imageDigest] } }));
    const ok = await runAttestVerify(VECTORS + TDX_V4.quote, { collateral: VECTORS + TDX_V4.collateral, at: at(TDX_V4.at), policy: pol });
    assert.equal(ok.verified, true);
    assert.equal(ok.policy?.passed, true);
  });
  it("exit status through commander: 0 only when verified", () => {
    // Compiled tests (npm test) import the compiled command and run plain JavaScript; from source, through tsx.
    const attest = nodeEntry(new URL("../../src/cli/attest.ts", import.meta.url));
    const script = `import { Command } from "commander"; import { registerAttestCommand } from ${JSON.stringify(attest.file)};
      const p = new Command("cocoon"); registerAttestCommand(p); await p.parseAsync(process.argv.slice(2), { from: "user" });`;
    const file = join(ROOT, `test/tee/.attest-cli-run.tmp.${attest.execArgv.length ? "mts" : "mjs"}`);
    writeFileSync(file, script);
    const run = (...args: string[]) => spawnSync(process.execPath, [...attest.execArgv, file, ...args], { cwd: ROOT, encoding: "utf8" });
    try {
      const ok = run("attest", "verify", VECTORS + TDX_V4.quote, "--collateral", VECTORS + TDX_V4.collateral, "--at", at(TDX_V4.at), "--json");
      assert.equal(ok.status, 0, ok.stderr);
      const j = JSON.parse(ok.stdout);
      assert.equal(j.verified, true);
      assert.equal(j.platform, "tdx");
      const bad = run("attest", "verify", VECTORS + TDX_V4.quote, "--collateral", VECTORS + TDX_V4.collateral, "--at", "2025-08-01T00:00:00Z");
      assert.equal(bad.status, 1);
      assert.match(bad.stdout, /NOT VERIFIED.*\n[\s\S]*expired/);
      const show = run("attest", "show", "--platform", "tdx");
      assert.equal(show.status, 1);
      assert.match(show.stderr, /no usable tdx TEE.*--platform sim/);
    } finally {
      spawnSync("rm", ["-f", file]);
    }
  });
});

describe("cocoon attest verify --pccs", () => {
  it("fetches the collateral a quote needs from a PCS v4 service, like a node does", async () => {
    const { parseCollateral } = await import("../../src/tee/tdx/collateral.js");
    const pcs = await servePcs(() => parseCollateral(vecText(TDX_V4.collateral)));
    try {
      const r = await runAttestVerify(VECTORS + TDX_V4.quote, { pccs: pcs.url, collateralCache: join(tmp, "verify-cache"), at: at(TDX_V4.at) });
      assert.equal(r.verified, true, r.errors.join("; "));
      assert.equal(r.status, "UpToDate");
      assert.ok(pcs.requests.some((q) => q.startsWith("/tdx/certification/v4/tcb")));
    } finally {
      await pcs.close();
    }
    await assert.rejects(runAttestVerify(VECTORS + TDX_V4.quote, { pccs: "http://127.0.0.1:9", collateralCache: join(tmp, "verify-cache-2"), at: at(TDX_V4.at) }), /unreachable/);
  });
});

describe("cocoon attest measure", () => {
  it("from a quote and from its register values: the same digest the verifier reports, and the root command", async () => {
    const v = await runAttestVerify(VECTORS + TDX_V4.quote, { collateral: VECTORS + TDX_V4.collateral, at: at(TDX_V4.at) });
    const fromQuote = runAttestMeasure(VECTORS + TDX_V4.quote, { root: "EQroot", kind: "both" });
    assert.equal(fromQuote.imageDigest, v.imageDigest);
    assert.equal(fromQuote.rootCommand, `cocoon root allow-image --root EQroot --kind both --digest ${v.imageDigest} --key-file <OWNER KEY FILE>`);
    assert.match(fromQuote.policyLine, /"worker": \["[0-9a-f]{64}"\], "proxy"/);
    const e = JSON.parse(vecText("tdx/expected.json"))["tdx/dcap-qvl/tdx_quote"];
    const fromRegs = runAttestMeasure(undefined, { mrtd: e.mrTd, rtmr0: e.rtmr[0], rtmr1: e.rtmr[1], rtmr2: e.rtmr[2], rtmr3: e.rtmr[3] });
    assert.equal(fromRegs.imageDigest, v.imageDigest, "zero config ids by default, as in this quote");
    assert.notEqual(runAttestMeasure(undefined, { mrtd: e.mrTd, rtmr0: e.rtmr[0], rtmr1: e.rtmr[1], rtmr2: e.rtmr[2], rtmr3: e.rtmr[3], mrowner: "11".repeat(48) }).imageDigest, v.imageDigest);
  });
  it("from an RA-TLS certificate and an SEV-SNP report (which the root cannot hold)", async () => {
    const id = await createNodeIdentity({ role: "worker" });
    const certFile = join(tmp, "m-cert.pem");
    writeFileSync(certFile, id.tls.certPem);
    const c = runAttestMeasure(certFile, {});
    assert.equal(c.platform, "sim");
    assert.equal(c.imageDigest, (await runAttestVerify(certFile, { allowSim: true })).imageDigest);
    const snp = runAttestMeasure(VECTORS + "sev-snp/virtee/report_milan.hex", { root: "EQroot" });
    assert.match(snp.imageDigest, /^[0-9a-f]{64}$/);
    assert.equal(snp.platform, "sev-snp");
    assert.equal(snp.rootCommand, `cocoon root allow-image --root EQroot --kind worker --digest ${snp.imageDigest} --key-file <OWNER KEY FILE>`);
    assert.match(snp.notes.join(" "), /MEASUREMENT 7a1e5c26.*HOST_DATA 0{64}/);
    // The same digest from the values alone, and the verifier reports it for the verified report.
    const measurement = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";
    assert.equal(runAttestMeasure(undefined, { measurement }).imageDigest, snp.imageDigest);
    assert.equal(runAttestMeasure(undefined, { measurement, hostData: "00".repeat(32) }).imageDigest, snp.imageDigest);
    assert.notEqual(runAttestMeasure(undefined, { measurement, hostData: "01".repeat(32) }).imageDigest, snp.imageDigest, "HOST_DATA is part of the digest");
    const verified = await runAttestVerify(VECTORS + "sev-snp/virtee/report_milan.hex", { collateral: VECTORS + "sev-snp/virtee/vcek_milan.der", at: "2025-06-01T00:00:00Z" });
    assert.equal(verified.imageDigest, snp.imageDigest);
  });
  it("refuses missing or malformed inputs with what to give", () => {
    assert.throws(() => runAttestMeasure(undefined, {}), /give an evidence FILE/);
    assert.throws(() => runAttestMeasure(undefined, { mrtd: "00".repeat(48) }), /--rtmr0 is required/);
    assert.throws(() => runAttestMeasure(undefined, { mrtd: "zz", rtmr0: "", rtmr1: "", rtmr2: "", rtmr3: "" }), /--mrtd must be 96 hex/);
    assert.throws(() => runAttestMeasure(VECTORS + TDX_V4.quote, { mrtd: "00".repeat(48) }), /not both/);
    assert.throws(() => runAttestMeasure(undefined, { measurement: "00".repeat(32) }), /--measurement must be 96 hex/);
    assert.throws(() => runAttestMeasure(undefined, { hostData: "00".repeat(32) }), /--measurement is required/);
    assert.throws(() => runAttestMeasure(undefined, { measurement: "00".repeat(48), hostData: "0" }), /--host-data must be 64 hex/);
    assert.throws(() => runAttestMeasure(undefined, { measurement: "00".repeat(48), mrtd: "00".repeat(48) }), /TDX registers .* or SEV-SNP values/);
    assert.throws(() => runAttestMeasure(VECTORS + TDX_V4.quote, { kind: "client" }), /--kind must be/);
    assert.throws(() => runAttestMeasure(tmp, {}), /cannot read .*EISDIR.*give an evidence file/);
  });
});

describe("cocoon attest show --platform auto", () => {
  it("says what it found and why not on a machine without a TEE", async () => {
    const r = await runAttestShow({ platform: "auto", role: "worker", tsmRoot: join(tmp, "no-tsm") });
    assert.equal(r.identity, undefined);
    assert.equal(r.probe?.platform, null);
    assert.match(r.probe!.findings.join("\n"), /no-tsm: absent \(configfs-tsm needs Linux >= 6\.7/);
  });
  it("finds a configfs-tsm TDX provider, collects a quote with collateral, and the evidence verifies", async () => {
    const intel = new TestIntel();
    const tsm = new FakeTsm("tdx_guest", (inblob) => ({ outblob: intel.quote(inblob) })).start();
    const pcs = await servePcs(() => intel.collateral);
    installTestIntelRootForTestsOnly(intel.rootPem);
    try {
      const r = await runAttestShow({ platform: "auto", role: "proxy", tsmRoot: tsm.root, pccs: pcs.url, collateralCache: join(tmp, "cache") });
      assert.equal(r.probe?.platform, "tdx");
      assert.equal(r.identity?.platform, "tdx");
      assert.equal(r.verdict?.verified, true, r.verdict?.errors.join("; "));
      assert.equal(r.verdict?.testRoot, true);
    } finally {
      uninstallTestRoots();
      tsm.stop();
      await pcs.close();
    }
  });
});
