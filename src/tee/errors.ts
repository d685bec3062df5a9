// Errors raised by the attestation code. Two kinds:
// - EvidenceFormatError: bytes could not be parsed (truncated, wrong magic, bad lengths). Raised by parsers of
//   untrusted input; it never escapes as a RangeError or TypeError.
// - AttestationError: evidence parsed but a rule refused it. It names the rule, the measured value and a fix.
import { LittleEndianReader } from "../crypto/bytes.js";

/** Thrown by parsers when untrusted bytes are malformed. The message says what was wrong and where. */
export class EvidenceFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EvidenceFormatError";
  }
}

/**
 * A refusal by a verification or policy rule. `rule` is a stable dotted identifier (e.g. `policy.measurement`,
 * `ratls.reportdata`), `measured` is the value that was seen (hex, status name, ...), `fix` tells the operator
 * what to change. The message combines all three so that logs are self-explanatory.
 */
export class AttestationError extends Error {
  readonly rule: string;
  readonly measured: string;
  readonly fix: string;
  constructor(rule: string, detail: string, measured: string, fix: string) {
    super(`attestation refused by rule ${rule}: ${detail} (measured: ${measured}). Fix: ${fix}`);
    this.name = "AttestationError";
    this.rule = rule;
    this.measured = measured;
    this.fix = fix;
  }
}

/** Short description of any thrown value, for verdict error lists. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The little-endian reader of src/crypto/bytes.ts, failing with EvidenceFormatError (what the parsers throw). */
export class EvidenceReader extends LittleEndianReader {
  constructor(buf: Buffer, what: string, start = 0, end = buf.length) {
    super(buf, what, start, end, (m) => new EvidenceFormatError(m));
  }
}
