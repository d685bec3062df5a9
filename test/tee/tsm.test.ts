import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NoTeeError, detectTee, getTsmReport, vcekFromCertTable } from "../../src/tee/tsm.js";
import { snpVcek } from "./helpers.js";
import { FakeTsm } from "./test-tee.js";

describe("configfs-tsm evidence source", () => {
  const fake = new FakeTsm("tdx_guest", (inblob) => ({ outblob: Buffer.concat([Buffer.from("quote-over:"), inblob]) })).start();
  after(() => fake.stop());

  it("reports a missing TEE clearly", async () => {
    await assert.rejects(getTsmReport("tdx", Buffer.alloc(64), join(tmpdir(), "no-such-tsm")), (e: unknown) => e instanceof NoTeeError && /--platform sim/.test((e as Error).message));
  });
  it("refuses a directory that is not a configfs-tsm provider", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsm-"));
    try {
      await assert.rejects(getTsmReport("sev-snp", Buffer.alloc(64), dir), /no usable sev-snp TEE.*not a configfs-tsm report directory/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it("returns the report over the 64 bytes it wrote, with the generation that write produced", async () => {
    const rd = Buffer.alloc(64, 7);
    const r = await getTsmReport("tdx", rd, fake.root);
    assert.equal(r.provider, "tdx_guest");
    assert.deepEqual(r.outblob, Buffer.concat([Buffer.from("quote-over:"), rd]));
    assert.equal(r.generation, 1);
  });
  it("a provider of another platform is refused with what it is", async () => {
    await assert.rejects(getTsmReport("sev-snp", Buffer.alloc(64), fake.root), /provider is tdx_guest \(tdx\)/);
  });
  it("retries when another writer moved the generation between our write and our read", async () => {
    fake.raceFirst = fake.served + 1;
    const before = fake.served;
    const r = await getTsmReport("tdx", Buffer.alloc(64, 1), fake.root);
    assert.equal(fake.served - before, 2, "the first report was thrown away");
    assert.deepEqual(r.outblob.subarray(-64), Buffer.alloc(64, 1));
  });
  it("gives up with a clear error when the entry keeps changing", async () => {
    fake.raceFirst = fake.served + 10;
    await assert.rejects(getTsmReport("tdx", Buffer.alloc(64), fake.root), /kept changing while it was read.*another process/);
    fake.raceFirst = 0;
  });
  it("refuses report data that is not 64 bytes", async () => {
    await assert.rejects(getTsmReport("tdx", Buffer.alloc(32), fake.root), /64 bytes of report data, got 32/);
  });
  it("detectTee names the platform it found, or says why there is none", async () => {
    const found = await detectTee(fake.root, { tdx: "/nonexistent/tdx_guest", "sev-snp": "/nonexistent/sev-guest" });
    assert.equal(found.platform, "tdx");
    assert.equal(found.via, "configfs-tsm");
    const none = await detectTee(join(tmpdir(), "no-such-tsm"), { tdx: "/nonexistent/tdx_guest", "sev-snp": "/nonexistent/sev-guest" });
    assert.equal(none.platform, null);
    assert.match(none.findings.join("\n"), /absent \(configfs-tsm needs Linux >= 6\.7/);
    assert.match(none.findings.join("\n"), /\/nonexistent\/tdx_guest: absent/);
    // /dev/tdx_guest without configfs-tsm: TDREPORT by ioctl, quote from the host's QGS (src/tee/tdx-guest.ts).
    const tdx = await detectTee(join(tmpdir(), "no-such-tsm"), { tdx: "/dev/null", "sev-snp": "/nonexistent/sev-guest" }, "vsock:2:4051");
    assert.equal(tdx.platform, "tdx");
    assert.equal(tdx.via, "tdx-guest-ioctl+qgs");
    assert.match(tdx.findings.join("\n"), /\/dev\/null: present; the TDREPORT comes from its TDX_CMD_GET_REPORT0 ioctl .* Quote Generation Service at vsock:2:4051/);
    // /dev/sev-guest without configfs-tsm: used through its SNP_GET_REPORT ioctl (src/tee/sev-guest.ts).
    const legacy = await detectTee(join(tmpdir(), "no-such-tsm"), { tdx: "/nonexistent/tdx_guest", "sev-snp": "/dev/null" });
    assert.equal(legacy.platform, "sev-snp");
    assert.equal(legacy.via, "sev-guest-ioctl");
    assert.match(legacy.findings.join("\n"), /\/dev\/null: present; SEV-SNP reports are requested with its SNP_GET_REPORT ioctl/);
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
