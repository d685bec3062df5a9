import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, readFileSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import {
  createMnemonic, decryptKey, encryptKey, keyPairFromMnemonic, KeyFileError, readKeyFile, readKeyFileJson,
  resolvePassword, validateKeyFile, writeKeyFile,
} from "../../src/chain/keyfile.js";

const FAST = { N: 1024, r: 8, p: 1 };
const PW = "correct horse battery";

test("key file round trip: 0600, atomic, public key in clear, wrong password and tampering refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-key-"));
  try {
    const words = await createMnemonic();
    assert.equal(words.length, 24);
    const kp = await keyPairFromMnemonic(words);
    const path = join(dir, "sub", "wallet.json");
    await writeKeyFile(path, words, PW, { scrypt: FAST });
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(join(dir, "sub")), ["wallet.json"], "no temp file left behind");
    const raw = readFileSync(path, "utf8");
    // No word as a stored value, and not the phrase (a word may equal a field name: BIP-39 has "salt").
    const strings: string[] = [];
    JSON.parse(raw, (_key, value: unknown) => (typeof value === "string" && strings.push(value), value));
    for (const w of words) assert.ok(!strings.includes(w), "mnemonic words are not stored in clear");
    assert.ok(!raw.includes(words.join(" ")), "the mnemonic phrase is not stored in clear");
    assert.equal(readKeyFileJson(path).publicKey, kp.publicKey.toString("hex"));

    const un = await readKeyFile(path, PW);
    assert.deepEqual(un.mnemonic, words);
    assert.ok(un.keyPair.secretKey.equals(kp.secretKey));

    await assert.rejects(readKeyFile(path, PW + "x"), /wrong wallet password/);
    await assert.rejects(writeKeyFile(path, words, PW, { scrypt: FAST }), /already exists/);

    // Header tampering (swapping the clear public key) fails authentication.
    const j = JSON.parse(raw);
    const other = await keyPairFromMnemonic(await createMnemonic());
    await assert.rejects(decryptKey({ ...j, publicKey: other.publicKey.toString("hex") }, PW), /wrong wallet password|modified/);
    // Ciphertext bit flip.
    const ct = Buffer.from(j.ciphertext, "base64"); ct[0] ^= 1;
    await assert.rejects(decryptKey({ ...j, ciphertext: ct.toString("base64") }, PW), KeyFileError);
    // Corrupted files give a "corrupted" error, not a crash.
    writeFileSync(path, "{not json");
    await assert.rejects(readKeyFile(path, PW), /corrupted: not valid JSON/);
    writeFileSync(path, JSON.stringify({ ...j, kdf: { ...j.kdf, N: 2 ** 30 } }));
    await assert.rejects(readKeyFile(path, PW), /scrypt N/);
    await assert.rejects(readKeyFile(join(dir, "missing.json"), PW), /no key file.*wallet new/);
    await assert.rejects(encryptKey(words, "short"), /at least 8/);
    await assert.rejects(keyPairFromMnemonic(words.slice(0, 23)), /24 words/);
    await assert.rejects(keyPairFromMnemonic([...words.slice(0, 23), "zzzz"]), /not a valid TON mnemonic/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("key file validator survives random input", () => {
  fc.assert(fc.property(fc.anything(), (v) => {
    try { validateKeyFile(v); } catch (e) { assert.ok(e instanceof KeyFileError, String(e)); }
  }), { numRuns: 1000 });
  fc.assert(fc.property(fc.record({
    format: fc.constantFrom("cocoon-key", "x"), version: fc.constantFrom(1, 2, "1"), publicKey: fc.oneof(fc.string(), fc.constant("a".repeat(64))),
    kdf: fc.record({ name: fc.constantFrom("scrypt", "pbkdf2"), N: fc.integer(), r: fc.integer(), p: fc.integer(), salt: fc.base64String() }),
    cipher: fc.record({ name: fc.constant("aes-256-gcm"), iv: fc.base64String(), tag: fc.base64String() }), ciphertext: fc.base64String(),
  }), (v) => {
    try { validateKeyFile(v); } catch (e) { assert.ok(e instanceof KeyFileError, String(e)); }
  }), { numRuns: 1000 });
});

test("password sources: file, env, and a clear error without a terminal", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-pw-"));
  try {
    const f = join(dir, "pw");
    writeFileSync(f, "from-file-pw\n");
    assert.equal(await resolvePassword({ passwordFile: f, env: { COCOON_WALLET_PASSWORD: "env" } }), "from-file-pw");
    assert.equal(await resolvePassword({ env: { COCOON_WALLET_PASSWORD: "from-env" } }), "from-env");
    const { PassThrough } = await import("node:stream");
    await assert.rejects(resolvePassword({ env: {}, io: { input: new PassThrough(), output: new PassThrough() } }), /--password-file.*COCOON_WALLET_PASSWORD/);
    writeFileSync(f, "");
    await assert.rejects(resolvePassword({ passwordFile: f }), /empty/);
    // A fake terminal answers the hidden prompt, and the password is not echoed.
    const input = Object.assign(new PassThrough(), { isTTY: true });
    const output = Object.assign(new PassThrough(), { isTTY: true });
    let shown = "";
    output.on("data", (d) => (shown += d.toString()));
    const p = resolvePassword({ env: {}, io: { input, output } });
    input.write("s3cret-typed\n");
    assert.equal(await p, "s3cret-typed");
    assert.ok(shown.includes("Wallet password"));
    assert.ok(!shown.includes("s3cret-typed"), "typed password is not echoed");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
