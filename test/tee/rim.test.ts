// NVIDIA RIMs: real signed SWID tags from NVIDIA's nvtrust (test/fixtures/nvidia-rim/README.md), their XML
// signatures and chains checked by src/tee/rim.ts, with xmlsec1 (libxmlsec1) as an independent oracle on the real
// files and on altered copies; then the RIMs' measurements against GPU evidence.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { verifyRim } from "../../src/tee/rim.js";
import { canonicalize, parseXml } from "../../src/tee/xml-c14n.js";
import { loadReferenceMeasurements, verifyNvidiaEvidence } from "../../src/tee/nvidia.js";
import { NVIDIA_DEVICE_IDENTITY_CA_PEM, NVIDIA_RIM_ROOT_CA_PEM } from "../../src/tee/roots/index.js";
import { runAttestVerify } from "../../src/cli/attest.js";
import { installTestNvidiaRootForTestsOnly, uninstallTestRoots } from "../../src/tee/roots/test-roots.js";
import { NV_AT, VECTORS, nvChain, nvEvidence } from "./helpers.js";
import { TestNvidia } from "./test-tee.js";

const DIR = fileURLToPath(new URL("../fixtures/nvidia-rim/", import.meta.url));
const ROOT_PEM = fileURLToPath(new URL("../../src/tee/roots/nvidia_rim_root_ca.pem", import.meta.url));
const VBIOS = "1010_0200_882_96005E0001_PROD.swidtag";
const VBIOS_OTHER = "g520_0200_885_9600740001_PROD.swidtag";
const DRIVER = "Driver_RIM_test_no_gpu.swidtag";
/** Every fixture's signer is valid then (the L4 signer certificates run 2023-06 .. 2025-06). */
const AT = new Date("2024-06-01T00:00:00Z");
const rimText = (f: string): string => readFileSync(join(DIR, f), "utf8");

