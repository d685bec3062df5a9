// Deterministic Ed25519/X25519 results from whichever backend src/crypto/curve25519.ts loaded (the test runs this
// file twice, with and without COCOON_NO_SODIUM, and compares): printed as JSON on stdout.
import { createHash } from "node:crypto";
import { CURVE25519_BACKEND, ed25519SignerFromSeed, ed25519Verify, x25519, x25519PublicFromPrivate } from "../../src/crypto/curve25519.js";

const bytes = (label: string, i: number) => createHash("sha256").update(`${label}/${i}`).digest();
const out: Record<string, unknown> = { backend: CURVE25519_BACKEND, cases: [] };
for (let i = 0; i < 16; i++) {
  const signer = ed25519SignerFromSeed(bytes("seed", i));
  const message = Buffer.concat([bytes("msg", i), Buffer.alloc(i * 7, i)]);
  const signature = signer.sign(message);
  const a = bytes("x-a", i);
  const b = bytes("x-b", i);
  (out.cases as unknown[]).push({
    publicKey: signer.publicKey.toString("hex"),
    signature: signature.toString("hex"),
    verifies: ed25519Verify(message, signature, signer.publicKey),
    tamperedVerifies: ed25519Verify(Buffer.concat([message, Buffer.of(1)]), signature, signer.publicKey),
    x25519Public: x25519PublicFromPrivate(a).toString("hex"),
    x25519Shared: x25519(a, x25519PublicFromPrivate(b)).toString("hex"),
  });
}
process.stdout.write(JSON.stringify(out));
