// TDX quotes on kernels without configfs-tsm (< 6.7): the legacy /dev/tdx_guest device plus the host's Quote
// Generation Service (QGS), the way Intel's libtdx_attest does it.
// 1. TDX_CMD_GET_REPORT0 (include/uapi/linux/tdx-guest.h) gives the 1024-byte TDREPORT over our REPORTDATA:
//      struct tdx_report_req { u8 reportdata[64]; u8 tdreport[1024]; }            1088 bytes
//      TDX_CMD_GET_REPORT0 = _IOWR('T', 1, struct tdx_report_req)                  0xc4405401
//    A TDREPORT is MAC'd for this CPU only; it is not evidence a peer can check.
// 2. The QGS turns it into a quote (signed by the TD Quoting Enclave). It listens on vsock (host CID 2, port 4050
//    unless /etc/tdx-attest.conf says `port=N`). One message each way, each a 4-byte big-endian length then the body:
//      header { u16 major_version = 1; u16 minor_version; u32 type; u32 size (whole body); u32 error_code }  16 B
//      GET_QUOTE_REQ  (type 0): header, u32 report_size, u32 id_list_size, report, id list
//      GET_QUOTE_RESP (type 1): header, u32 selected_id_size, u32 quote_size, selected id, quote
//    (qgs_msg_lib in intel/SGXDataCenterAttestationPrimitives; fields little-endian like the structs they are.)
// Node can issue neither the ioctl nor an AF_VSOCK connection without a native addon, so both go through a short
// Python program (as sev-guest.ts and gpu-collect.ts do); the QGS messages are built and parsed here, in TypeScript.
// The QGS address is a parameter (vsock:CID:PORT, unix:PATH, tcp:HOST:PORT) so that tests use a stand-in QGS.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { EvidenceFormatError, errorText } from "./errors.js";

export const TDX_GUEST_DEVICE = "/dev/tdx_guest";
export const TDX_ATTEST_CONF = "/etc/tdx-attest.conf";
export const QGS_HOST_CID = 2;
export const QGS_DEFAULT_PORT = 4050;
export const TDREPORT_LEN = 1024;
export const QGS_MSG_MAJOR_VERSION = 1;
export const QGS_GET_QUOTE_REQ = 0;
export const QGS_GET_QUOTE_RESP = 1;
const QGS_HEADER_LEN = 16;
const QGS_QUOTE_RESP_FIXED_LEN = QGS_HEADER_LEN + 8;
/** Largest QGS answer accepted (a quote with its PCK chain is ~5-10 KiB). */
export const QGS_MAX_MESSAGE = 256 * 1024;
const TOOL_TIMEOUT_MS = 60_000;
/** How long the QGS may take to answer (quote generation asks the Quoting Enclave; seconds at most). */
const QGS_TIMEOUT_S = 30;

/** qgs_msg_error_t values, for messages. */
const QGS_ERRORS: Record<number, string> = {
  0x12001: "QGS_MSG_ERROR_UNEXPECTED",
  0x12002: "QGS_MSG_ERROR_OUT_OF_MEMORY",
  0x12003: "QGS_MSG_ERROR_INVALID_PARAMETER",
  0x12004: "QGS_MSG_ERROR_INVALID_VERSION",
  0x12005: "QGS_MSG_ERROR_INVALID_TYPE",
  0x12006: "QGS_MSG_ERROR_INVALID_SIZE",
  0x12007: "QGS_MSG_ERROR_INVALID_CODE",
};

/**
 * argv: "layout" | "report DEVICE REPORTDATA_HEX" | "qgs ADDRESS FRAMED_REQUEST_HEX TIMEOUT_S MAX_BYTES".
 * Prints one JSON line: the layout, {"tdreport": hex}, {"response": hex (body without the length prefix)} or {"error"}.
 */
