import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import {
  generateX25519KeyPair,
  hpkeExport,
  hpkeOpenBase,
  hpkeSealBase,
  ephemeralFromPrivate,
  generateEphemeral,
  keyScheduleContext,
  prepareRecipientKey,
  x25519PublicFromPrivate,
} from "../../src/crypto/hpke.js";

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
const u8 = (b: ArrayBuffer) => new Uint8Array(b);

test("native HPKE seal equals @hpke/core byte for byte with the same ephemeral key", async () => {
  const r = generateX25519KeyPair();
  const eph = generateX25519KeyPair();
  const info = randomBytes(40);
  const aad = randomBytes(9);
  const pt = randomBytes(16);
  const ctx = randomBytes(33);
  const ours = hpkeSealBase(r.publicKey, info, aad, pt, ephemeralFromPrivate(eph.privateKey));
  assert.deepEqual(ours.enc, eph.publicKey);

  const ekm = {
    privateKey: await suite.kem.deserializePrivateKey(eph.privateKey),
    publicKey: await suite.kem.deserializePublicKey(eph.publicKey),
  };
  const sender = await suite.createSenderContext({
    recipientPublicKey: await suite.kem.deserializePublicKey(r.publicKey),
    info,
    ekm,
  });
  assert.deepEqual(u8(sender.enc), ours.enc);
  assert.deepEqual(u8(await sender.seal(pt, aad)), ours.ciphertext);
  assert.deepEqual(u8(await sender.export(ctx, 28)), hpkeExport(ours.exporterSecret, ctx, 28));
  assert.deepEqual(u8(await sender.export(ctx, 100)), hpkeExport(ours.exporterSecret, ctx, 100));
});

test("@hpke/core sealed messages open natively and vice versa", async () => {
  const r = generateX25519KeyPair();
  const info = randomBytes(12);
  const aad = randomBytes(5);
  const pt = randomBytes(77);
  const sender = await suite.createSenderContext({ recipientPublicKey: await suite.kem.deserializePublicKey(r.publicKey), info });
  const ct = u8(await sender.seal(pt, aad));
  const opened = hpkeOpenBase(prepareRecipientKey(r.privateKey, r.publicKey), u8(sender.enc), info, aad, ct);
  assert.deepEqual(opened.plaintext, new Uint8Array(pt));
  assert.deepEqual(hpkeExport(opened.exporterSecret, aad, 32), u8(await sender.export(aad, 32)));

  const ours = hpkeSealBase(r.publicKey, info, aad, pt);
  const recipient = await suite.createRecipientContext({
    recipientKey: await suite.kem.deserializePrivateKey(r.privateKey),
    enc: ours.enc,
    info,
  });
  assert.deepEqual(u8(await recipient.open(ours.ciphertext, aad)), new Uint8Array(pt));
});

test("native HPKE open rejects wrong key, info, aad and tampering", () => {
  const r = prepareRecipientKey(generateX25519KeyPair().privateKey);
  const other = prepareRecipientKey(generateX25519KeyPair().privateKey);
  const info = randomBytes(8);
  const aad = randomBytes(8);
  const s = hpkeSealBase(r.publicKey, info, aad, randomBytes(16));
  assert.equal(hpkeOpenBase(r, s.enc, info, aad, s.ciphertext).plaintext.byteLength, 16);
  assert.throws(() => hpkeOpenBase(other, s.enc, info, aad, s.ciphertext), /authentication failed/);
  assert.throws(() => hpkeOpenBase(r, s.enc, randomBytes(8), aad, s.ciphertext), /authentication failed/);
  assert.throws(() => hpkeOpenBase(r, s.enc, info, randomBytes(8), s.ciphertext), /authentication failed/);
  const bad = s.ciphertext.slice();
  bad[3] ^= 1;
  assert.throws(() => hpkeOpenBase(r, s.enc, info, aad, bad), /authentication failed/);
});

test("low-order public keys and mismatched key pairs are refused with a clear message", () => {
  const r = generateX25519KeyPair();
  assert.throws(() => hpkeSealBase(new Uint8Array(32), new Uint8Array(0), new Uint8Array(0), new Uint8Array(1)), /low-order/);
  assert.throws(() => prepareRecipientKey(r.privateKey, generateX25519KeyPair().publicKey), /does not belong/);
  assert.deepEqual(x25519PublicFromPrivate(r.privateKey), r.publicKey);
  assert.throws(() => hpkeSealBase(new Uint8Array(31), new Uint8Array(0), new Uint8Array(0), new Uint8Array(1)), /32 raw X25519 bytes/);
});

test("RFC 9180 appendix A.1.1 known-answer vector (base, X25519, HKDF-SHA256, AES-128-GCM)", () => {
  const h = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
  const info = h("4f6465206f6e2061204772656369616e2055726e"); // "Ode on a Grecian Urn"
  const skEm = h("52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736");
  const pkRm = h("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d");
  const skRm = h("4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8");
  const pt = h("4265617574792069732074727574682c20747275746820626561757479");
  const aad = h("436f756e742d30"); // "Count-0"
  const ct = h("f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a");
  const enc = h("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431");
  const exported = h("3853fe2b4035195a573ffc53856e77058e15d9ea064de3e59f4961d0095250ee");

  assert.deepEqual(x25519PublicFromPrivate(skRm), pkRm);
  const sealed = hpkeSealBase(pkRm, info, aad, pt, ephemeralFromPrivate(skEm));
  assert.deepEqual(sealed.enc, enc);
  assert.deepEqual(sealed.ciphertext, ct);
  // The precomputed key-schedule context (shared by the recipients of one message) gives the same bytes.
  assert.deepEqual(hpkeSealBase(pkRm, info, aad, pt, ephemeralFromPrivate(skEm), keyScheduleContext(info)).ciphertext, ct);
  assert.deepEqual(hpkeExport(sealed.exporterSecret, new Uint8Array(0), 32), exported);
  const opened = hpkeOpenBase(prepareRecipientKey(skRm, pkRm), enc, info, aad, ct);
  assert.deepEqual(opened.plaintext, pt);
  assert.deepEqual(hpkeExport(opened.exporterSecret, new Uint8Array(0), 32), exported);
});

test("one ephemeral key shared by several recipients: distinct secrets, each opens only its own", () => {
  const info = new TextEncoder().encode("multi-recipient");
  const recipients = [0, 1, 2].map(() => generateX25519KeyPair());
  const eph = generateEphemeral();
  const ctx = keyScheduleContext(info);
  const aad = (i: number) => Uint8Array.of(i);
  const sealed = recipients.map((r, i) => hpkeSealBase(r.publicKey, info, aad(i), new TextEncoder().encode("content key"), eph, ctx));
  assert.ok(sealed.every((s) => Buffer.compare(s.enc, eph.enc) === 0), "one enc for all");
  assert.equal(new Set(sealed.map((s) => Buffer.from(s.ciphertext).toString("hex"))).size, 3, "different ciphertexts");
  assert.equal(new Set(sealed.map((s) => Buffer.from(s.exporterSecret).toString("hex"))).size, 3, "different exporter secrets");
  recipients.forEach((r, i) => {
    const key = prepareRecipientKey(r.privateKey, r.publicKey);
    assert.deepEqual(hpkeOpenBase(key, eph.enc, info, aad(i), sealed[i]!.ciphertext).plaintext, new TextEncoder().encode("content key"));
    // Another recipient's wrap does not open with this key.
    assert.throws(() => hpkeOpenBase(key, eph.enc, info, aad(i), sealed[(i + 1) % 3]!.ciphertext), /authentication failed/);
  });
});
