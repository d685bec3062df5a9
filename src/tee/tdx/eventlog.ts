// TDX boot event log (the ACPI CCEL table's log area, /sys/firmware/acpi/tables/data/CCEL) and its replay into
// RTMR0-3. The log is a TCG PC Client crypto-agile log: a first TCG_PCR_EVENT (SHA-1 layout) carrying the
// "Spec ID Event03" header that lists the digest algorithms and their sizes, then TCG_PCR_EVENT2 records:
//   u32 MR index | u32 event type | u32 digest count | count × (u16 algorithm id, digest) | u32 event size | event
// In a CC event log the MR index is 0 = MRTD (never extended by the log), 1..4 = RTMR0..3. Each event other than
// EV_NO_ACTION extends RTMR[index-1] = SHA-384(RTMR ‖ SHA-384 digest of the event), starting from 48 zero bytes.
// The ACPI region is larger than the log and filled with 0xFF after it: trailing 0xFF bytes end the log.
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { EvidenceFormatError, errorText } from "../errors.js";
import type { Verdict } from "../verdict.js";

const EV_NO_ACTION = 0x3;
const ALG_SHA1 = 0x0004;
const ALG_SHA384 = 0x000c;
const SHA384_LEN = 48;
const SPEC_ID_SIGNATURE = "Spec ID Event03\0";
const MAX_EVENTS = 100_000;
const MAX_EVENT_DATA = 16 * 1024 * 1024;
export const RTMR_COUNT = 4;
/** Largest event log a node attaches or a verifier replays (real CCEL logs are tens of KiB; ACPI reserves 64 KiB). */
export const EVENT_LOG_MAX_BYTES = 1024 * 1024;
/** Where Linux exposes the ACPI CCEL table's log area. */
export const CCEL_EVENT_LOG_PATH = "/sys/firmware/acpi/tables/data/CCEL";

export interface CcelEvent {
  /** CC MR index: 1..4 = RTMR0..3. */
  mrIndex: number;
  type: number;
  /** SHA-384 digest of the event (lowercase hex). */
  digest: string;
  data: Buffer;
}

export interface CcelReplay {
  events: CcelEvent[];
  /** RTMR0..3 as replayed from the log (lowercase hex, 96 characters each). */
  rtmr: string[];
  /** Bytes of 0xFF padding after the last event. */
  padding: number;
}

/** Parses a CCEL event log and replays it into RTMR0..3. Throws EvidenceFormatError naming what is malformed. */
export function replayCcelEventLog(log: Buffer): CcelReplay {
  if (log.length > EVENT_LOG_MAX_BYTES) throw new EvidenceFormatError(`TDX event log is ${log.length} bytes; the limit is ${EVENT_LOG_MAX_BYTES}`);
  let p = 0;
  const need = (n: number, what: string) => {
    if (p + n > log.length) throw new EvidenceFormatError(`TDX event log: truncated ${what} at offset ${p}`);
  };
  const u32 = (what: string) => {
    need(4, what);
    const v = log.readUInt32LE(p);
    p += 4;
    return v;
  };
  const u16 = (what: string) => {
    need(2, what);
    const v = log.readUInt16LE(p);
    p += 2;
    return v;
  };
  // First event: TCG_PCR_EVENT with the Spec ID header.
  u32("first event MR index");
  if (u32("first event type") !== EV_NO_ACTION) throw new EvidenceFormatError("TDX event log: the first event is not EV_NO_ACTION (no Spec ID Event03 header)");
  need(20, "first event digest");
  p += 20;
  const headerSize = u32("Spec ID event size");
  need(headerSize, "Spec ID event");
  const header = log.subarray(p, p + headerSize);
  p += headerSize;
  if (header.length < 29 || header.subarray(0, 16).toString("latin1") !== SPEC_ID_SIGNATURE) {
    throw new EvidenceFormatError('TDX event log: the first event is not "Spec ID Event03": only crypto-agile (TCG 2.0) logs are supported');
  }
  const algCount = header.readUInt32LE(24);
  if (algCount < 1 || algCount > 16 || 28 + algCount * 4 > header.length) throw new EvidenceFormatError(`TDX event log: Spec ID header lists ${algCount} digest algorithms`);
  const sizes = new Map<number, number>();
  for (let i = 0; i < algCount; i++) sizes.set(header.readUInt16LE(28 + i * 4), header.readUInt16LE(30 + i * 4));
  if (sizes.get(ALG_SHA384) !== SHA384_LEN) throw new EvidenceFormatError("TDX event log: the Spec ID header does not list SHA-384 (48 bytes); RTMRs are SHA-384");

  const rtmr = Array.from({ length: RTMR_COUNT }, () => Buffer.alloc(SHA384_LEN));
  const events: CcelEvent[] = [];
  let padding = 0;
  while (p < log.length) {
    if (log.subarray(p).every((b) => b === 0xff)) {
      padding = log.length - p;
      break;
    }
    if (events.length >= MAX_EVENTS) throw new EvidenceFormatError(`TDX event log: more than ${MAX_EVENTS} events`);
    const at = p;
    const mrIndex = u32("MR index");
    const type = u32("event type");
    const count = u32("digest count");
    if (count < 1 || count > algCount) throw new EvidenceFormatError(`TDX event log: event at offset ${at} has ${count} digests (the header lists ${algCount} algorithms)`);
    let digest: Buffer | undefined;
    for (let i = 0; i < count; i++) {
      const alg = u16("digest algorithm");
      const size = sizes.get(alg) ?? (alg === ALG_SHA1 ? 20 : undefined);
      if (size === undefined) throw new EvidenceFormatError(`TDX event log: event at offset ${at} uses digest algorithm 0x${alg.toString(16)}, which the header does not list`);
      need(size, "digest");
      if (alg === ALG_SHA384) digest = log.subarray(p, p + size);
      p += size;
    }
    const size = u32("event size");
    if (size > MAX_EVENT_DATA) throw new EvidenceFormatError(`TDX event log: event at offset ${at} claims ${size} bytes of data`);
    need(size, "event data");
    const data = log.subarray(p, p + size);
    p += size;
    if (type === EV_NO_ACTION) continue;
    if (!digest) throw new EvidenceFormatError(`TDX event log: event at offset ${at} carries no SHA-384 digest`);
    if (mrIndex < 1 || mrIndex > RTMR_COUNT) throw new EvidenceFormatError(`TDX event log: event at offset ${at} extends MR index ${mrIndex}; only 1..4 (RTMR0..3) can be extended`);
    const r = mrIndex - 1;
    rtmr[r] = createHash("sha384").update(rtmr[r]).update(digest).digest();
    events.push({ mrIndex, type, digest: digest.toString("hex"), data });
  }
  return { events, rtmr: rtmr.map((b) => b.toString("hex")), padding };
}

