// Hardware evidence through Linux configfs-tsm (/sys/kernel/config/tsm/report, kernel >= 6.7), one interface for
// TDX and SEV-SNP: mkdir an entry, write 64 bytes to `inblob`, read `outblob` (the TDX quote or SEV-SNP report;
// reading it makes the kernel ask the TEE), `auxblob` (SEV-SNP: the host's certificate table with VCEK/ASK/ARK),
// `provider` ("tdx_guest" / "sev_guest") and `generation` (counts writes to inblob). Another process writing the
// same entry between our inblob write and our outblob read would hand us a report over its data: the generation
// read after outblob must be the one our write produced, else we retry.
//
// The legacy character devices need ioctls that Node cannot issue without a native addon; when configfs-tsm is
// absent they are used through short Python ctypes programs: /dev/sev-guest (sev-guest.ts) and /dev/tdx_guest plus
// the host's Quote Generation Service over vsock (tdx-guest.ts).
// Reads are asynchronous so that a stand-in configfs (tests) can answer from the same process.
import { existsSync } from "node:fs";
import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { qgsAddressFromConf } from "./tdx-guest.js";

export const TSM_REPORT_DIR = "/sys/kernel/config/tsm/report";
export type TeePlatform = "tdx" | "sev-snp";
export const PROVIDER_BY_PLATFORM: Record<TeePlatform, string> = { tdx: "tdx_guest", "sev-snp": "sev_guest" };
const PLATFORM_BY_PROVIDER: Record<string, TeePlatform> = { tdx_guest: "tdx", sev_guest: "sev-snp" };
const TDX_ATTEST_CONF_NOTE = "vsock port from /etc/tdx-attest.conf `port=N`, default 4050";
const LEGACY_DEVICES: Record<TeePlatform, string> = { tdx: "/dev/tdx_guest", "sev-snp": "/dev/sev-guest" };
/** GUID of the VCEK entry in the SEV-SNP extended-report certificate table. */
const VCEK_GUID = "63da758d-e664-4564-adc5-f4b93be8accd";
const CERT_TABLE_ENTRY_LEN = 24; // 16 B GUID, u32 offset, u32 length
const GUID_LEN = 16;
/** Attempts when another writer races us on the same entry (the generation moved). */
export const TSM_RACE_ATTEMPTS = 3;
/** How long a fresh entry may take to show its attributes (immediate in the kernel; a stand-in may lag). */
const ENTRY_READY_MS = 2000;
const ENTRY_POLL_MS = 10;

export class NoTeeError extends Error {
  constructor(platform: string, why: string) {
    super(`this machine has no usable ${platform} TEE (${why}). Use --platform sim for development; sim evidence is insecure and production policy refuses it.`);
    this.name = "NoTeeError";
  }
}

export interface TsmReport {
  provider: string;
  /** TDX quote or SEV-SNP report. */
  outblob: Buffer;
  /** SEV-SNP certificate table from the host, when it provides one. */
  auxblob?: Buffer;
  generation: number;
}

export function tsmAvailable(dir = TSM_REPORT_DIR): boolean {
  return existsSync(dir);
}

async function readGeneration(entry: string): Promise<number> {
  const text = (await readFile(join(entry, "generation"), "utf8")).trim();
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) throw new Error(`configfs-tsm entry ${entry}: generation is "${text}", not a number`);
  return n;
}

/** A new entry's `provider` attribute (configfs creates it with the entry; a slower emulation gets ENTRY_READY_MS). */
async function readProvider(entry: string): Promise<string> {
  const deadline = Date.now() + ENTRY_READY_MS;
  for (;;) {
    try {
      return (await readFile(join(entry, "provider"), "utf8")).trim();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, ENTRY_POLL_MS));
    }
  }
}

async function waitForProvider(entry: string, dir: string, platform: TeePlatform): Promise<string> {
  try {
    return await readProvider(entry);
  } catch (e) {
    throw new NoTeeError(platform, `${dir} is not a configfs-tsm report directory (${(e as Error).message})`);
  }
}

/**
 * One report over `reportData` (64 bytes) from configfs-tsm under `dir`. Throws NoTeeError when there is no
 * such TEE here, and an Error naming the cause when the TEE is there but did not answer.
 */
