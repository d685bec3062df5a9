// AMD revocation (the ARK-signed product CRL from the KDS) and SEV-SNP TCB policy floors.
// The CRL code path is checked against AMD's real RSASSA-PSS signatures (the real ASK certificate, signed by the
// real Milan ARK, has exactly a CRL's shape: tbs, PSS AlgorithmIdentifier, signature), and end to end with a test
// ARK (test roots) whose CRL a local KDS stand-in serves.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { X509Certificate, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pssParams, verifyCrlSignature, type Crl } from "../../src/tee/crl.js";
import { children, decodeOid, expectTag, parseDer, raw, content, TAG } from "../../src/tee/der.js";
import { certFields, splitPem } from "../../src/tee/x509.js";
import { AMD_GENOA_ARK_PEM, AMD_MILAN_ARK_PEM, AMD_MILAN_ASK_PEM } from "../../src/tee/roots/index.js";
import { snpPolicyFacts, verifySnpReport } from "../../src/tee/sevsnp.js";
import { VcekStore, amdCrlUrl } from "../../src/tee/kds.js";
import { checkPlatformPolicy, parsePolicy, type Policy } from "../../src/tee/policy.js";
import { AttestationError } from "../../src/tee/errors.js";
import { installTestAmdRootsForTestsOnly, uninstallTestRoots } from "../../src/tee/roots/test-roots.js";
import { SNP_AT, snpReport, snpVcek } from "./helpers.js";
import { TestAmd } from "./test-tee.js";
import fc from "fast-check";

const DAY = 86_400_000;
const REPORT_DATA = Buffer.alloc(64, 7);

/** A certificate seen as a signed list: same tbs / algorithm / signature layout as a CRL. */
function certAsSignedList(pem: string): Crl {
  const der = splitPem(pem)[0];
  const [tbs, alg, sig] = children(parseDer(der));
  const algParts = children(alg);
  return {
    tbs: Buffer.from(raw(tbs)),
    sigAlgOid: decodeOid(expectTag(algParts[0], TAG.OID, "alg")),
    sigAlgParams: algParts[1],
    signature: Buffer.from(content(sig).subarray(1)),
    issuerRaw: certFields(der).issuerRaw,
    thisUpdate: new Date(0),
    revoked: new Set(),
  };
}

describe("RSASSA-PSS signatures in the CRL code path (real AMD signatures)", () => {
  it("verifies the real Milan ASK's RSASSA-PSS/SHA-384 signature by the real ARK, and refuses a flipped one", () => {
    const list = certAsSignedList(AMD_MILAN_ASK_PEM);
    assert.deepEqual(pssParams(list.sigAlgParams, "ASK"), { hash: "sha384", saltLength: 48 });
    verifyCrlSignature(list, new X509Certificate(AMD_MILAN_ARK_PEM), "Milan ASK");
    const bad = { ...list, signature: Buffer.from(list.signature) };
    bad.signature[10] ^= 1;
    assert.throws(() => verifyCrlSignature(bad, new X509Certificate(AMD_MILAN_ARK_PEM), "Milan ASK"), /signature by "ARK-Milan" does not verify/);
    assert.throws(() => verifyCrlSignature(list, new X509Certificate(AMD_GENOA_ARK_PEM), "Milan ASK"), /issuer name does not match/);
  });

  it("refuses PSS parameters it does not support, by name", () => {
    const list = certAsSignedList(AMD_MILAN_ASK_PEM);
    assert.throws(() => pssParams(undefined, "x"), /without parameters/);
    // SEQUENCE {} = all defaults (SHA-1).
    assert.throws(() => pssParams(parseDer(Buffer.from([0x30, 0x00])), "x"), /SHA-1 default hash is not accepted/);
    assert.ok(list.sigAlgParams);
  });
});