/**
 * Compares replayed RTMRs with a quote's. `indices` are the RTMRs the log must explain (RTMR3 is often extended at
 * run time by the guest and left out). Returns the mismatches as readable lines (empty when they all match).
 */
export function rtmrReplayMismatches(replayed: string[], quoted: string[], indices: number[] = [0, 1, 2]): string[] {
  return indices
    .filter((i) => replayed[i] !== quoted[i]?.toLowerCase())
    .map((i) => `RTMR${i} in the quote is ${quoted[i]?.slice(0, 16) ?? "(none)"}..., the event log replays to ${replayed[i].slice(0, 16)}...`);
}

/**
 * Replays a CCEL event log into a TDX verdict: `checks.rtmrReplay`, `details.eventLog` (the replayed RTMRs and each
 * event's MR and SHA-384 digest), and a log that does not explain the quote's RTMRs fails the verdict. RTMR0-2 must
 * match; RTMR3 too when the log extends it (a guest often extends RTMR3 at run time without logging here).
 */
export function applyEventLog(verdict: Verdict, log: Buffer): void {
  let replay: CcelReplay;
  try {
    replay = replayCcelEventLog(log);
  } catch (e) {
    verdict.checks.rtmrReplay = false;
    verdict.errors.push(errorText(e));
    verdict.verified = false;
    return;
  }
  const indices = replay.events.some((e) => e.mrIndex === 4) ? [0, 1, 2, 3] : [0, 1, 2];
  const bad = rtmrReplayMismatches(replay.rtmr, (verdict.measurements.rtmr as string[] | undefined) ?? [], indices);
  verdict.checks.rtmrReplay = bad.length === 0;
  verdict.details.eventLog = {
    events: replay.events.length,
    replayed: indices.map((i) => `RTMR${i}`),
    rtmr: replay.rtmr,
    digests: replay.events.map((e) => ({ rtmr: e.mrIndex - 1, type: e.type, digest: e.digest })),
  };
  if (bad.length) {
    verdict.errors.push(`the event log does not explain the quote: ${bad.join("; ")}`);
    verdict.verified = false;
  }
}

/**
 * Reads this node's CCEL event log to attach to its evidence, without the ACPI region's 0xFF padding. Returns
 * undefined when `path` does not exist and `required` is false (most guests do not expose CCEL yet). Throws a
 * readable error for a log that is too large or does not parse (a node must not present a log peers will refuse).
 */
export function readCcelEventLog(path: string, required: boolean): Buffer | undefined {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`cannot read the TDX event log at ${path}: ${errorText(e)} (give --event-log FILE, or --event-log none to attach none)`);
  }
  // sysfs reports the ACPI region's size; anything far larger is not an event log.
  if (size > EVENT_LOG_MAX_BYTES) throw new Error(`the TDX event log at ${path} is ${size} bytes; the limit is ${EVENT_LOG_MAX_BYTES} (is it the CCEL log?)`);
  const raw = readFileSync(path);
  if (raw.length > EVENT_LOG_MAX_BYTES) throw new Error(`the TDX event log at ${path} is ${raw.length} bytes; the limit is ${EVENT_LOG_MAX_BYTES}`);
  let replay: CcelReplay;
  try {
    replay = replayCcelEventLog(raw);
  } catch (e) {
    throw new Error(`the TDX event log at ${path} is not a CCEL event log: ${errorText(e)}`);
  }
  return raw.subarray(0, raw.length - replay.padding);
}