const XMLSEC = spawnSync("xmlsec1", ["--version"]).status === 0;
const oracleSkip = XMLSEC ? false : "xmlsec1 is not installed (apt-get install xmlsec1; .ci/run installs it)";
/** xmlsec1's verdict on `xml` with the pinned NVIDIA RIM root as the only trusted certificate. */
function xmlsecVerifies(xml: string): boolean {
  const dir = mkdtempSync(join(tmpdir(), "rim-oracle-"));
  try {
    writeFileSync(join(dir, "rim.xml"), xml);
    return spawnSync("xmlsec1", ["--verify", "--trusted-pem", ROOT_PEM, "--verification-time", "2024-06-01 00:00:00", join(dir, "rim.xml")], { encoding: "utf8" }).status === 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const ours = (xml: string): true | string => {
  try {
    verifyRim(xml, { now: AT });
    return true;
  } catch (e) {
    return (e as Error).message;
  }
};

// Alterations of the real VBIOS RIM: [name, how, whether the signature must still hold].
const text = rimText(VBIOS);
const ALTERATIONS: [string, string, boolean][] = [
  ["a measurement value changed", text.replace('Hash0="c3f65ef7', 'Hash0="c3f65ef8'), false],
  ["a measurement deactivated", text.replace('index="1" active="True"', 'index="1" active="False"'), false],
  ["the SignatureValue altered", text.replace(/(<ds:SignatureValue>)(.)/, (_m, a: string, c: string) => a + (c === "A" ? "B" : "A")), false],
  ["whitespace added inside SignedInfo", text.replace("<ds:SignedInfo><ds:CanonicalizationMethod", "<ds:SignedInfo>\n<ds:CanonicalizationMethod"), false],
  ["a namespace prefix renamed", text.replaceAll("ns0:", "sw:").replace('xmlns:ns0="', 'xmlns:sw="'), false],
  // Canonicalization-neutral rewrites: attribute order, quotes, whitespace inside tags, empty-element form.
  [
    "attributes reordered, other quotes, an empty element written out",
    text.replace('<ns0:Entity name="NVIDIA Corporation" role="softwareCreator tagCreator"/>', "<ns0:Entity  role='softwareCreator tagCreator'\n   name=\"NVIDIA Corporation\" ></ns0:Entity>"),
    true,
  ],
  ["a comment added (C14N without comments drops it)", text.replace("<ns0:Payload", "<!-- added --><ns0:Payload"), true],
];

describe("NVIDIA RIM signatures (real RIMs from nvtrust)", () => {
  it("verifies the real VBIOS and driver RIMs: digest, ECDSA-SHA384 signature, chain to the pinned RIM root", () => {
    for (const [file, name, version, count] of [
      [VBIOS, "GH100", "96.00.5E.00.01", 12],
      [VBIOS_OTHER, "GH100", "96.00.74.00.01", 12],
      [DRIVER, "GH100", "545.00", 21],
    ] as const) {
      const r = verifyRim(rimText(file), { now: AT });
      assert.equal(r.name, name);
      assert.equal(r.version, version);
      assert.equal(r.measurements.length, count, file);
      assert.match(r.signerSubject, /CN=HCC RIM L4 Signer/);
      for (const m of r.measurements) for (const v of m.values) assert.equal(v.length, m.size * 2);
    }
    // RIM index 0 is SPDM block 1.
    assert.equal(verifyRim(text, { now: AT }).measurements[0].index, 1);
    assert.equal(readFileSync(ROOT_PEM, "utf8").trim(), NVIDIA_RIM_ROOT_CA_PEM.trim(), "the embedded root is the PEM file");
  });

  it("refuses every alteration that changes signed content and accepts canonicalization-neutral rewrites", () => {
    for (const [name, xml, holds] of ALTERATIONS) {
      assert.notEqual(xml, text, `${name}: the alteration applied`);
      assert.equal(ours(xml) === true, holds, `ours: ${name}: ${ours(xml)}`);
    }
  });

  it("agrees with xmlsec1 on the real RIMs and on every alteration", { skip: oracleSkip }, () => {
    for (const f of [VBIOS, VBIOS_OTHER, DRIVER]) assert.equal(xmlsecVerifies(rimText(f)), true, `xmlsec1 on ${f}`);
    for (const [name, xml, holds] of ALTERATIONS) assert.equal(xmlsecVerifies(xml), holds, `xmlsec1: ${name}`);
  });

  it("says which step failed", () => {
    assert.match(String(ours(ALTERATIONS[0][1])), /sha384 digest does not match the signed DigestValue \(the RIM was altered\)/);
    assert.match(String(ours(ALTERATIONS[2][1])), /the XML signature does not verify with ".*HCC RIM L4 Signer"/);
    assert.throws(() => verifyRim(text, { now: new Date("2026-01-01T00:00:00Z") }), /HCC RIM L4 Signer" is not valid at 2026-01-01/);
    // A chain that ends in another self-signed certificate (KeyInfo is not covered by the signature).
    const otherRoot = NVIDIA_DEVICE_IDENTITY_CA_PEM.replace(/-----[A-Z ]+-----|\s/g, "");
    const swapped = text.replace(/(<ds:X509Certificate>)([^<]*)(<\/ds:X509Certificate><\/ds:X509Data>)/, `$1${otherRoot}$3`);
    assert.throws(() => verifyRim(swapped, { now: AT }), /not the pinned root|was not issued by/);
    assert.throws(() => verifyRim(text.replace("xml-c14n11", "xml-exc-c14n#"), { now: AT }), /canonicalization .*exc-c14n.* is not supported/);
    assert.throws(() => verifyRim(text.replace("ecdsa-sha384", "rsa-sha1"), { now: AT }), /signature method .* is not supported/);
    assert.throws(() => verifyRim(`<!DOCTYPE x>${text}`, { now: AT }), /DOCTYPE declarations are not accepted/);
    assert.throws(() => verifyRim(text.replace("<ns0:Payload", "<![CDATA[x]]><ns0:Payload"), { now: AT }), /CDATA sections are not accepted/);
    assert.throws(() => verifyRim(text.replace(/<ds:Signature[\s\S]*<\/ds:Signature>/, ""), { now: AT }), /expected one enveloped ds:Signature .*unsigned RIM/);
  });

  it("canonicalizes like C14N: namespaces of ancestors on the apex, sorted attributes, escaped text", () => {
    const doc = parseXml(`<a xmlns="urn:d" xmlns:p="urn:p"><p:b z="1" p:y="&lt;2&#9;" a="&quot;"  >x &amp; y &#13;<c/></p:b></a>`);
    const b = doc.children[0];
    assert.ok(typeof b !== "string");
    assert.equal(canonicalize(b).toString(), `<p:b xmlns="urn:d" xmlns:p="urn:p" a="&quot;" z="1" p:y="&lt;2&#x9;">x &amp; y &#xD;<c></c></p:b>`);
    assert.equal(canonicalize(doc).toString(), `<a xmlns="urn:d" xmlns:p="urn:p"><p:b a="&quot;" z="1" p:y="&lt;2&#x9;">x &amp; y &#xD;<c></c></p:b></a>`);
  });

  it("random input and random edits never crash the reader and never verify", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        assert.throws(() => verifyRim(s, { now: AT }), Error);
      }),
      { numRuns: 200 },
    );
    // Any change to a hex digit of the signed payload breaks the digest.
    const hexSpots = [...text.matchAll(/Hash0="([0-9a-f]+)"/g)].map((m) => (m.index ?? 0) + 7);
    fc.assert(
      fc.property(fc.constantFrom(...hexSpots), fc.nat(95), fc.constantFrom(..."0123456789abcdef"), (at, k, c) => {
        const i = at + k;
        fc.pre(text[i] !== c);
        assert.notEqual(ours(text.slice(0, i) + c + text.slice(i + 1)), true);
      }),
      { numRuns: 60 },
    );
  });
});

