// Detects what kind of attestation evidence a file holds, for `cocoon attest verify`. Accepts binary files and
// hex text (nvtrust and virtee ship hex). Kinds:
//   tdx         Intel TDX quote: u16 version 4|5, u16 key type 2, u32 TEE type 0x81
//   sev-snp     AMD SEV-SNP report: exactly 1184 bytes, u32 version 2..5, u32 signature algorithm 1 at 0x34
//   nvidia      SPDM GET_MEASUREMENTS transcript starting 11 e0; or a GPU evidence bundle JSON {"v":1,...}
//   sim         INSECURE development evidence (magic "CCSIMv01")
//   ratls-cert  an X.509 certificate (PEM or DER) carrying Cocoon RA-TLS extensions
import { EvidenceFormatError } from "./errors.js";
import { isSimEvidence } from "./sim.js";
import { SNP_REPORT_LEN } from "./sevsnp.js";
import { TEE_TYPE_TDX } from "./tdx/quote.js";
import { splitPem } from "./x509.js";
import { decodeGpuEvidence } from "./evidence.js";

export type EvidenceKind = "tdx" | "sev-snp" | "nvidia" | "sim" | "ratls-cert";

export interface DetectedEvidence {
  kind: EvidenceKind;
  data: Buffer;
  /** For GPU evidence bundles: the certificate chain that came with it. */
  certChain?: string;
}

const HEX_TEXT = /^[\s0-9a-fA-F]+$/;
const DER_SEQUENCE = 0x30;
const TDX_MIN_LEN = 48;

export function detectEvidence(file: Buffer): DetectedEvidence {
  const text = file.subarray(0, 64).toString("latin1");
  if (text.includes("-----BEGIN CERTIFICATE-----")) {
    const [der] = splitPem(file);
    if (der) return { kind: "ratls-cert", data: der };
  }
  const trimmed = file.toString("latin1").trim();
  if (trimmed.startsWith("{")) {
    try {
      const g = decodeGpuEvidence(Buffer.from(trimmed, "latin1"));
      return { kind: "nvidia", data: g.evidence, certChain: g.certChain };
    } catch {
      throw new EvidenceFormatError('unrecognised JSON evidence: expected a GPU evidence bundle {"v":1,"evidence":hex,"certChain":PEM} (collateral goes in --collateral)');
    }
  }
  const data = trimmed.length > 0 && trimmed.length % 2 === 0 && HEX_TEXT.test(trimmed) ? Buffer.from(trimmed.replace(/\s+/g, ""), "hex") : file;
  if (isSimEvidence(data)) return { kind: "sim", data };
  if (data.length >= 2 && data[0] === 0x11 && data[1] === 0xe0) return { kind: "nvidia", data };
  if (data.length >= TDX_MIN_LEN) {
    const version = data.readUInt16LE(0);
    if ((version === 4 || version === 5) && data.readUInt16LE(2) === 2 && data.readUInt32LE(4) === TEE_TYPE_TDX) return { kind: "tdx", data };
  }
  if (data.length === SNP_REPORT_LEN) {
    const version = data.readUInt32LE(0);
    if (version >= 2 && version <= 5 && data.readUInt32LE(0x34) === 1) return { kind: "sev-snp", data };
  }
  if (data.length > 0 && data[0] === DER_SEQUENCE) return { kind: "ratls-cert", data };
  throw new EvidenceFormatError(
    `unrecognised evidence (${file.length} bytes, starts ${file.subarray(0, 8).toString("hex")}): expected a TDX quote, SEV-SNP report, NVIDIA SPDM evidence, sim evidence or an RA-TLS certificate`,
  );
}
