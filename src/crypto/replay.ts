// Replay refusal at the worker: a sealed request is opened (and answered) at most once per HPKE key, for as long as
// the worker holds that key. Without it a malicious proxy could replay one sealed request to the same worker and
// collect several answers to it (each costs the worker a generation and yields another signed receipt); the
// per-answer salt (stream.ts) already keeps those answers under distinct keys, this stops the extra answers at all.
//
// What is remembered: the request's replay id (seal.ts `OpenedRequest.replayId`: the HPKE `enc` of this worker's
// recipient entry), recorded only AFTER the envelope opened, so nobody can pre-register a victim's id with junk.
// Stored form: a 64-bit fingerprint = first 8 bytes of HMAC-SHA256(per-process random key, replayId), in an
// open-addressing table of u32 pairs (8 bytes per slot, at most half full): no JS object per entry, so nothing for the
// garbage collector to trace. The key is secret, so no one can aim requests at one slot chain or craft a collision;
// an accidental collision refuses one fresh request with probability entries / 2^64 (< 2^-42 at the default cap).
//
// How long: one partition per HPKE key (by public key bytes). Every `admit` names the keys the worker holds now, and
// partitions of keys it no longer holds are dropped: entries live exactly as long as a key that could open them.
// (A worker's HPKE key is fresh per process start and renewed every 12 h; the previous key is kept until the next
// renewal, so a key is held about 24 h. A clock-based expiry would be wrong both ways: too short if a renewal fails
// and the key stays in use, longer than needed after a renewal.)
//
// Bounded memory: at most `maxEntriesPerKey` per partition (default 2^21 = 2,097,152, a 32 MiB table); the worker
// holds 2 keys, so 64 MiB at worst. When a partition is full the cache REFUSES further requests under that key
// ("full") instead of forgetting old entries: anyone can seal requests to a worker's public key, so an evicting
// cache could be flushed on purpose and the victim's request replayed afterwards. Refusal costs availability under
// that key only; the remedy is a new key (an identity renewal starts an empty partition), and `onPressure` fires at
// 75% so the node can renew before it refuses. 2^21 requests per key are ~48 requests/s sustained for 12 h.
import { createHmac, randomBytes } from "node:crypto";

export const DEFAULT_MAX_ENTRIES_PER_KEY = 1 << 21;
export const DEFAULT_PRESSURE_RATIO = 0.75;
const FINGERPRINT_KEY_BYTES = 32;
const INITIAL_SLOTS = 1 << 10;
/** The table grows to stay at most half full (short probe chains). */
const MAX_LOAD = 0.5;

/** fresh: first time (now recorded). replayed: opened before under this key. full: this key's partition is at its cap. */
export type ReplayVerdict = "fresh" | "replayed" | "full";

export interface ReplayCacheOptions {
  /** Most requests remembered per HPKE key; beyond, requests under that key are refused ("full"). */
  maxEntriesPerKey?: number;
  /** Fraction of the cap at which `onPressure` fires, once per key (default 0.75). */
  pressureRatio?: number;
  /** A key's partition passed the pressure mark: renew the identity (new HPKE key) before it fills. */
  onPressure?: (hpkePublicKeyHex: string, entries: number, maxEntries: number) => void;
}

export interface ReplayCacheStats {
  /** HPKE keys with a partition (the keys held that opened something). */
  keys: number;
  entries: number;
  maxEntriesPerKey: number;
  /** Table memory in bytes, all partitions. */
  tableBytes: number;
  refusedReplays: number;
  refusedFull: number;
}

/** 64-bit fingerprints in linear-probing open addressing; (0, 0) marks an empty slot. Insert-only. */
class FingerprintSet {
  private slots = new Uint32Array(INITIAL_SLOTS * 2);
  private mask = INITIAL_SLOTS - 1;
  size = 0;
  pressureSignalled = false;

  get bytes(): number {
    return this.slots.byteLength;
  }

  /** Whether (hi, lo) is in the set. */
  has(hi: number, lo: number): boolean {
    return this.find(hi, lo) < 0;
  }

  insert(hi: number, lo: number): void {
    if ((this.size + 1) / (this.mask + 1) > MAX_LOAD) this.grow();
    const i = this.find(hi, lo);
    if (i < 0) return;
    this.slots[i * 2] = hi;
    this.slots[i * 2 + 1] = lo;
    this.size++;
  }