describe("RIM measurements against GPU evidence", () => {
  const dir = mkdtempSync(join(tmpdir(), "rims-"));
  writeFileSync(join(dir, VBIOS), rimText(VBIOS));
  writeFileSync(join(dir, DRIVER), rimText(DRIVER));

  it("loads signed RIMs (verified) keyed by SPDM block index; two RIMs claiming one index are refused", () => {
    const ref = loadReferenceMeasurements(dir, { now: AT });
    assert.equal(ref.size, 12 + 21);
    assert.deepEqual(ref.get(1), ["0".repeat(96)]);
    const both = mkdtempSync(join(tmpdir(), "rims-both-"));
    writeFileSync(join(both, VBIOS), rimText(VBIOS));
    writeFileSync(join(both, VBIOS_OTHER), rimText(VBIOS_OTHER));
    assert.throws(() => loadReferenceMeasurements(both, { now: AT }), /measurement 0 \(SPDM block 1\) is active in both .* NVIDIA's verifier refuses/);
    writeFileSync(join(both, VBIOS_OTHER), ALTERATIONS[0][1]);
    rmSync(join(both, VBIOS));
    assert.throws(() => loadReferenceMeasurements(both, { now: AT }), /digest does not match.*Only NVIDIA-signed RIMs are accepted as XML/);
    rmSync(both, { recursive: true, force: true });
  });

  it("the real H100 evidence (VBIOS 96.00.9F.00.01) does not match the RIMs of VBIOS 96.00.5E.00.01 / driver 545", () => {
    const v = verifyNvidiaEvidence(nvEvidence(), nvChain(), { now: NV_AT, reference: loadReferenceMeasurements(dir, { now: AT }) });
    assert.equal(v.checks.referenceMeasurements, false);
    assert.match(v.errors.join(" "), /GPU measurements differ from the reference \(RIM\): index \d+ = /);
    // Block 4 (RIM index 3) is the same in both VBIOS versions: it is not listed.
    assert.doesNotMatch(v.errors.join(" "), /index 4 = /);
  });

  it("cocoon attest verify --rim checks the RIMs at --at and compares them", async () => {
    const r = await runAttestVerify(VECTORS + "nvidia/nvtrust/hopperAttestationReport.txt", { collateral: VECTORS + "nvidia/nvtrust/hopperCertChain.txt", rim: dir, at: "2025-06-01T00:00:00Z" });
    assert.equal(r.verified, false);
    assert.equal(r.checks.referenceMeasurements, false);
    await assert.rejects(runAttestVerify(VECTORS + "nvidia/nvtrust/hopperAttestationReport.txt", { rim: dir, at: "2026-01-01T00:00:00Z" }), /HCC RIM L4 Signer" is not valid at 2026-01-01/);
  });

  it("GPU evidence whose blocks carry the RIMs' values matches; one changed block is named", () => {
    const gpu = new TestNvidia();
    installTestNvidiaRootForTestsOnly(gpu.rootPem);
    try {
      const ref = loadReferenceMeasurements(dir, { now: AT });
      const values = new Map([...ref].map(([i, vals]) => [i, Buffer.from(vals[0], "hex")]));
      const nonce = Buffer.alloc(32, 9);
      const good = verifyNvidiaEvidence(gpu.transcript(nonce, values), gpu.chainPem, { expectedNonce: nonce.toString("hex"), reference: ref });
      assert.equal(good.checks.referenceMeasurements, true, good.errors.join("; "));
      assert.equal(good.verified, true);
      values.set(22, Buffer.alloc(48, 0xee));
      const bad = verifyNvidiaEvidence(gpu.transcript(nonce, values), gpu.chainPem, { expectedNonce: nonce.toString("hex"), reference: ref });
      assert.equal(bad.verified, false);
      assert.match(bad.errors.join(" "), /index 22 = eeeeeeeeeeeeeeee\.\.\. not in the reference values/);
    } finally {
      uninstallTestRoots();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