export async function getTsmReport(platform: TeePlatform, reportData: Buffer, dir = TSM_REPORT_DIR): Promise<TsmReport> {
  if (reportData.length !== 64) throw new Error(`configfs-tsm takes 64 bytes of report data, got ${reportData.length}`);
  if (!existsSync(dir)) throw new NoTeeError(platform, `${dir} does not exist`);
  const entry = join(dir, `cocoon-${randomBytes(8).toString("hex")}`);
  try {
    await mkdir(entry);
  } catch (e) {
    throw new NoTeeError(platform, `cannot create ${entry}: ${(e as Error).message}`);
  }
  try {
    const provider = await waitForProvider(entry, dir, platform);
    if (provider !== PROVIDER_BY_PLATFORM[platform]) throw new NoTeeError(platform, `the configfs-tsm provider is ${provider} (${PLATFORM_BY_PROVIDER[provider] ?? "unknown platform"})`);
    for (let attempt = 1; attempt <= TSM_RACE_ATTEMPTS; attempt++) {
      let before: number;
      let outblob: Buffer;
      let after: number;
      try {
        before = await readGeneration(entry);
        await writeFile(join(entry, "inblob"), reportData);
        outblob = await readFile(join(entry, "outblob"));
        after = await readGeneration(entry);
      } catch (e) {
        throw new Error(`configfs-tsm (${provider}) did not produce a report: ${(e as Error).message}. Check that the guest driver and the host quoting service (QGS and PCCS for TDX) are running`);
      }
      if (after !== before + 1) continue; // someone else wrote inblob in between: this outblob may be theirs
      if (outblob.length === 0) throw new Error(`configfs-tsm (${provider}) returned an empty report; check the host quoting service (QGS for TDX)`);
      let auxblob: Buffer | undefined;
      try {
        auxblob = await readFile(join(entry, "auxblob"));
      } catch {
        auxblob = undefined; // TDX has none; SEV-SNP only when the host installed a certificate table
      }
      return { provider, outblob, auxblob: auxblob && auxblob.length > 0 ? auxblob : undefined, generation: after };
    }
    throw new Error(`configfs-tsm entry ${entry} kept changing while it was read (generation moved on each of ${TSM_RACE_ATTEMPTS} attempts): another process is writing it`);
  } finally {
    await rmdir(entry).catch(() => undefined); // configfs removes the attributes with the entry
  }
}

export interface TeeProbe {
  platform: TeePlatform | null;
  /** How the evidence would be collected, when it can be. */
  via?: "configfs-tsm" | "sev-guest-ioctl" | "tdx-guest-ioctl+qgs";
  tsmRoot: string;
  provider?: string;
  /** What was looked at, and why each source is or is not usable. */
  findings: string[];
}

/**
 * What this machine offers: configfs-tsm (and its provider) or a legacy guest device. Never throws; `platform`
 * is null when nothing usable was found, and `findings` says why (for `cocoon attest show --platform auto`).
 */
export async function detectTee(dir = TSM_REPORT_DIR, devices: Record<TeePlatform, string> = LEGACY_DEVICES, qgsAddress = qgsAddressFromConf()): Promise<TeeProbe> {
  const findings: string[] = [];
  if (existsSync(dir)) {
    const entry = join(dir, `cocoon-probe-${randomBytes(6).toString("hex")}`);
    try {
      await mkdir(entry);
      try {
        const provider = await readProvider(entry);
        const platform = PLATFORM_BY_PROVIDER[provider];
        if (platform) {
          findings.push(`${dir}: configfs-tsm with provider ${provider}`);
          return { platform, via: "configfs-tsm", tsmRoot: dir, provider, findings };
        }
        findings.push(`${dir}: configfs-tsm provider "${provider}" is not one this node supports (tdx_guest, sev_guest)`);
      } catch (e) {
        findings.push(`${dir}: no provider attribute (${(e as Error).message}); is a TEE guest driver (tdx_guest, sev-guest) loaded?`);
      } finally {
        await rmdir(entry).catch(() => undefined);
      }
    } catch (e) {
      findings.push(`${dir}: cannot create a report entry (${(e as Error).message}); run as root or grant write access to it`);
    }
  } else {
    findings.push(`${dir}: absent (configfs-tsm needs Linux >= 6.7 inside a TDX or SEV-SNP guest, and configfs mounted at /sys/kernel/config)`);
  }
  let legacy: TeePlatform | null = null;
  for (const [platform, dev] of Object.entries(devices) as [TeePlatform, string][]) {
    if (!existsSync(dev)) {
      findings.push(`${dev}: absent`);
    } else if (platform === "sev-snp") {
      findings.push(`${dev}: present; SEV-SNP reports are requested with its SNP_GET_REPORT ioctl through python3 (no host certificate table that way: the VCEK comes from AMD's KDS)`);
      legacy ??= "sev-snp";
    } else {
      findings.push(`${dev}: present; the TDREPORT comes from its TDX_CMD_GET_REPORT0 ioctl through python3 and the quote from the host's Quote Generation Service at ${qgsAddress} (${TDX_ATTEST_CONF_NOTE})`);
      legacy ??= "tdx";
    }
  }
  if (!legacy) return { platform: null, tsmRoot: dir, findings };
  return { platform: legacy, via: legacy === "tdx" ? "tdx-guest-ioctl+qgs" : "sev-guest-ioctl", tsmRoot: dir, findings };
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
