// TDX boot event log (CCEL) replay into RTMRs, against a real log from a Container-Optimized OS TDX guest
// (google/go-eventlog testdata; the expected RTMR0-2 are the ones go-eventlog's own test replays it to).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { replayCcelEventLog, rtmrReplayMismatches } from "../../src/tee/tdx/eventlog.js";
import { EvidenceFormatError } from "../../src/tee/errors.js";
import { runAttestVerify } from "../../src/cli/attest.js";
import { installTestIntelRootForTestsOnly, uninstallTestRoots } from "../../src/tee/roots/test-roots.js";
import { TDX_V4, VECTORS } from "./helpers.js";
import { TestIntel } from "./test-tee.js";

const LOG_FILE = fileURLToPath(new URL("../fixtures/tdx-eventlog/cos-113-intel-tdx-dupe-separator-unpadded.bin", import.meta.url));
const LOG = readFileSync(LOG_FILE);
const WANT = [
  "a4de2df23e9611299123ba4359c42a5e578b0f8488bf1bba8ef5606d9ea5d81c97c064b482a5eac537d166bd0f0f752d",
  "0ee9366c928a77092f55e9e114c7394181fd264699155f0df77d23577618d5f650568a17d379355a07bd846e552f4e20",
  "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1",
];

describe("TDX event log replay (real CCEL log)", () => {
  it("replays the real log to the RTMR0-2 go-eventlog expects; RTMR3 is untouched", () => {
    const r = replayCcelEventLog(LOG);
    assert.deepEqual(r.rtmr.slice(0, 3), WANT);
    assert.equal(r.rtmr[3], "0".repeat(96));
    assert.equal(r.events.length, 43);
    assert.equal(r.padding, 0);
    assert.deepEqual(rtmrReplayMismatches(r.rtmr, WANT), []);
  });

  it("stops at the ACPI region's 0xFF padding", () => {
    const r = replayCcelEventLog(Buffer.concat([LOG, Buffer.alloc(4096, 0xff)]));
    assert.deepEqual(r.rtmr.slice(0, 3), WANT);
    assert.equal(r.padding, 4096);
  });

  it("an altered digest changes exactly its RTMR, and the mismatch is named", () => {
    const first = replayCcelEventLog(LOG).events.find((e) => e.mrIndex === 2);
    assert.ok(first);
    const at = LOG.indexOf(Buffer.from(first.digest, "hex"));
    const bad = Buffer.from(LOG);
    bad[at] ^= 1;
    const r = replayCcelEventLog(bad);
    assert.equal(r.rtmr[0], WANT[0]);
    assert.notEqual(r.rtmr[1], WANT[1]);
    assert.equal(r.rtmr[2], WANT[2]);
    assert.deepEqual(rtmrReplayMismatches(r.rtmr, WANT).map((l) => l.slice(0, 5)), ["RTMR1"]);
  });

  it("refuses malformed logs by what is wrong", () => {
    assert.throws(() => replayCcelEventLog(LOG.subarray(0, LOG.length - 10)), /truncated event data/);
    assert.throws(() => replayCcelEventLog(Buffer.alloc(3)), /truncated first event MR index/);
    assert.throws(() => replayCcelEventLog(Buffer.alloc(10)), /the first event is not EV_NO_ACTION/);
    const noSpec = Buffer.from(LOG);
    noSpec.write("Spec ID Event02", 32, "latin1");
    assert.throws(() => replayCcelEventLog(noSpec), /only crypto-agile/);
  });

  it("random bytes and random edits never throw anything but a format error", () => {
    const check = (b: Buffer) => {
      try {
        replayCcelEventLog(b);
      } catch (e) {
        assert.ok(e instanceof EvidenceFormatError, String(e));
      }
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (b) => check(Buffer.from(b))), { numRuns: 200 });
    fc.assert(
      fc.property(fc.nat(LOG.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const b = Buffer.from(LOG);
        b[i] ^= x;
        check(b);
      }),
      { numRuns: 200 },
    );
  });
});

describe("cocoon attest verify --event-log", () => {
  const intel = new TestIntel();
  const dir = mkdtempSync(join(tmpdir(), "eventlog-"));
  before(() => installTestIntelRootForTestsOnly(intel.rootPem));
  after(() => {
    uninstallTestRoots();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a quote whose RTMRs the log explains verifies with checks.rtmrReplay; another quote fails it by name", async () => {
    const col = join(dir, "collateral.json");
    writeFileSync(col, JSON.stringify(intel.collateral));
    const good = join(dir, "good.quote");
    writeFileSync(good, intel.quote(Buffer.alloc(64, 1), [...WANT.map((h) => Buffer.from(h, "hex")), Buffer.alloc(48)]));
    const ok = await runAttestVerify(good, { collateral: col, eventLog: LOG_FILE });
    assert.equal(ok.verified, true, ok.errors.join("; "));
    assert.equal(ok.checks.rtmrReplay, true);
    assert.deepEqual((ok.details.eventLog as { replayed: string[] }).replayed, ["RTMR0", "RTMR1", "RTMR2"]);
    const other = await runAttestVerify(VECTORS + TDX_V4.quote, { collateral: VECTORS + TDX_V4.collateral, at: TDX_V4.at.toISOString(), eventLog: LOG_FILE });
    assert.equal(other.verified, false);
    assert.equal(other.checks.rtmrReplay, false);
    assert.match(other.errors.join(" "), /the event log does not explain the quote: RTMR0 in the quote is [0-9a-f]{16}\.\.\., the event log replays to a4de2df23e961129/);
  });
});
