// /dev/sev-guest (SNP_GET_REPORT) through the Python ctypes program of src/tee/sev-guest.ts. No SEV-SNP guest here:
// the struct layout and ioctl number are compared with a C probe compiled against the kernel's uapi header
// (linux/sev-guest.h, when a C compiler and the header are installed), and the program runs against a stand-in
// ioctl (a Python wrapper that replaces fcntl.ioctl, reads the request the program built and answers with a
// MSG_REPORT_RSP) on an ordinary file standing in for the device.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { getSevGuestReport, sevGuestLayout } from "../../src/tee/sev-guest.js";
import { TestAmd } from "./test-tee.js";

const HEADER = "/usr/include/linux/sev-guest.h";
const HAVE_CC = spawnSync("cc", ["--version"]).status === 0 && existsSync(HEADER);
const HAVE_PY = spawnSync("python3", ["--version"]).status === 0;

// Stand-in for the kernel: replaces fcntl.ioctl, logs what the program asked for, answers from FAKE_SEV_RESPONSE
// (hex MSG_REPORT_RSP) or fails like the driver does (EIO with exitinfo2 set) when FAKE_SEV_FAIL is set.
const FAKE_PY = `#!/usr/bin/env python3
import sys, os, json, ctypes, fcntl, errno
def fake_ioctl(fd, req, buf, mutate=True):
    user = ctypes.string_at(buf.req_data, 96)
    with open(os.environ["FAKE_SEV_LOG"], "w") as f:
        json.dump({"req": req, "msg_version": buf.msg_version, "user_data": user[:64].hex(), "vmpl": int.from_bytes(user[64:68], "little"), "rsvd": user[68:].hex()}, f)
    if os.environ.get("FAKE_SEV_FAIL"):
        buf.exitinfo2 = (2 << 32) | 0x16
        raise OSError(errno.EIO, "Input/output error")
    data = bytes.fromhex(os.environ["FAKE_SEV_RESPONSE"])[:4000]
    ctypes.memmove(buf.resp_data, data, len(data))
    return 0
fcntl.ioctl = fake_ioctl
code = sys.argv[2]
sys.argv = ["-c"] + sys.argv[3:]
exec(compile(code, "<sev-guest>", "exec"), {"__name__": "__main__"})
`;

const rsp = (status: number, report: Buffer, size = report.length): Buffer => {
  const h = Buffer.alloc(32);
  h.writeUInt32LE(status, 0);
  h.writeUInt32LE(size, 4);
  return Buffer.concat([h, report]);
};

