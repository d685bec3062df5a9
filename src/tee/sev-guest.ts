// SEV-SNP reports through the legacy /dev/sev-guest character device (kernels without configfs-tsm, < 6.7): the
// SNP_GET_REPORT ioctl of include/uapi/linux/sev-guest.h, issued by a short Python ctypes program (Node cannot issue
// ioctls without a native addon; gpu-collect.ts reaches NVML the same way). Layout, from the uapi header:
//   struct snp_report_req  { u8 user_data[64]; u32 vmpl; u8 rsvd[28]; }                     96 bytes
//   struct snp_report_resp { u8 data[4000]; }
//   struct snp_guest_request_ioctl { u8 msg_version; u64 req_data; u64 resp_data; u64 exitinfo2; }  32 bytes
//   SNP_GET_REPORT = _IOWR('S', 0x0, struct snp_guest_request_ioctl)
// The response data is the firmware's MSG_REPORT_RSP: u32 status, u32 report size, 24 reserved bytes, the report.
// test/tee/sev-guest.test.ts compiles a probe against the header and compares this layout with it.
import { execFile } from "node:child_process";
import { errorText } from "./errors.js";

export const SEV_GUEST_DEVICE = "/dev/sev-guest";
const TOOL_TIMEOUT_MS = 30_000;

/** argv: "layout" (prints the struct layout as JSON) or "report DEVICE REPORT_DATA_HEX VMPL". Prints one JSON line. */
export const SEV_GUEST_PY = `
import sys, os, json, ctypes, fcntl
class ReportReq(ctypes.Structure):
    _fields_ = [("user_data", ctypes.c_uint8 * 64), ("vmpl", ctypes.c_uint32), ("rsvd", ctypes.c_uint8 * 28)]
class ReportResp(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint8 * 4000)]
class GuestRequest(ctypes.Structure):
    _fields_ = [("msg_version", ctypes.c_uint8), ("req_data", ctypes.c_uint64), ("resp_data", ctypes.c_uint64), ("exitinfo2", ctypes.c_uint64)]
def iowr(t, nr, size):
    return (3 << 30) | (size << 16) | (ord(t) << 8) | nr
SNP_GET_REPORT = iowr("S", 0, ctypes.sizeof(GuestRequest))
def out(o):
    print(json.dumps(o)); sys.exit(0)
if sys.argv[1] == "layout":
    out({"report_req": ctypes.sizeof(ReportReq), "vmpl": ReportReq.vmpl.offset, "rsvd": ReportReq.rsvd.offset,
         "report_resp": ctypes.sizeof(ReportResp), "guest_request": ctypes.sizeof(GuestRequest),
         "req_data": GuestRequest.req_data.offset, "resp_data": GuestRequest.resp_data.offset,
         "exitinfo2": GuestRequest.exitinfo2.offset, "SNP_GET_REPORT": SNP_GET_REPORT})
device, user_data, vmpl = sys.argv[2], bytes.fromhex(sys.argv[3]), int(sys.argv[4])
req, resp = ReportReq(), ReportResp()
ctypes.memmove(req.user_data, user_data, 64)
req.vmpl = vmpl
ioc = GuestRequest(msg_version=1, req_data=ctypes.addressof(req), resp_data=ctypes.addressof(resp), exitinfo2=0)
try:
    fd = os.open(device, os.O_RDWR)
except OSError as e:
    out({"error": "cannot open %s: %s (run as root inside an SEV-SNP guest)" % (device, e.strerror)})
try:
    fcntl.ioctl(fd, SNP_GET_REPORT, ioc, True)
except OSError as e:
    out({"error": "SNP_GET_REPORT failed: %s (firmware error 0x%x, VMM error 0x%x)" % (e.strerror, ioc.exitinfo2 & 0xffffffff, ioc.exitinfo2 >> 32)})
finally:
    os.close(fd)
data = bytes(resp.data)
status, size = int.from_bytes(data[0:4], "little"), int.from_bytes(data[4:8], "little")
if status != 0:
    out({"error": "the SEV-SNP firmware answered status 0x%x to the report request" % status})
if size == 0 or size > len(data) - 32:
    out({"error": "the SEV-SNP firmware reported a report of %d bytes (the response holds at most %d)" % (size, len(data) - 32)})
out({"report": data[32:32 + size].hex()})
`;

export interface SevGuestOptions {
  device?: string;
  python?: string;
  /** VMPL the report is requested at (0 = most privileged; default 0). */
  vmpl?: number;
}

function runPython(python: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(python, ["-c", SEV_GUEST_PY, ...args], { timeout: TOOL_TIMEOUT_MS, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const e = err as NodeJS.ErrnoException;
        reject(new Error(e.code === "ENOENT" ? `${python} not found: /dev/sev-guest is read through a Python ctypes program` : `the /dev/sev-guest helper failed: ${(stderr || e.message).trim().split("\n").slice(-1)[0]}`));
      } else resolve(stdout);
    });
  });
}

function lastJson(stdout: string): Record<string, unknown> {
  try {
    return JSON.parse(stdout.trim().split("\n").slice(-1)[0]) as Record<string, unknown>;
  } catch {
    throw new Error(`the /dev/sev-guest helper printed something unexpected: ${stdout.trim().slice(0, 200)}`);
  }
}

/** The struct layout and ioctl number the Python program uses (compared with the uapi header in tests). */
export async function sevGuestLayout(python = "python3"): Promise<Record<string, number>> {
  return lastJson(await runPython(python, ["layout"])) as Record<string, number>;
}

/** An SEV-SNP attestation report over `reportData` (64 bytes) from /dev/sev-guest's SNP_GET_REPORT ioctl. */
export async function getSevGuestReport(reportData: Buffer, o: SevGuestOptions = {}): Promise<Buffer> {
  if (reportData.length !== 64) throw new Error(`SEV-SNP report data must be 64 bytes, got ${reportData.length}`);
  const vmpl = o.vmpl ?? 0;
  if (!Number.isInteger(vmpl) || vmpl < 0 || vmpl > 3) throw new Error(`VMPL must be 0..3, got ${vmpl}`);
  const device = o.device ?? SEV_GUEST_DEVICE;
  let j: Record<string, unknown>;
  try {
    j = lastJson(await runPython(o.python ?? "python3", ["report", device, reportData.toString("hex"), String(vmpl)]));
  } catch (e) {
    throw new Error(`${device}: ${errorText(e)}`);
  }
  if (typeof j.error === "string") throw new Error(`${device}: ${j.error}`);
  if (typeof j.report !== "string" || !/^([0-9a-f]{2})+$/.test(j.report)) throw new Error(`${device}: the helper returned no report`);
  return Buffer.from(j.report, "hex");
}
