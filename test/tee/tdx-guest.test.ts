// /dev/tdx_guest (TDX_CMD_GET_REPORT0) and the host's Quote Generation Service, through the Python program of
// src/tee/tdx-guest.ts. No TDX guest here: the struct layout and ioctl number are compared with a C probe compiled
// against the kernel's uapi header (linux/tdx-guest.h, when a C compiler and the header are installed); the ioctl is
// a stand-in (a Python wrapper that replaces fcntl.ioctl and answers with a TDREPORT carrying the REPORTDATA it was
// given); the QGS is a stand-in on a Unix socket speaking the QGS message protocol, answering with a real quote
// from the shared vectors.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import {
  QGS_GET_QUOTE_RESP,
  QgsError,
  decodeQgsGetQuoteResponse,
  encodeQgsGetQuoteRequest,
  getTdReport,
  getTdxGuestQuote,
  parseQgsAddress,
  qgsAddressFromConf,
  requestQgsQuote,
  tdxGuestLayout,
} from "../../src/tee/tdx-guest.js";
import { EvidenceFormatError } from "../../src/tee/errors.js";
import { createNodeIdentity } from "../../src/tee/identity.js";
import { verifyTdxQuote } from "../../src/tee/tdx/verify.js";
import { TDX_V4, vec, vecText } from "./helpers.js";
import { FakeTsm, TestIntel } from "./test-tee.js";
import { decodeEvidenceBundle } from "../../src/tee/evidence.js";
import { verifyBundleEvidence } from "../../src/tee/ratls.js";
import { installTestIntelRootForTestsOnly, uninstallTestRoots } from "../../src/tee/roots/test-roots.js";

const HEADER = "/usr/include/linux/tdx-guest.h";
const HAVE_CC = spawnSync("cc", ["--version"]).status === 0 && existsSync(HEADER);
const HAVE_PY = spawnSync("python3", ["--version"]).status === 0;
/** REPORTDATA's offset in a TDREPORT (REPORTMACSTRUCT: type 8, reserved 8, CPUSVN 16, TEE_TCB_INFO_HASH 48, TEE_INFO_HASH 48). */
const REPORTDATA_OFFSET = 128;

// Stand-in for the kernel: replaces fcntl.ioctl, logs the request, answers with a TDREPORT whose REPORTDATA field is
// the request's (the rest a fixed pattern), or fails like the driver does (EIO) when FAKE_TDX_FAIL is set.
const FAKE_PY = `#!/usr/bin/env python3
import sys, os, json, ctypes, fcntl, errno
def fake_ioctl(fd, req, buf, mutate=True):
    with open(os.environ["FAKE_TDX_LOG"], "w") as f:
        json.dump({"req": req, "reportdata": bytes(buf.reportdata).hex()}, f)
    if os.environ.get("FAKE_TDX_FAIL"):
        raise OSError(errno.EIO, "Input/output error")
    report = bytes([0x81]) * ${REPORTDATA_OFFSET} + bytes(buf.reportdata) + bytes([0x42]) * (1024 - ${REPORTDATA_OFFSET} - 64)
    ctypes.memmove(buf.tdreport, report, 1024)
    return 0
fcntl.ioctl = fake_ioctl
code = sys.argv[2]
sys.argv = ["-c"] + sys.argv[3:]
exec(compile(code, "<tdx-guest>", "exec"), {"__name__": "__main__"})
`;

/** A GET_QUOTE_RESP body (without the length prefix). */
function quoteResp(quote: Buffer, o: { id?: Buffer; errorCode?: number; type?: number; major?: number; size?: number } = {}): Buffer {
  const id = o.id ?? Buffer.alloc(0);
  const body = Buffer.alloc(24 + id.length + quote.length);
  body.writeUInt16LE(o.major ?? 1, 0);
  body.writeUInt16LE(1, 2);
  body.writeUInt32LE(o.type ?? QGS_GET_QUOTE_RESP, 4);
  body.writeUInt32LE(o.size ?? body.length, 8);
  body.writeUInt32LE(o.errorCode ?? 0, 12);
  body.writeUInt32LE(id.length, 16);
  body.writeUInt32LE(quote.length, 20);
  id.copy(body, 24);
  quote.copy(body, 24 + id.length);
  return body;
}
const framed = (body: Buffer, announced = body.length): Buffer => {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(announced, 0);
  return Buffer.concat([p, body]);
};

