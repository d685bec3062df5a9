// TDX collateral from a PCS/PCCS (a local server speaking the Intel PCS v4 shapes and serving the real collateral of
// the shared vectors), the verified disk cache, and the verdicts for expiry, revocation, a forged cache and an
// unreachable service.
import { describe, it, after, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CollateralUnavailableError, REFRESH_MARGIN_MS, TdxCollateralStore, collateralKeyOfQuote, fetchTdxCollateral, rawJsonMember } from "../../src/tee/tdx/pcs.js";
import { parseCollateral, type QuoteCollateralV3 } from "../../src/tee/tdx/collateral.js";
import { verifyTdxQuote } from "../../src/tee/tdx/verify.js";
import { installTestAmdRootsForTestsOnly, installTestIntelRootForTestsOnly, uninstallTestRoots } from "../../src/tee/roots/test-roots.js";
import { VcekStore, vcekUrl } from "../../src/tee/kds.js";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { TDX_V4, vec, vecText } from "./helpers.js";
import { TestAmd, TestIntel, servePcs } from "./test-tee.js";

const real = (): QuoteCollateralV3 => parseCollateral(vecText(TDX_V4.collateral));
const quote = vec(TDX_V4.quote);

describe("TDX collateral from a PCS v4 service", () => {
  let pcs: Awaited<ReturnType<typeof servePcs>>;
  const dir = mkdtempSync(join(tmpdir(), "collateral-"));
  before(async () => {
    pcs = await servePcs(real);
  });
  after(async () => {
    await pcs.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("fetches the four parts with the request shapes of PCS v4; the signed text is cut out byte for byte", async () => {
    const { fmspc, ca } = collateralKeyOfQuote(quote);
    assert.deepEqual({ fmspc, ca }, { fmspc: "B0C06F000000", ca: "platform" });
    const col = await fetchTdxCollateral(fmspc, ca, { baseUrl: pcs.url });
    const want = real();
    assert.equal(col.tcb_info, want.tcb_info);
    assert.equal(col.qe_identity, want.qe_identity);
    assert.equal(col.pck_crl, String(want.pck_crl).toLowerCase());
    assert.ok(pcs.requests.includes("/tdx/certification/v4/tcb?fmspc=B0C06F000000"));
    assert.ok(pcs.requests.includes("/sgx/certification/v4/pckcrl?ca=platform&encoding=der"));
    const v = verifyTdxQuote(quote, { collateral: col, now: TDX_V4.at });
    assert.equal(v.verified, true, v.errors.join("; "));
    assert.equal(v.status, "UpToDate");
  });

  it("rawJsonMember keeps braces inside strings and refuses truncated bodies", () => {
    assert.equal(rawJsonMember('{"tcbInfo":{"a":"}{","b":{"c":1}},"signature":"00"}', "tcbInfo"), '{"a":"}{","b":{"c":1}}');
    assert.throws(() => rawJsonMember('{"tcbInfo":{"a":1', "tcbInfo"), /not a complete JSON object/);
  });

  it("caches on disk; a second store (new process) uses the cache without asking the service", async () => {
    const now = () => TDX_V4.at;
    const first = new TdxCollateralStore({ baseUrl: pcs.url, cacheDir: dir, now });
    const n = pcs.requests.length;
    await first.forQuote(quote);
    assert.equal(pcs.requests.length - n, 4);
    const offline = new TdxCollateralStore({ baseUrl: "http://127.0.0.1:9", cacheDir: dir, now });
    const col = await offline.forQuote(quote);
    assert.equal(verifyTdxQuote(quote, { collateral: col, now: TDX_V4.at }).verified, true);
  });

  it("a forged cache is never trusted: it is reported and fetched again (or refused when the service is down)", async () => {
    const [file] = readdirSync(dir).filter((f) => f.endsWith(".json"));
    const path = join(dir, file);
    const good = readFileSync(path, "utf8");
    const col = JSON.parse(good) as QuoteCollateralV3;
    col.tcb_info = col.tcb_info.replace('"UpToDate"', '"UpToDate" ').replace('"OutOfDate"', '"UpToDate"');
    writeFileSync(path, JSON.stringify(col));
    const logs: string[] = [];
    const offline = new TdxCollateralStore({ baseUrl: "http://127.0.0.1:9", cacheDir: dir, now: () => TDX_V4.at, log: (l) => logs.push(l) });
    await assert.rejects(offline.forQuote(quote), (e: unknown) => e instanceof CollateralUnavailableError && /unreachable at http:\/\/127\.0\.0\.1:9/.test((e as Error).message));
    assert.match(logs.join("\n"), /is not usable \(TCB info signature does not verify/);
    const online = new TdxCollateralStore({ baseUrl: pcs.url, cacheDir: dir, now: () => TDX_V4.at });
    await online.forQuote(quote);
    assert.equal(readFileSync(path, "utf8"), good, "the genuine collateral replaced the forged file");
  });

  it("refreshes before nextUpdate, and keeps the still-valid copy (with a warning) while the service is down", async () => {
    const next = new Date(JSON.parse(real().qe_identity).nextUpdate as string);
    const tcbNext = new Date(JSON.parse(real().tcb_info).nextUpdate as string);
    const earliest = new Date(Math.min(next.getTime(), tcbNext.getTime()));
    const inMargin = () => new Date(earliest.getTime() - REFRESH_MARGIN_MS / 2);
    const logs: string[] = [];
    const offline = new TdxCollateralStore({ baseUrl: "http://127.0.0.1:9", cacheDir: dir, now: inMargin, log: (l) => logs.push(l) });
    const col = await offline.forQuote(quote);
    assert.ok(col.tcb_info.length > 0);
    assert.match(logs.join("\n"), /could not refresh TDX collateral.*using the cached copy valid until/);
    const n = pcs.requests.length;
    await new TdxCollateralStore({ baseUrl: pcs.url, cacheDir: dir, now: inMargin }).forQuote(quote);
    assert.equal(pcs.requests.length - n, 4, "inside the margin the store asks the service again");
  });

  it("expired collateral is refused, from the cache and from the service alike", async () => {
    const late = () => new Date("2030-01-01T00:00:00Z");
    const store = new TdxCollateralStore({ baseUrl: pcs.url, cacheDir: dir, now: late });
    await assert.rejects(store.forQuote(quote), /does not verify: .*(expired|not valid at|valid .* not at)/);
    const v = verifyTdxQuote(quote, { collateral: real(), now: late() });
    assert.equal(v.verified, false);
    assert.match(v.errors.join(" "), /expired/);
  });

  it("a service answering errors gives a clear verdict", async () => {
    const down = await servePcs(real, { fail: 503 });
    try {
      await assert.rejects(fetchTdxCollateral("B0C06F000000", "platform", { baseUrl: down.url }), /answered 503/);
      await assert.rejects(fetchTdxCollateral("B0C06F", "platform", { baseUrl: down.url }), /FMSPC must be 12 hex characters/);
    } finally {
      await down.close();
    }
  });
});

describe("collateral signed by an installed test root", () => {
  after(() => uninstallTestRoots());
  it("revocation of the PCK leaf fails the quote; without the test root installed nothing verifies", async () => {
    const now = new Date();
    const clean = new TestIntel({ now });
    const revoked = new TestIntel({ now, revokePck: true });
    const rd = Buffer.alloc(64, 3);
    assert.equal(verifyTdxQuote(clean.quote(rd), { collateral: clean.collateral, now }).checks.pckChainToIntelRoot, false);
    installTestIntelRootForTestsOnly(clean.rootPem);
    installTestIntelRootForTestsOnly(revoked.rootPem);
    const ok = verifyTdxQuote(clean.quote(rd), { collateral: clean.collateral, now });
    assert.equal(ok.verified, true, ok.errors.join("; "));
    assert.equal(ok.testRoot, true);
    assert.equal(ok.insecure, true, "test-root evidence is labelled insecure");
    assert.equal(ok.reportData, rd.toString("hex"));
    const bad = verifyTdxQuote(revoked.quote(rd), { collateral: revoked.collateral, now });
    assert.equal(bad.verified, false);
    assert.match(bad.errors.join(" "), /PCK Certificate.*is revoked/);
  });
});

describe("SEV-SNP VCEK from a KDS stand-in", () => {
  after(() => uninstallTestRoots());
  it("by chip id and TCB; a forged cache is refetched, an unreachable or refusing KDS gives a clear error", async () => {
    const amd = new TestAmd();
    installTestAmdRootsForTestsOnly({ ark: amd.ark, ask: amd.ask });
    const report = amd.report(Buffer.alloc(64, 9));
    let status = 200;
    const kds = createServer((req, res) => (status === 200 && req.url === new URL(vcekUrl(report, "http://x")).pathname + new URL(vcekUrl(report, "http://x")).search ? res.writeHead(200).end(amd.vcek) : res.writeHead(status === 200 ? 404 : status).end()));
    await new Promise<void>((r) => kds.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(kds.address() as AddressInfo).port}`;
    const dir = mkdtempSync(join(tmpdir(), "vcek-"));
    try {
      assert.match(vcekUrl(report, url), /\/vcek\/v1\/Milan\/[0-9a-f]{128}\?blSPL=\d+&teeSPL=\d+&snpSPL=\d+&ucodeSPL=\d+$/);
      const logs: string[] = [];
      const store = new VcekStore({ baseUrl: url, cacheDir: dir, log: (l) => logs.push(l) });
      assert.deepEqual(await store.forReport(report), amd.vcek);
      const [file] = readdirSync(dir);
      writeFileSync(join(dir, file), Buffer.concat([amd.vcek.subarray(0, 100), Buffer.alloc(50, 1), amd.vcek.subarray(150)]));
      assert.deepEqual(await store.forReport(report), amd.vcek, "the forged file was replaced by the KDS's VCEK");
      assert.match(logs.join("\n"), /cached VCEK .* is not usable/);
      status = 429;
      writeFileSync(join(dir, file), "forged");
      await assert.rejects(store.forReport(report), /answered 429.*rate limited/);
      await assert.rejects(new VcekStore({ baseUrl: "http://127.0.0.1:9", cacheDir: dir }).forReport(report), /AMD KDS unreachable at http:\/\/127\.0\.0\.1:9/);
      const late = new VcekStore({ baseUrl: "http://127.0.0.1:9", cacheDir: dir, now: () => new Date("2040-01-01T00:00:00Z") });
      status = 200;
      await store.forReport(report);
      await assert.rejects(late.forReport(report), /unreachable/, "an expired cached VCEK is not used");
    } finally {
      await new Promise((r) => kds.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