describe("/dev/sev-guest SNP_GET_REPORT through Python ctypes", { skip: HAVE_PY ? false : "python3 is not installed" }, () => {
  const dir = mkdtempSync(join(tmpdir(), "sev-guest-"));
  const fake = join(dir, "fake-python");
  const device = join(dir, "sev-guest");
  const logFile = join(dir, "ioctl.json");
  const amd = new TestAmd();
  before(() => {
    writeFileSync(fake, FAKE_PY);
    chmodSync(fake, 0o755);
    writeFileSync(device, "");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const withEnv = async <T>(env: Record<string, string>, f: () => Promise<T>): Promise<T> => {
    const saved = Object.keys(env).map((k) => [k, process.env[k]] as const);
    Object.assign(process.env, env, { FAKE_SEV_LOG: logFile });
    try {
      return await f();
    } finally {
      for (const [k, v] of saved) if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };

  it("the program's struct layout and ioctl number are the uapi header's", { skip: HAVE_CC ? false : `no C compiler or ${HEADER}` }, async () => {
    const src = join(dir, "probe.c");
    writeFileSync(
      src,
      `#include <stdio.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <linux/sev-guest.h>
int main(void) {
  printf("{\\"report_req\\":%zu,\\"vmpl\\":%zu,\\"rsvd\\":%zu,\\"report_resp\\":%zu,\\"guest_request\\":%zu,\\"req_data\\":%zu,\\"resp_data\\":%zu,\\"exitinfo2\\":%zu,\\"SNP_GET_REPORT\\":%lu}\\n",
    sizeof(struct snp_report_req), offsetof(struct snp_report_req, vmpl), offsetof(struct snp_report_req, rsvd),
    sizeof(struct snp_report_resp), sizeof(struct snp_guest_request_ioctl), offsetof(struct snp_guest_request_ioctl, req_data),
    offsetof(struct snp_guest_request_ioctl, resp_data), offsetof(struct snp_guest_request_ioctl, exitinfo2), (unsigned long)SNP_GET_REPORT);
  return 0;
}
`,
    );
    execFileSync("cc", ["-o", join(dir, "probe"), src]);
    const fromHeader = JSON.parse(execFileSync(join(dir, "probe"), { encoding: "utf8" })) as Record<string, number>;
    assert.deepEqual(await sevGuestLayout(), fromHeader);
    assert.equal(fromHeader.report_req, 96);
    assert.equal(fromHeader.guest_request, 32);
  });

  it("builds the request from the report data and VMPL and returns the report the firmware answered", async () => {
    const reportData = Buffer.alloc(64, 0x5a);
    const report = amd.report(reportData);
    const got = await withEnv({ FAKE_SEV_RESPONSE: rsp(0, report).toString("hex") }, () => getSevGuestReport(reportData, { device, python: fake, vmpl: 2 }));
    assert.deepEqual(got, report);
    const req = JSON.parse(readFileSync(logFile, "utf8")) as { req: number; msg_version: number; user_data: string; vmpl: number; rsvd: string };
    assert.equal(req.user_data, reportData.toString("hex"));
    assert.equal(req.vmpl, 2);
    assert.equal(req.rsvd, "00".repeat(28));
    assert.equal(req.msg_version, 1);
    assert.equal(req.req, (await sevGuestLayout()).SNP_GET_REPORT);
  });

  it("firmware errors, driver errors and a missing device are reported by what failed", async () => {
    const rd = Buffer.alloc(64, 1);
    await withEnv({ FAKE_SEV_RESPONSE: rsp(0x16, Buffer.alloc(0), 0).toString("hex") }, () => assert.rejects(getSevGuestReport(rd, { device, python: fake }), /firmware answered status 0x16/));
    await withEnv({ FAKE_SEV_RESPONSE: rsp(0, Buffer.alloc(16), 5000).toString("hex") }, () => assert.rejects(getSevGuestReport(rd, { device, python: fake }), /report of 5000 bytes \(the response holds at most 3968\)/));
    await withEnv({ FAKE_SEV_RESPONSE: "", FAKE_SEV_FAIL: "1" }, () => assert.rejects(getSevGuestReport(rd, { device, python: fake }), /SNP_GET_REPORT failed: Input\/output error \(firmware error 0x16, VMM error 0x2\)/));
    await assert.rejects(getSevGuestReport(rd, { device: join(dir, "absent") }), /cannot open .*absent/);
    await assert.rejects(getSevGuestReport(Buffer.alloc(10), { device }), /must be 64 bytes/);
    await assert.rejects(getSevGuestReport(rd, { device, python: join(dir, "no-python") }), /not found/);
  });

  it("random firmware responses give a report or a clear error, never a crash", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 64 }), fc.nat(0xffffffff), fc.nat(5000), async (body, status, size) => {
        await withEnv({ FAKE_SEV_RESPONSE: rsp(status % 3 === 0 ? 0 : status, Buffer.from(body), size).toString("hex") }, async () => {
          try {
            const r = await getSevGuestReport(Buffer.alloc(64), { device, python: fake });
            assert.equal(r.length, size);
          } catch (e) {
            assert.match((e as Error).message, /sev-guest: the SEV-SNP firmware/);
          }
        });
      }),
      { numRuns: 15 },
    );
  });
});