/** Stand-in QGS on a Unix socket: collects one framed request per connection, answers with `answer(request body)`. */
class StandInQgs {
  readonly requests: Buffer[] = [];
  answer: (req: Buffer) => Buffer = () => Buffer.alloc(0);
  private server?: Server;
  constructor(readonly path: string) {}
  get address(): string {
    return `unix:${this.path}`;
  }
  async start(): Promise<void> {
    this.server = createServer((sock: Socket) => {
      let buf = Buffer.alloc(0);
      sock.on("data", (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length < 4 || buf.length < 4 + buf.readUInt32BE(0)) return;
        const req = buf.subarray(4, 4 + buf.readUInt32BE(0));
        this.requests.push(req);
        sock.end(this.answer(req));
      });
      sock.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.path, resolve));
  }
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

describe("QGS message encoding and decoding", () => {
  it("GET_QUOTE_REQ: big-endian length prefix, then the header and the TDREPORT", () => {
    const report = Buffer.alloc(1024, 7);
    const m = encodeQgsGetQuoteRequest(report);
    assert.equal(m.readUInt32BE(0), 16 + 8 + 1024);
    assert.equal(m.length, 4 + 16 + 8 + 1024);
    assert.equal(m.readUInt16LE(4), 1); // major version
    assert.equal(m.readUInt32LE(8), 0); // GET_QUOTE_REQ
    assert.equal(m.readUInt32LE(12), 16 + 8 + 1024); // size of the whole message
    assert.equal(m.readUInt32LE(16), 0); // error code
    assert.equal(m.readUInt32LE(20), 1024); // report size
    assert.equal(m.readUInt32LE(24), 0); // id list size
    assert.deepEqual(m.subarray(28), report);
    assert.throws(() => encodeQgsGetQuoteRequest(Buffer.alloc(1000)), /TDREPORT is 1024 bytes, got 1000/);
  });
  it("GET_QUOTE_RESP gives the quote after the selected id; errors name what was wrong", () => {
    const quote = vec(TDX_V4.quote);
    assert.deepEqual(decodeQgsGetQuoteResponse(quoteResp(quote)), quote);
    assert.deepEqual(decodeQgsGetQuoteResponse(quoteResp(quote, { id: Buffer.alloc(16, 9) })), quote);
    assert.throws(() => decodeQgsGetQuoteResponse(quoteResp(Buffer.alloc(0), { errorCode: 0x12005 })), (e: unknown) => e instanceof QgsError && e.code === 0x12005 && /0x12005 \(QGS_MSG_ERROR_INVALID_TYPE\)/.test(e.message));
    assert.throws(() => decodeQgsGetQuoteResponse(quoteResp(quote, { type: 3 })), /message type 3, expected GET_QUOTE_RESP/);
    assert.throws(() => decodeQgsGetQuoteResponse(quoteResp(quote, { major: 2 })), /message version 2/);
    assert.throws(() => decodeQgsGetQuoteResponse(quoteResp(quote, { size: 99 })), /its header says 99 bytes/);
    assert.throws(() => decodeQgsGetQuoteResponse(quoteResp(quote).subarray(0, 100)), /its header says/);
    assert.throws(() => decodeQgsGetQuoteResponse(quoteResp(Buffer.alloc(0))), /holds no quote/);
    assert.throws(() => decodeQgsGetQuoteResponse(Buffer.alloc(10)), /shorter than the 16-byte message header/);
  });
  it("random bytes, and random headers around random payloads, give a quote or a clear error", () => {
    const check = (body: Buffer): void => {
      try {
        const q = decodeQgsGetQuoteResponse(body);
        assert.ok(q.length > 0 && q.length <= body.length - 24);
      } catch (e) {
        assert.ok(e instanceof EvidenceFormatError || e instanceof QgsError, String(e));
      }
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => check(Buffer.from(b))), { numRuns: 300 });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), fc.nat(2), fc.nat(3), fc.nat(3), (q, id, major, type, err) => {
        const body = quoteResp(Buffer.from(q), { id: Buffer.from(id), major, type, errorCode: err === 0 ? 0 : 0x12000 + err });
        check(body);
        check(body.subarray(0, Math.floor(body.length / 2)));
      }),
      { numRuns: 300 },
    );
  });
  it("QGS addresses: vsock, unix or tcp; the default follows /etc/tdx-attest.conf", () => {
    assert.deepEqual(parseQgsAddress("vsock:2:4050"), { kind: "vsock", rest: "2:4050" });
    assert.equal(parseQgsAddress("tcp:127.0.0.1:4050").kind, "tcp");
    assert.throws(() => parseQgsAddress("vsock:2"), /vsock needs CID:PORT/);
    assert.throws(() => parseQgsAddress("http://qgs"), /not vsock:CID:PORT, unix:PATH or tcp:HOST:PORT/);
    const dir = mkdtempSync(join(tmpdir(), "tdx-conf-"));
    try {
      const conf = join(dir, "tdx-attest.conf");
      assert.equal(qgsAddressFromConf(conf), "vsock:2:4050");
      writeFileSync(conf, "# port = 1\nport = 4052 # trailing text: ignored, as libtdx_attest does\n  port = 4051  \nport=4053\n");
      assert.equal(qgsAddressFromConf(conf), "vsock:2:4051");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("/dev/tdx_guest and the QGS through the Python program", { skip: HAVE_PY ? false : "python3 is not installed" }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tdx-guest-"));
  const fake = join(dir, "fake-python");
  const device = join(dir, "tdx_guest");
  const logFile = join(dir, "ioctl.json");
  const qgs = new StandInQgs(join(dir, "qgs.sock"));
  const quote = vec(TDX_V4.quote);
  before(async () => {
    writeFileSync(fake, FAKE_PY);
    chmodSync(fake, 0o755);
    writeFileSync(device, "");
    process.env.FAKE_TDX_LOG = logFile;
    await qgs.start();
  });
  after(async () => {
    delete process.env.FAKE_TDX_LOG;
    await qgs.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the program's struct layout and ioctl number are the uapi header's", async (t) => {
    const layout = await tdxGuestLayout();
    // The values of include/uapi/linux/tdx-guest.h: 64 + 1024 bytes, _IOWR('T', 1, 1088).
    assert.deepEqual(layout, { report_req: 1088, tdreport: 64, TDX_CMD_GET_REPORT0: 0xc4405401 });
    if (!HAVE_CC) {
      t.diagnostic(`no C compiler or ${HEADER}: compared with the header's values as written, not compiled`);
      return;
    }
    const src = join(dir, "probe.c");
    writeFileSync(
      src,
      `#include <stdio.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <linux/tdx-guest.h>
int main(void) {
  printf("{\\"report_req\\":%zu,\\"tdreport\\":%zu,\\"TDX_CMD_GET_REPORT0\\":%lu}\\n", sizeof(struct tdx_report_req),
    offsetof(struct tdx_report_req, tdreport), (unsigned long)TDX_CMD_GET_REPORT0);
  return 0;
}
`,
    );
    execFileSync("cc", ["-o", join(dir, "probe"), src]);
    assert.deepEqual(layout, JSON.parse(execFileSync(join(dir, "probe"), { encoding: "utf8" })));
  });

  it("TDX_CMD_GET_REPORT0 carries the report data; driver errors and a missing device are named", async () => {
    const rd = Buffer.alloc(64, 0x5a);
    const report = await getTdReport(rd, { device, python: fake });
    assert.equal(report.length, 1024);
    assert.deepEqual(report.subarray(REPORTDATA_OFFSET, REPORTDATA_OFFSET + 64), rd);
    const log = JSON.parse(readFileSync(logFile, "utf8")) as { req: number; reportdata: string };
    assert.equal(log.req, 0xc4405401);
    assert.equal(log.reportdata, rd.toString("hex"));
    process.env.FAKE_TDX_FAIL = "1";
    try {
      await assert.rejects(getTdReport(rd, { device, python: fake }), /tdx_guest: TDX_CMD_GET_REPORT0 failed: Input\/output error/);
    } finally {
      delete process.env.FAKE_TDX_FAIL;
    }
    await assert.rejects(getTdReport(rd, { device: join(dir, "absent") }), /cannot open .*absent/);
    await assert.rejects(getTdReport(Buffer.alloc(10), { device }), /must be 64 bytes/);
    await assert.rejects(getTdReport(rd, { device, python: join(dir, "no-python") }), /not found/);
  });

  it("the QGS receives GET_QUOTE_REQ with the TDREPORT and its quote comes back; the quote still verifies", async () => {
    qgs.answer = () => framed(quoteResp(quote, { id: Buffer.alloc(16, 3) }));
    const rd = Buffer.alloc(64, 0x11);
    const got = await getTdxGuestQuote(rd, { device, python: fake, qgs: qgs.address });
    assert.deepEqual(got, quote);
    const req = qgs.requests.at(-1)!;
    assert.equal(req.readUInt32LE(4), 0); // GET_QUOTE_REQ
    assert.equal(req.readUInt32LE(8), req.length);
    assert.deepEqual(req.subarray(24 + REPORTDATA_OFFSET, 24 + REPORTDATA_OFFSET + 64), rd);
    // What the QGS returned is the verifier's input unchanged.
    assert.equal(verifyTdxQuote(got, { collateral: vecText(TDX_V4.collateral), now: TDX_V4.at }).verified, true);
  });

  it("QGS failures are named: error code, wrong type, truncated or missing answer, oversize, nobody listening", async () => {
    const report = Buffer.alloc(1024, 1);
    const cases: [Buffer, RegExp][] = [
      [framed(quoteResp(Buffer.alloc(0), { errorCode: 0x12001 })), /QGS_MSG_ERROR_UNEXPECTED/],
      [framed(quoteResp(quote, { type: 0 })), /message type 0, expected GET_QUOTE_RESP/],
      [framed(quoteResp(quote)).subarray(0, 4 + 100), /closed the connection after 100 of \d+ bytes of its answer/],
      [Buffer.from([0, 0]), /closed the connection before answering \(2 of 4 length bytes\)/],
      [framed(Buffer.alloc(8), 10_000_000), /announced a 10000000-byte answer \(at most \d+ accepted\)/],
    ];
    for (const [answer, want] of cases) {
      qgs.answer = () => answer;
      await assert.rejects(requestQgsQuote(report, qgs.address), want);
    }
    await assert.rejects(requestQgsQuote(report, `unix:${join(dir, "nobody.sock")}`), /cannot connect to the QGS at unix:/);
    await assert.rejects(getTdxGuestQuote(Buffer.alloc(64), { device, python: fake, qgs: "vsock:x" }), /vsock needs CID:PORT/);
  });

  it("random QGS answers over the socket give a quote or a clear error", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 80 }), fc.boolean(), async (bytes, frame) => {
        const b = Buffer.from(bytes);
        qgs.answer = () => (frame ? framed(b) : b);
        try {
          const q = await requestQgsQuote(Buffer.alloc(1024), qgs.address);
          assert.ok(q.length > 0);
        } catch (e) {
          assert.match((e as Error).message, /QGS answer|Quote Generation Service answered error|QGS at unix:/);
        }
      }),
      { numRuns: 8 },
    );
  });

  it("createNodeIdentity uses /dev/tdx_guest and the QGS only when configfs-tsm is absent", async () => {
    qgs.answer = () => framed(quoteResp(quote));
    const before = qgs.requests.length;
    const legacy = await createNodeIdentity({ role: "worker", platform: "tdx", tsmRoot: join(dir, "no-tsm"), tdxGuestDevice: device, qgsAddress: qgs.address, guestPython: fake });
    assert.deepEqual(legacy.quote, quote);
    assert.equal(qgs.requests.length, before + 1);
    const req = qgs.requests.at(-1)!;
    assert.deepEqual(req.subarray(24 + REPORTDATA_OFFSET, 24 + REPORTDATA_OFFSET + 64), legacy.reportData);

    // A QGS that signs over the TDREPORT's REPORTDATA (a test Intel): the node's evidence verifies end to end.
    const intel = new TestIntel();
    qgs.answer = (r) => framed(quoteResp(intel.quote(r.subarray(24 + REPORTDATA_OFFSET, 24 + REPORTDATA_OFFSET + 64))));
    installTestIntelRootForTestsOnly(intel.rootPem);
    try {
      const id = await createNodeIdentity({ role: "worker", platform: "tdx", tsmRoot: join(dir, "no-tsm"), tdxGuestDevice: device, qgsAddress: qgs.address, guestPython: fake, collateral: intel.collateral });
      const v = verifyBundleEvidence(decodeEvidenceBundle(id.evidence), { now: new Date(), allowDebug: true });
      assert.equal(v.verified, true, v.errors.join("; "));
      assert.equal(v.testRoot, true);
    } finally {
      uninstallTestRoots();
    }

    const tsm = new FakeTsm("tdx_guest", (inblob) => ({ outblob: Buffer.concat([Buffer.from("tsm-quote:"), inblob]) })).start();
    try {
      const viaTsm = await createNodeIdentity({ role: "worker", platform: "tdx", tsmRoot: tsm.root, tdxGuestDevice: device, qgsAddress: qgs.address, guestPython: fake });
      assert.deepEqual(viaTsm.quote, Buffer.concat([Buffer.from("tsm-quote:"), viaTsm.reportData]));
      assert.equal(qgs.requests.length, before + 2, "the QGS is not asked when configfs-tsm is there");
    } finally {
      tsm.stop();
    }
  });
});