export const TDX_GUEST_PY = `
import sys, os, json, ctypes, fcntl, socket
class ReportReq(ctypes.Structure):
    _fields_ = [("reportdata", ctypes.c_uint8 * 64), ("tdreport", ctypes.c_uint8 * 1024)]
def iowr(t, nr, size):
    return (3 << 30) | (size << 16) | (ord(t) << 8) | nr
TDX_CMD_GET_REPORT0 = iowr("T", 1, ctypes.sizeof(ReportReq))
def out(o):
    print(json.dumps(o)); sys.exit(0)
cmd = sys.argv[1]
if cmd == "layout":
    out({"report_req": ctypes.sizeof(ReportReq), "tdreport": ReportReq.tdreport.offset, "TDX_CMD_GET_REPORT0": TDX_CMD_GET_REPORT0})
if cmd == "report":
    device, reportdata = sys.argv[2], bytes.fromhex(sys.argv[3])
    req = ReportReq()
    ctypes.memmove(req.reportdata, reportdata, 64)
    try:
        fd = os.open(device, os.O_RDWR)
    except OSError as e:
        out({"error": "cannot open %s: %s (run as root inside a TDX guest)" % (device, e.strerror)})
    try:
        fcntl.ioctl(fd, TDX_CMD_GET_REPORT0, req, True)
    except OSError as e:
        out({"error": "TDX_CMD_GET_REPORT0 failed: %s" % e.strerror})
    finally:
        os.close(fd)
    out({"tdreport": bytes(req.tdreport).hex()})
if cmd == "qgs":
    addr, request, timeout, limit = sys.argv[2], bytes.fromhex(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    kind, _, rest = addr.partition(":")
    try:
        if kind == "vsock":
            cid, port = rest.split(":")
            s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM); target = (int(cid), int(port))
        elif kind == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); target = rest
        else:
            host, _, port = rest.rpartition(":")
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM); target = (host, int(port))
        s.settimeout(timeout)
        s.connect(target)
    except (OSError, ValueError) as e:
        out({"error": "cannot connect to the QGS at %s: %s" % (addr, getattr(e, "strerror", None) or e)})
    def recv_exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(min(65536, n - len(buf)))
            if not chunk:
                break
            buf += chunk
        return buf
    try:
        s.sendall(request)
        prefix = recv_exact(4)
        if len(prefix) < 4:
            out({"error": "the QGS at %s closed the connection before answering (%d of 4 length bytes)" % (addr, len(prefix))})
        size = int.from_bytes(prefix, "big")
        if size > limit:
            out({"error": "the QGS at %s announced a %d-byte answer (at most %d accepted)" % (addr, size, limit)})
        body = recv_exact(size)
        if len(body) < size:
            out({"error": "the QGS at %s closed the connection after %d of %d bytes of its answer" % (addr, len(body), size)})
    except socket.timeout:
        out({"error": "the QGS at %s did not answer within %gs" % (addr, timeout)})
    except OSError as e:
        out({"error": "talking to the QGS at %s failed: %s" % (addr, e.strerror or e)})
    finally:
        s.close()
    out({"response": body.hex()})
out({"error": "unknown command %s" % cmd})
`;

export interface TdxGuestOptions {
  device?: string;
  python?: string;
  /** QGS address: vsock:CID:PORT, unix:PATH or tcp:HOST:PORT (default: qgsAddressFromConf()). */
  qgs?: string;
}

/**
 * The QGS address: vsock to the host (CID 2), port from /etc/tdx-attest.conf, else 4050 (the port QGS listens on by
 * default). The file is read as libtdx_attest reads it: the first line `port = N` (whitespace allowed around `=`,
 * nothing after the number), lines starting with `#` skipped. (libtdx_attest itself uses vsock only when the file
 * names a port, and otherwise the TDX_CMD_GET_QUOTE ioctl of some vendor kernels, which this node does not use.)
 */