describe("SEV-SNP verdicts with AMD's CRL", () => {
  const amd = new TestAmd();
  before(() => installTestAmdRootsForTestsOnly({ ark: amd.ark, ask: amd.ask }));
  after(() => uninstallTestRoots());
  const report = amd.report(REPORT_DATA);

  it("the real Milan vector still verifies; without a CRL the verdict says revocation was not checked", () => {
    const v = verifySnpReport(snpReport(), snpVcek(), { now: SNP_AT });
    assert.equal(v.verified, true, v.errors.join("; "));
    assert.equal(v.details.revocationChecked, false);
    assert.match(v.warnings?.join(" ") ?? "", /not checked for revocation/);
  });

  it("a CRL not signed by the real ARK is refused for the real chain (amdCrlValid)", () => {
    const v = verifySnpReport(snpReport(), snpVcek(), { now: SNP_AT, crl: amd.crl({ now: SNP_AT }) });
    assert.equal(v.verified, false);
    assert.equal(v.checks.amdCrlValid, false);
    assert.match(v.errors.join(" "), /AMD Milan CRL: signature by "ARK-Milan" does not verify/);
  });

  it("a current CRL that revokes nothing: verified, revocation checked", () => {
    const v = verifySnpReport(report, amd.vcek, { crl: amd.crl() });
    assert.equal(v.verified, true, v.errors.join("; "));
    assert.deepEqual([v.checks.amdCrlValid, v.checks.askNotRevoked, v.checks.vcekNotRevoked], [true, true, true]);
    assert.equal(v.details.revocationChecked, true);
    assert.equal(v.warnings, undefined);
  });

  it("a revoked ASK or VCEK fails the verdict with a named check", () => {
    const ask = verifySnpReport(report, amd.vcek, { crl: amd.crl({ revoke: ["1234", amd.askSerial] }) });
    assert.equal(ask.verified, false);
    assert.equal(ask.checks.askNotRevoked, false);
    assert.equal(ask.checks.vcekNotRevoked, true);
    assert.match(ask.errors.join(" "), new RegExp(`ASK \\(serial ${amd.askSerial}\\) is revoked`));
    const vcek = verifySnpReport(report, amd.vcek, { crl: amd.crl({ revoke: [amd.vcekSerial] }) });
    assert.equal(vcek.verified, false);
    assert.equal(vcek.checks.vcekNotRevoked, false);
  });

  it("a forged CRL (other key, or altered bytes) is refused", () => {
    const forged = amd.crl({ revoke: [], key: generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey });
    const v = verifySnpReport(report, amd.vcek, { crl: forged });
    assert.equal(v.verified, false);
    assert.equal(v.checks.amdCrlValid, false);
    assert.equal(v.checks.askNotRevoked, undefined, "a CRL that does not verify is not used");
    // Dropping the revoked entry of a real revocation list breaks the signature.
    const revoking = amd.crl({ revoke: [amd.askSerial] });
    const altered = Buffer.from(revoking);
    altered[altered.indexOf(Buffer.from(amd.askSerial, "hex"))] ^= 0x01;
    assert.equal(verifySnpReport(report, amd.vcek, { crl: altered }).checks.amdCrlValid, false);
    assert.equal(verifySnpReport(report, amd.vcek, { crl: Buffer.from("not a CRL") }).checks.amdCrlValid, false);
  });

  it("random bytes or a mutated CRL never throw out of the verifier and never verify", () => {
    const good = amd.crl();
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)), fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
        const b = Buffer.from(good);
        b[i] ^= x;
        return b;
      })), (crl) => {
        const v = verifySnpReport(report, amd.vcek, { crl });
        assert.equal(v.checks.amdCrlValid, false);
        assert.equal(v.verified, false);
      }),
      { numRuns: 150 },
    );
  });

  it("an expired (or not yet valid) CRL gives a clear verdict", () => {
    const old = amd.crl({ now: new Date(Date.now() - 30 * DAY), days: 7 });
    const v = verifySnpReport(report, amd.vcek, { crl: old });
    assert.equal(v.verified, false);
    assert.equal(v.checks.amdCrlValid, false);
    assert.match(v.errors.join(" "), /AMD Milan CRL expired at .* \(evaluated at/);
    const future = verifySnpReport(report, amd.vcek, { crl: amd.crl({ now: new Date(Date.now() + 10 * DAY) }) });
    assert.match(future.errors.join(" "), /not yet valid/);
  });
});

