// Obtains a hardware quote through Linux configfs-tsm (/sys/kernel/config/tsm/report, kernel >= 6.7):
// mkdir an entry, write 64 bytes to `inblob`, read `provider` ("tdx_guest" or "sev_guest") and `outblob`
// (TDX quote or SEV-SNP report); `auxblob` holds the SNP certificate table (VCEK/ASK/ARK) when the host
// provides it. The entry is removed afterwards.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";

export const TSM_REPORT_DIR = "/sys/kernel/config/tsm/report";
const PROVIDER_BY_PLATFORM = { tdx: "tdx_guest", "sev-snp": "sev_guest" } as const;
/** GUID of the VCEK entry in the SEV-SNP extended-report certificate table. */
const VCEK_GUID = "63da758d-e664-4564-adc5-f4b93be8accd";
const CERT_TABLE_ENTRY_LEN = 24; // 16 B GUID, u32 offset, u32 length
const GUID_LEN = 16;

export class NoTeeError extends Error {
  constructor(platform: string, why: string) {
    super(`this machine has no usable ${platform} TEE (${why}). Use --platform sim for development; sim evidence is insecure and production policy refuses it.`);
    this.name = "NoTeeError";
  }
}

export function tsmAvailable(dir = TSM_REPORT_DIR): boolean {
  return existsSync(dir);
}

export function getTsmQuote(platform: "tdx" | "sev-snp", reportData: Buffer, dir = TSM_REPORT_DIR): { quote: Buffer; aux?: Buffer } {
  if (!existsSync(dir)) throw new NoTeeError(platform, `${dir} does not exist`);
  const entry = join(dir, `cocoon-${randomBytes(8).toString("hex")}`);
  try {
    mkdirSync(entry);
  } catch (e) {
    throw new NoTeeError(platform, `cannot create ${entry}: ${(e as Error).message}`);
  }
  try {
    let provider: string;
    try {
      provider = readFileSync(join(entry, "provider"), "utf8").trim();
    } catch (e) {
      throw new NoTeeError(platform, `${dir} is not a configfs-tsm report directory (${(e as Error).message})`);
    }
    if (provider !== PROVIDER_BY_PLATFORM[platform]) throw new NoTeeError(platform, `configfs-tsm provider is ${provider}`);
    let quote: Buffer;
    try {
      writeFileSync(join(entry, "inblob"), reportData);
      quote = readFileSync(join(entry, "outblob"));
    } catch (e) {
      throw new Error(`configfs-tsm (${provider}) did not produce a quote: ${(e as Error).message}. Check that the guest driver and the host quoting service (QGS/PCCS for TDX) are running`);
    }
    const auxPath = join(entry, "auxblob");
    const aux = existsSync(auxPath) ? readFileSync(auxPath) : undefined;
    return { quote, aux: aux && aux.length > 0 ? aux : undefined };
  } finally {
    try {
      rmdirSync(entry);
    } catch {
      /* the kernel removes it with the process otherwise */
    }
  }
}

function guidToBytes(g: string): Buffer {
  const h = g.replace(/-/g, "");
  const b = Buffer.from(h, "hex");
  // GUIDs are stored mixed-endian: first three fields little-endian.
  return Buffer.concat([b.subarray(0, 4).reverse(), b.subarray(4, 6).reverse(), b.subarray(6, 8).reverse(), b.subarray(8)]);
}

/** Extracts the VCEK from an SEV-SNP certificate table (auxblob). Returns undefined when absent. */
export function vcekFromCertTable(table: Buffer): Buffer | undefined {
  const want = guidToBytes(VCEK_GUID);
  for (let p = 0; p + CERT_TABLE_ENTRY_LEN <= table.length; p += CERT_TABLE_ENTRY_LEN) {
    const guid = table.subarray(p, p + GUID_LEN);
    if (guid.every((x) => x === 0)) break;
    const off = table.readUInt32LE(p + GUID_LEN);
    const len = table.readUInt32LE(p + GUID_LEN + 4);
    if (guid.equals(want) && off + len <= table.length) return table.subarray(off, off + len);
  }
  return undefined;
}
