import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NoTeeError, getTsmQuote, vcekFromCertTable } from "../../src/tee/tsm.js";
import { snpVcek } from "./helpers.js";

describe("configfs-tsm quote source", () => {
  it("reports a missing TEE clearly", () => {
    assert.throws(() => getTsmQuote("tdx", Buffer.alloc(64), join(tmpdir(), "no-such-tsm")), (e: unknown) => e instanceof NoTeeError && /--platform sim/.test((e as Error).message));
  });
  it("refuses a directory that is not a configfs-tsm provider", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsm-"));
    try {
      assert.throws(() => getTsmQuote("sev-snp", Buffer.alloc(64), dir), /no usable sev-snp TEE.*not a configfs-tsm report directory/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it("finds the VCEK in an SEV-SNP certificate table by GUID", () => {
    const vcek = snpVcek();
    const entry = Buffer.alloc(24);
    // GUID 63da758d-e664-4564-adc5-f4b93be8accd in its mixed-endian binary form.
    Buffer.from("8d75da6364e66445adc5f4b93be8accd", "hex").copy(entry, 0);
    const tableLen = 48; // one entry plus the all-zero terminator
    entry.writeUInt32LE(tableLen, 16);
    entry.writeUInt32LE(vcek.length, 20);
    const table = Buffer.concat([entry, Buffer.alloc(24), vcek]);
    assert.deepEqual(vcekFromCertTable(table), vcek);
    assert.equal(vcekFromCertTable(Buffer.alloc(48)), undefined);
  });
});