describe("SEV-SNP policy: CRL required, TCB floors, provisional firmware", () => {
  const amd = new TestAmd();
  before(() => installTestAmdRootsForTestsOnly({ ark: amd.ark, ask: amd.ask }));
  after(() => uninstallTestRoots());

  const facts = (crl = true) => {
    const v = verifySnpReport(amd.report(REPORT_DATA), amd.vcek, crl ? { crl: amd.crl() } : {});
    assert.equal(v.verified, true, v.errors.join("; "));
    const f = snpPolicyFacts(v);
    assert.ok(f);
    return { v, f };
  };
  const check = (policy: Policy, crl = true): string | undefined => {
    const { v, f } = facts(crl);
    try {
      checkPlatformPolicy(policy, { role: "worker", platform: "sev-snp", imageDigest: v.imageDigest, snp: f });
      return undefined;
    } catch (e) {
      assert.ok(e instanceof AttestationError);
      return `${e.rule}: ${e.message}`;
    }
  };
  const dev = (extra: object) => parsePolicy({ mode: "dev", ...extra });
  // The vector's reported TCB: bootloader 3, tee 0, snp 8, microcode 115.
  const at = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };

  it("production requires the CRL (policy.snp-crl); dev does not unless asked", () => {
    assert.equal(check(dev({})), undefined);
    assert.match(check(dev({ requireSnpCrl: true }), false) ?? "", /^policy\.snp-crl: .*carries no AMD CRL/);
    assert.equal(check(dev({ requireSnpCrl: true }), true), undefined);
    assert.equal(parsePolicy({ mode: "production" }).requireSnpCrl, true);
  });

  it("minSnpTcb: equal passes, any component above the reported one refuses with the component named", () => {
    assert.equal(check(dev({ minSnpTcb: at })), undefined);
    assert.equal(check(dev({ minSnpTcb: { ...at, microcode: 100 } })), undefined);
    assert.match(check(dev({ minSnpTcb: { ...at, microcode: 116 } })) ?? "", /^policy\.snp-tcb: .*REPORTED_TCB is below the policy minimum in microcode/);
    assert.match(check(dev({ minSnpTcb: { ...at, snp: 9, bootloader: 4 } })) ?? "", /in bootloader, snp/);
    assert.throws(() => parsePolicy({ mode: "dev", minSnpTcb: { bootloader: 1 } }), /minSnpTcb/);
  });

  it("minSnpLaunchTcb checks LAUNCH_TCB (policy.snp-launch-tcb)", () => {
    amd.tcb = { launch: Buffer.from([2, 0, 0, 0, 0, 0, 8, 115]) };
    try {
      assert.equal(check(dev({ minSnpTcb: at })), undefined, "the reported TCB is unchanged");
      assert.match(check(dev({ minSnpLaunchTcb: at })) ?? "", /^policy\.snp-launch-tcb: .*LAUNCH_TCB .* in bootloader/);
    } finally {
      amd.tcb = {};
    }
  });

  it("provisional firmware (COMMITTED_TCB != CURRENT_TCB) is refused unless allowed; committed above current never", () => {
    amd.tcb = { committed: Buffer.from([3, 0, 0, 0, 0, 0, 8, 110]) };
    try {
      const prod = parsePolicy({ mode: "dev", allowProvisionalSnpFirmware: false });
      assert.match(check(prod) ?? "", /^policy\.snp-provisional-firmware: .*COMMITTED_TCB differs from CURRENT_TCB/);
      assert.equal(check(parsePolicy({ mode: "dev", allowProvisionalSnpFirmware: true })), undefined);
      amd.tcb = { committed: Buffer.from([3, 0, 0, 0, 0, 0, 9, 115]) };
      assert.match(check(parsePolicy({ mode: "dev", allowProvisionalSnpFirmware: true })) ?? "", /COMMITTED_TCB is above CURRENT_TCB in snp/);
    } finally {
      amd.tcb = {};
    }
  });
});

