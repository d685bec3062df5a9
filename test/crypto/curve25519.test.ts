// Ed25519 and X25519 give the same bytes from libsodium and from node:crypto (RFC 8032 signatures are deterministic,
// X25519 is a function), so either backend interoperates with the other and with the TON contracts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createPrivateKey, createPublicKey, diffieHellman, sign, verify } from "node:crypto";
import fc from "fast-check";
import { CURVE25519_BACKEND, ed25519SignerFromSeed, ed25519Verify, x25519, x25519Generate, x25519PublicFromPrivate } from "../../src/crypto/curve25519.js";
import { nodeEntry } from "../helpers/entry.js";

const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");
const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");
const nodeEdKey = (seed: Uint8Array) => createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: "der", type: "pkcs8" });
const nodeXKey = (sk: Uint8Array) => createPrivateKey({ key: Buffer.concat([PKCS8_X25519, sk]), format: "der", type: "pkcs8" });

test(`Ed25519 (${CURVE25519_BACKEND}) signs byte-for-byte like node:crypto and verifies its signatures`, () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), (seed, message) => {
      const signer = ed25519SignerFromSeed(seed);
      const key = nodeEdKey(seed);
      const theirs = sign(null, message, key);
      assert.deepEqual(signer.sign(message), theirs);
      assert.deepEqual(signer.publicKey, Buffer.from(createPublicKey(key).export({ format: "der", type: "spki" })).subarray(-32));
      assert.ok(ed25519Verify(message, theirs, signer.publicKey));
      assert.ok(verify(null, message, createPublicKey(key), signer.sign(message)));
      const bad = Buffer.from(theirs);
      bad[message.length % 64]! ^= 1;
      assert.ok(!ed25519Verify(message, bad, signer.publicKey));
    }),
    { numRuns: 200 },
  );
});

test("Ed25519 verification never throws on junk: wrong sizes, non-points, random bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 40 }), (m, s, k) => {
      assert.equal(typeof ed25519Verify(m, s, k), "boolean");
    }),
    { numRuns: 300 },
  );
  assert.equal(ed25519Verify(Buffer.from("x"), Buffer.alloc(64), Buffer.alloc(32, 0xff)), false);
});

test(`X25519 (${CURVE25519_BACKEND}) agrees with node:crypto; a low-order public key is refused`, () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (a, b) => {
      const pubB = x25519PublicFromPrivate(b);
      assert.deepEqual(pubB, Buffer.from(createPublicKey(nodeXKey(b)).export({ format: "jwk" }).x as string, "base64url"));
      const ours = x25519(a, pubB);
      const theirs = diffieHellman({ privateKey: nodeXKey(a), publicKey: createPublicKey(nodeXKey(b)) });
      assert.deepEqual(ours, theirs);
      assert.deepEqual(x25519(b, x25519PublicFromPrivate(a)), ours);
    }),
    { numRuns: 200 },
  );
  const kp = x25519Generate();
  assert.deepEqual(x25519PublicFromPrivate(kp.privateKey), kp.publicKey);
  assert.throws(() => x25519(kp.privateKey, Buffer.alloc(32)), /all-zero secret/);
  assert.throws(() => x25519(kp.privateKey, Buffer.alloc(31)), /32 raw X25519 bytes/);
});

test("both backends (libsodium and the node:crypto fallback) give identical keys, signatures and secrets", () => {
  const script = nodeEntry(new URL("./curve25519-vectors.ts", import.meta.url));
  const run = (env: Record<string, string>) =>
    JSON.parse(execFileSync(process.execPath, [...script.execArgv, script.file], { env: { ...process.env, ...env }, encoding: "utf8" })) as { backend: string; cases: unknown[] };
  const fallback = run({ COCOON_NO_SODIUM: "1" });
  assert.equal(fallback.backend, "node:crypto");
  const native = run({});
  assert.equal(native.backend, CURVE25519_BACKEND);
  assert.deepEqual(native.cases, fallback.cases);
  for (const c of fallback.cases as { verifies: boolean; tamperedVerifies: boolean }[]) {
    assert.equal(c.verifies, true);
    assert.equal(c.tamperedVerifies, false);
  }
});