export function qgsAddressFromConf(confPath = TDX_ATTEST_CONF): string {
  let text = "";
  try {
    text = readFileSync(confPath, "utf8");
  } catch {
    text = ""; // no config file: the default port
  }
  for (const line of text.split("\n")) {
    if (/^\s*#/.test(line)) continue;
    const m = /^\s*port\s*=\s*(\d{1,10})\s*$/.exec(line);
    if (m && Number(m[1]) > 0 && Number(m[1]) < 2 ** 32) return `vsock:${QGS_HOST_CID}:${Number(m[1])}`;
  }
  return `vsock:${QGS_HOST_CID}:${QGS_DEFAULT_PORT}`;
}

/** Checks a QGS address before a Python process is started for it. */
export function parseQgsAddress(addr: string): { kind: "vsock" | "unix" | "tcp"; rest: string } {
  const m = /^(vsock|unix|tcp):(.+)$/.exec(addr);
  if (!m) throw new Error(`QGS address ${JSON.stringify(addr)} is not vsock:CID:PORT, unix:PATH or tcp:HOST:PORT`);
  const kind = m[1] as "vsock" | "unix" | "tcp";
  if (kind === "vsock" && !/^\d+:\d+$/.test(m[2])) throw new Error(`QGS address ${addr}: vsock needs CID:PORT, e.g. vsock:2:4050`);
  if (kind === "tcp" && !/^.+:\d+$/.test(m[2])) throw new Error(`QGS address ${addr}: tcp needs HOST:PORT`);
  return { kind, rest: m[2] };
}

/** The framed GET_QUOTE_REQ for a TDREPORT: 4-byte big-endian length, then the message (no id list). */
export function encodeQgsGetQuoteRequest(tdreport: Buffer): Buffer {
  if (tdreport.length !== TDREPORT_LEN) throw new Error(`a TDREPORT is ${TDREPORT_LEN} bytes, got ${tdreport.length}`);
  const size = QGS_HEADER_LEN + 8 + tdreport.length;
  const m = Buffer.alloc(4 + size);
  m.writeUInt32BE(size, 0);
  m.writeUInt16LE(QGS_MSG_MAJOR_VERSION, 4);
  m.writeUInt16LE(0, 6); // minor version: the QGS checks the major only
  m.writeUInt32LE(QGS_GET_QUOTE_REQ, 8);
  m.writeUInt32LE(size, 12);
  m.writeUInt32LE(0, 16); // error_code: requests carry 0
  m.writeUInt32LE(tdreport.length, 20);
  m.writeUInt32LE(0, 24); // id_list_size: no id list, the QGS uses its default Quoting Enclave
  tdreport.copy(m, 28);
  return m;
}

/** The QGS's refusal, with its qgs_msg_error_t code. */
export class QgsError extends Error {
  constructor(readonly code: number) {
    super(`the Quote Generation Service answered error 0x${code.toString(16)}${QGS_ERRORS[code] ? ` (${QGS_ERRORS[code]})` : ""}; check the QGS log on the host (qgsd) and its PCCS configuration`);
    this.name = "QgsError";
  }
}

/** The quote in a GET_QUOTE_RESP body (the message without its length prefix). Throws on anything else. */
export function decodeQgsGetQuoteResponse(body: Buffer): Buffer {
  const bad = (why: string): never => {
    throw new EvidenceFormatError(`QGS answer (${body.length} bytes): ${why}`);
  };
  if (body.length < QGS_HEADER_LEN) bad(`shorter than the ${QGS_HEADER_LEN}-byte message header`);
  const major = body.readUInt16LE(0);
  const type = body.readUInt32LE(4);
  const size = body.readUInt32LE(8);
  const errorCode = body.readUInt32LE(12);
  if (major !== QGS_MSG_MAJOR_VERSION) bad(`message version ${major}, expected ${QGS_MSG_MAJOR_VERSION}`);
  if (type !== QGS_GET_QUOTE_RESP) bad(`message type ${type}, expected GET_QUOTE_RESP (${QGS_GET_QUOTE_RESP})`);
  if (size !== body.length) bad(`its header says ${size} bytes`);
  if (errorCode !== 0) throw new QgsError(errorCode);
  if (body.length < QGS_QUOTE_RESP_FIXED_LEN) bad(`shorter than a GET_QUOTE_RESP (${QGS_QUOTE_RESP_FIXED_LEN} bytes)`);
  const idSize = body.readUInt32LE(16);
  const quoteSize = body.readUInt32LE(20);
  if (quoteSize === 0) bad("it holds no quote");
  if (QGS_QUOTE_RESP_FIXED_LEN + idSize + quoteSize !== body.length) bad(`selected id (${idSize}) and quote (${quoteSize}) do not fill the message`);
  return Buffer.from(body.subarray(QGS_QUOTE_RESP_FIXED_LEN + idSize));
}

function runPython(python: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(python, ["-c", TDX_GUEST_PY, ...args], { timeout: TOOL_TIMEOUT_MS, maxBuffer: 4 * QGS_MAX_MESSAGE }, (err, stdout, stderr) => {
      if (err) {
        const e = err as NodeJS.ErrnoException;
        reject(new Error(e.code === "ENOENT" ? `${python} not found: /dev/tdx_guest and the QGS are reached through a Python program` : `the /dev/tdx_guest helper failed: ${(stderr || e.message).trim().split("\n").slice(-1)[0]}`));
      } else resolve(stdout);
    });
  });
}