  /** The slot index where (hi, lo) would go, or -1 when it is already there. */
  private find(hi: number, lo: number): number {
    const s = this.slots;
    for (let i = lo & this.mask; ; i = (i + 1) & this.mask) {
      const h = s[i * 2]!;
      const l = s[i * 2 + 1]!;
      if (h === 0 && l === 0) return i;
      if (h === hi && l === lo) return -1;
    }
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    this.mask = old.length - 1; // old.length / 2 slots before, old.length slots now
    this.size = 0;
    for (let i = 0; i < old.length; i += 2) {
      if (old[i] !== 0 || old[i + 1] !== 0) this.insert(old[i]!, old[i + 1]!);
    }
  }
}

export class ReplayCache {
  readonly maxEntriesPerKey: number;
  private readonly pressureAt: number;
  private readonly fingerprintKey = randomBytes(FINGERPRINT_KEY_BYTES);
  private readonly partitions = new Map<string, FingerprintSet>();
  private readonly hexOf = new WeakMap<Uint8Array, string>();
  private refusedReplays = 0;
  private refusedFull = 0;

  constructor(private readonly opts: ReplayCacheOptions = {}) {
    const max = opts.maxEntriesPerKey ?? DEFAULT_MAX_ENTRIES_PER_KEY;
    if (!Number.isSafeInteger(max) || max < 1 || max > 1 << 28) {
      throw new Error(`replay cache: maxEntriesPerKey must be an integer 1..${1 << 28}, got ${max}`);
    }
    const ratio = opts.pressureRatio ?? DEFAULT_PRESSURE_RATIO;
    if (!(ratio > 0 && ratio <= 1)) throw new Error(`replay cache: pressureRatio must be in (0, 1], got ${ratio}`);
    this.maxEntriesPerKey = max;
    this.pressureAt = Math.max(1, Math.ceil(max * ratio));
  }

  private keyHex(publicKey: Uint8Array): string {
    let h = this.hexOf.get(publicKey);
    if (h === undefined) {
      if (!(publicKey instanceof Uint8Array) || publicKey.byteLength === 0) throw new Error("replay cache: an HPKE public key must be non-empty bytes");
      h = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString("hex");
      this.hexOf.set(publicKey, h);
    }
    return h;
  }

  /** Drops the partitions of keys the worker no longer holds (their requests can no longer be opened). */
  retainOnly(heldKeys: readonly Uint8Array[]): void {
    if (this.partitions.size === 0) return;
    const held = new Set(heldKeys.map((k) => this.keyHex(k)));
    for (const k of this.partitions.keys()) if (!held.has(k)) this.partitions.delete(k);
  }

  /**
   * Records that a request with `replayId` was opened with the HPKE key `openedWith`, one of `heldKeys` (every key the
   * worker can open with now). Call only after the envelope opened. "fresh": serve it. "replayed": refuse (error code `replayed`).
   * "full": refuse; this key has reached its cap and the node should renew its key.
   */
  admit(openedWith: Uint8Array, replayId: Uint8Array, heldKeys: readonly Uint8Array[]): ReplayVerdict {
    if (!(replayId instanceof Uint8Array) || replayId.byteLength === 0) throw new Error("replay cache: the replay id must be non-empty bytes");
    this.retainOnly(heldKeys);
    const keyHex = this.keyHex(openedWith);
    if (!heldKeys.some((k) => this.keyHex(k) === keyHex)) {
      throw new Error("replay cache: the key that opened the request is not among the keys the worker holds");
    }
    const fp = createHmac("sha256", this.fingerprintKey).update(replayId).digest();
    const hi = fp.readUInt32BE(0);
    let lo = fp.readUInt32BE(4);
    if (hi === 0 && lo === 0) lo = 1; // (0, 0) marks an empty slot
    let part = this.partitions.get(keyHex);
    if (!part) this.partitions.set(keyHex, (part = new FingerprintSet()));
    if (part.has(hi, lo)) {
      this.refusedReplays++;
      return "replayed";
    }
    if (part.size >= this.maxEntriesPerKey) {
      this.refusedFull++;
      return "full";
    }
    part.insert(hi, lo);
    if (!part.pressureSignalled && part.size >= this.pressureAt) {
      part.pressureSignalled = true;
      this.opts.onPressure?.(keyHex, part.size, this.maxEntriesPerKey);
    }
    return "fresh";
  }

  /** Requests remembered under one key (0 when it has no partition). */
  entriesFor(publicKey: Uint8Array): number {
    return this.partitions.get(this.keyHex(publicKey))?.size ?? 0;
  }

  stats(): ReplayCacheStats {
    let entries = 0;
    let tableBytes = 0;
    for (const p of this.partitions.values()) {
      entries += p.size;
      tableBytes += p.bytes;
    }
    return {
      keys: this.partitions.size,
      entries,
      maxEntriesPerKey: this.maxEntriesPerKey,
      tableBytes,
      refusedReplays: this.refusedReplays,
      refusedFull: this.refusedFull,
    };
  }
}
