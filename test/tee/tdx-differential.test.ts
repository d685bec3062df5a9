// Differential test: our TDX verifier against @phala/dcap-qvl (a second opinion, not the verifier) on the shared
// vectors, at the vectors' evaluation times and at derived times/mutations where both must refuse.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { verifyTdxQuote } from "../../src/tee/tdx/verify.js";
import { TDX_V4, TDX_V5_GO, TDX_V5_OUTDATED, flip, vec, vecText } from "./helpers.js";

const require = createRequire(import.meta.url);
const dcap = require("@phala/dcap-qvl") as {
  verify(q: Buffer, c: unknown, nowSecs: number): { status: string; advisory_ids: string[]; report: { data: any } };
};

function oracle(quote: Buffer, collateralFile: string, at: Date): { ok: boolean; status?: string; advisories?: string[]; reportData?: string; error?: string } {
  try {
    const r = dcap.verify(quote, JSON.parse(vecText(collateralFile)), Math.floor(at.getTime() / 1000));
    const d = r.report.data.reportData ?? r.report.data.base?.reportData;
    return { ok: true, status: r.status, advisories: r.advisory_ids, reportData: Buffer.from(d).toString("hex") };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

const cases: { name: string; quote: () => Buffer; collateral: string; at: Date }[] = [
  { name: "v4 UpToDate", quote: () => vec(TDX_V4.quote), collateral: TDX_V4.collateral, at: TDX_V4.at },
  { name: "v5 TCB not supported", quote: () => vec(TDX_V5_OUTDATED.quote), collateral: TDX_V5_OUTDATED.collateral, at: TDX_V5_OUTDATED.at },
  { name: "v5 go-tdx-guest UpToDate", quote: () => vec(TDX_V5_GO.quote), collateral: TDX_V5_GO.collateral, at: TDX_V5_GO.at },
  { name: "v4 expired collateral", quote: () => vec(TDX_V4.quote), collateral: TDX_V4.collateral, at: new Date("2025-08-01T00:00:00Z") },
  { name: "v4 flipped TD report byte", quote: () => flip(vec(TDX_V4.quote), 200), collateral: TDX_V4.collateral, at: TDX_V4.at },
  { name: "v5 flipped header byte", quote: () => flip(vec(TDX_V5_GO.quote), 30), collateral: TDX_V5_GO.collateral, at: TDX_V5_GO.at },
  { name: "v4 with v5 collateral (wrong FMSPC)", quote: () => vec(TDX_V4.quote), collateral: TDX_V5_GO.collateral, at: TDX_V5_GO.at },
];

describe("TDX verdicts agree with @phala/dcap-qvl", () => {
  for (const c of cases) {
    it(c.name, () => {
      const q = c.quote();
      const ours = verifyTdxQuote(q, { collateral: vecText(c.collateral), now: c.at });
      const theirs = oracle(q, c.collateral, c.at);
      assert.equal(ours.verified, theirs.ok, `ours: ${ours.status} ${ours.errors.join("; ")} / dcap-qvl: ${theirs.error ?? theirs.status}`);
      if (theirs.ok) {
        assert.equal(ours.status, theirs.status);
        assert.deepEqual(ours.advisoryIds, [...(theirs.advisories ?? [])].sort());
        assert.equal(ours.reportData, theirs.reportData);
      }
    });
  }
});
