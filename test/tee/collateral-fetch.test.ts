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
import { installTestIntelRootForTestsOnly, uninstallTestRoots } from "../../src/tee/roots/test-roots.js";
import { TDX_V4, vec, vecText } from "./helpers.js";
import { TestIntel, servePcs } from "./test-tee.js";

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