async function runJson(python: string, args: string[]): Promise<Record<string, unknown>> {
  const stdout = await runPython(python, args);
  let j: unknown;
  try {
    j = JSON.parse(stdout.trim().split("\n").slice(-1)[0]);
  } catch {
    throw new Error(`the /dev/tdx_guest helper printed something unexpected: ${stdout.trim().slice(0, 200)}`);
  }
  if (typeof j !== "object" || j === null) throw new Error("the /dev/tdx_guest helper printed no JSON object");
  const o = j as Record<string, unknown>;
  if (typeof o.error === "string") throw new Error(o.error);
  return o;
}

function hexField(o: Record<string, unknown>, key: string): Buffer {
  const v = o[key];
  if (typeof v !== "string" || !/^([0-9a-f]{2})*$/.test(v)) throw new Error(`the /dev/tdx_guest helper returned no ${key}`);
  return Buffer.from(v, "hex");
}

/** The struct layout and ioctl number the Python program uses (compared with the uapi header in tests). */
export async function tdxGuestLayout(python = "python3"): Promise<Record<string, number>> {
  return (await runJson(python, ["layout"])) as Record<string, number>;
}

/** The TDREPORT over `reportData` (64 bytes) from /dev/tdx_guest's TDX_CMD_GET_REPORT0. */
export async function getTdReport(reportData: Buffer, o: TdxGuestOptions = {}): Promise<Buffer> {
  if (reportData.length !== 64) throw new Error(`TDX report data must be 64 bytes, got ${reportData.length}`);
  const device = o.device ?? TDX_GUEST_DEVICE;
  try {
    const r = hexField(await runJson(o.python ?? "python3", ["report", device, reportData.toString("hex")]), "tdreport");
    if (r.length !== TDREPORT_LEN) throw new Error(`the TDREPORT is ${r.length} bytes, expected ${TDREPORT_LEN}`);
    return r;
  } catch (e) {
    throw new Error(`${device}: ${errorText(e)}`);
  }
}

/** One GET_QUOTE exchange with the QGS at `qgs`: the quote for `tdreport`. */
export async function requestQgsQuote(tdreport: Buffer, qgs: string, python = "python3"): Promise<Buffer> {
  parseQgsAddress(qgs);
  const request = encodeQgsGetQuoteRequest(tdreport);
  const o = await runJson(python, ["qgs", qgs, request.toString("hex"), String(QGS_TIMEOUT_S), String(QGS_MAX_MESSAGE)]);
  return decodeQgsGetQuoteResponse(hexField(o, "response"));
}

/** A TDX quote over `reportData`: TDREPORT from /dev/tdx_guest, quote from the host's QGS. */
export async function getTdxGuestQuote(reportData: Buffer, o: TdxGuestOptions = {}): Promise<Buffer> {
  const qgs = o.qgs ?? qgsAddressFromConf();
  parseQgsAddress(qgs);
  const tdreport = await getTdReport(reportData, o);
  try {
    return await requestQgsQuote(tdreport, qgs, o.python);
  } catch (e) {
    throw new Error(`TDX quote from the QGS at ${qgs}: ${errorText(e)}`, { cause: e });
  }
}
