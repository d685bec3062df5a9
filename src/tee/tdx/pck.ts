// Intel SGX PCK certificate extension (OID 1.2.840.113741.1.13.1): a SEQUENCE of {OID, value}. We need the
// TCB (.2: SGX TCB component SVNs .2.1-.2.16 as INTEGERs, PCESVN .2.17, CPUSVN .2.18), PCE-ID (.3) and FMSPC (.4).
import { EvidenceFormatError } from "../errors.js";
import { TAG, content, decodeSmallInt, expectTag, parseDer } from "../der.js";
import { certFields, oidValueMap } from "../x509.js";

export const OID_SGX_EXTENSIONS = "1.2.840.113741.1.13.1";
const SGX_TCB_COMPONENTS = 16;

export interface PckInfo {
  fmspc: string; // uppercase hex, as in TCB info
  pceId: string;
  pceSvn: number;
  tcbComponents: number[];
  cpuSvn: Buffer;
  ppid?: Buffer;
}

export function parsePckExtension(certDer: Buffer): PckInfo {
  const ext = certFields(certDer, "PCK certificate").extensions.get(OID_SGX_EXTENSIONS);
  if (!ext) throw new EvidenceFormatError("PCK certificate has no Intel SGX extension (1.2.840.113741.1.13.1)");
  const top = oidValueMap(parseDer(ext.value, "PCK extension"), "PCK extension");
  const need = (oid: string, tag: number) => {
    const v = top.get(`${OID_SGX_EXTENSIONS}.${oid}`);
    if (!v) throw new EvidenceFormatError(`PCK extension lacks ${OID_SGX_EXTENSIONS}.${oid}`);
    return expectTag(v, tag, `PCK extension .${oid}`);
  };
  const tcb = oidValueMap(need("2", TAG.SEQUENCE), "PCK TCB");
  const comps: number[] = [];
  for (let i = 1; i <= SGX_TCB_COMPONENTS; i++) {
    const v = tcb.get(`${OID_SGX_EXTENSIONS}.2.${i}`);
    if (!v) throw new EvidenceFormatError(`PCK TCB lacks SGX component ${i}`);
    comps.push(decodeSmallInt(v, `PCK TCB component ${i}`));
  }
  const pceSvnNode = tcb.get(`${OID_SGX_EXTENSIONS}.2.17`);
  const cpuSvnNode = tcb.get(`${OID_SGX_EXTENSIONS}.2.18`);
  if (!pceSvnNode || !cpuSvnNode) throw new EvidenceFormatError("PCK TCB lacks PCESVN or CPUSVN");
  const fmspc = content(need("4", TAG.OCTET_STRING));
  if (fmspc.length !== 6) throw new EvidenceFormatError(`PCK FMSPC must be 6 bytes, got ${fmspc.length}`);
  const ppid = top.get(`${OID_SGX_EXTENSIONS}.1`);
  return {
    fmspc: fmspc.toString("hex").toUpperCase(),
    pceId: content(need("3", TAG.OCTET_STRING)).toString("hex").toUpperCase(),
    pceSvn: decodeSmallInt(pceSvnNode, "PCK PCESVN"),
    tcbComponents: comps,
    cpuSvn: content(expectTag(cpuSvnNode, TAG.OCTET_STRING, "PCK CPUSVN")),
    ppid: ppid ? content(ppid) : undefined,
  };
}
