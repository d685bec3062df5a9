// Digests that usage receipts sign: one over the sealed request bytes, one over the sealed response chunks.
// Worker, proxy and client each compute them from the bytes they handled; equal digests mean they saw the same traffic.
import { createHash, type Hash } from "node:crypto";
import { toHex } from "./bytes.js";

export const DIGEST_BYTES = 32;

/** requestDigest = lowercase hex SHA-256 of the encoded sealed request (exactly the bytes sent on the wire). */
export function requestDigest(sealedRequestBytes: Uint8Array): string {
  return createHash("sha256").update(sealedRequestBytes).digest("hex");
}

/**
 * Running responseDigest over sealed chunks in stream order:
 *   SHA-256( u32be(len(chunk_0)) || chunk_0 || u32be(len(chunk_1)) || chunk_1 || ... )
 * The length prefix keeps chunk boundaries unambiguous (two chunks "ab","c" differ from "a","bc").
 * With no chunks it is SHA-256 of the empty string.
 */
export class ResponseDigest {
  private readonly hash: Hash = createHash("sha256");
  private readonly lengthPrefix = Buffer.alloc(4);
  private count = 0;

  update(sealedChunk: Uint8Array): void {
    this.lengthPrefix.writeUInt32BE(sealedChunk.byteLength, 0);
    this.hash.update(this.lengthPrefix);
    this.hash.update(sealedChunk);
    this.count++;
  }

  /** How many chunks were fed in. */
  get chunks(): number {
    return this.count;
  }

  /** Current value as lowercase hex; does not finalize, so updates may continue. */
  hex(): string {
    return this.hash.copy().digest("hex");
  }

  bytes(): Uint8Array {
    return new Uint8Array(this.hash.copy().digest());
  }
}

export { toHex };