describe("AMD CRL from the KDS stand-in, cached and verified on every load", () => {
  const amd = new TestAmd();
  let crl = amd.crl();
  let status = 200;
  const requests: string[] = [];
  let server: Server;
  let url = "";
  const dir = mkdtempSync(join(tmpdir(), "amd-crl-"));
  const logs: string[] = [];
  const store = () => new VcekStore({ baseUrl: url, cacheDir: dir, log: (l) => logs.push(l) });
  before(async () => {
    installTestAmdRootsForTestsOnly({ ark: amd.ark, ask: amd.ask });
    server = createServer((req, res) => {
      requests.push(req.url ?? "");
      if (status !== 200) res.writeHead(status).end();
      else if (req.url === "/vcek/v1/Milan/crl") res.writeHead(200, { "content-type": "application/pkix-crl" }).end(crl);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    uninstallTestRoots();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it("fetches /vcek/v1/{product}/crl, caches it, and serves the cache while it is fresh", async () => {
    assert.equal(amdCrlUrl("Milan", url), `${url}/vcek/v1/Milan/crl`);
    assert.deepEqual(await store().crlFor(amd.vcek), crl);
    assert.deepEqual(await store().crlFor(amd.vcek), crl);
    assert.deepEqual(requests, ["/vcek/v1/Milan/crl"]);
    assert.ok(readdirSync(dir).includes("amd-crl-Milan.der"));
  });

  it("a forged cache file is refused on load and replaced", async () => {
    const forged = amd.crl({ key: generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey });
    writeFileSync(join(dir, "amd-crl-Milan.der"), forged);
    requests.length = 0;
    assert.deepEqual(await store().crlFor(amd.vcek), crl);
    assert.equal(requests.length, 1);
    assert.match(logs.join("\n"), /cached AMD CRL .* is not usable \(AMD Milan CRL: signature .* does not verify\); fetching it again/);
  });

  it("a forged CRL from the service is refused; an unreachable service keeps a still-valid cache, with a warning", async () => {
    // Near its nextUpdate (less than a day left) the store tries to refresh.
    const ageing = amd.crl({ now: new Date(Date.now() - 6.5 * DAY), days: 7 });
    writeFileSync(join(dir, "amd-crl-Milan.der"), ageing);
    crl = amd.crl({ key: generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey });
    logs.length = 0;
    assert.deepEqual(await store().crlFor(amd.vcek), ageing, "the forged answer was not taken");
    assert.match(logs.join("\n"), /could not refresh AMD CRL \(AMD CRL from .* does not verify: .*\); using the cached copy/);
    status = 503;
    assert.deepEqual(await store().crlFor(amd.vcek), ageing);
    assert.match(logs.join("\n"), /AMD KDS answered 503/);
  });

  it("with no valid copy and no service, it fails with what to do", async () => {
    writeFileSync(join(dir, "amd-crl-Milan.der"), amd.crl({ now: new Date(Date.now() - 30 * DAY), days: 7 }));
    status = 503;
    await assert.rejects(store().crlFor(amd.vcek), /AMD KDS answered 503/);
    const unreachable = new VcekStore({ baseUrl: "http://127.0.0.1:9", cacheDir: join(dir, "empty") });
    await assert.rejects(unreachable.crlFor(amd.vcek), /AMD KDS unreachable at http:\/\/127\.0\.0\.1:9\/vcek\/v1\/Milan\/crl .*check --kds/);
    status = 200;
    crl = amd.crl({ revoke: [amd.askSerial] });
    assert.deepEqual(await store().crlFor(amd.vcek), crl, "a fresh CRL replaces the expired one");
  });
});
