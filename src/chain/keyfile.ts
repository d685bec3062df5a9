/**
 * Wallet keys: a 24-word TON mnemonic kept in an ENCRYPTED key file.
 *
 * File format (JSON, mode 0600, written atomically via a temp file + rename):
 *   {
 *     "format": "cocoon-key", "version": 1,
 *     "publicKey": "<64 hex>",                      // in clear so `wallet show` needs no password
 *     "kdf": { "name": "scrypt", "N": 32768, "r": 8, "p": 1, "salt": "<base64, 16 B>" },
 *     "cipher": { "name": "aes-256-gcm", "iv": "<base64, 12 B>", "tag": "<base64, 16 B>" },
 *     "ciphertext": "<base64>"                      // AES-256-GCM of {"mnemonic":[24 words]}
 *   }
 * key = scrypt(password, salt, N, r, p, 32 bytes). The GCM additional data is the canonical JSON of
 * {format, version, publicKey, kdf}, so editing any header field (e.g. swapping the public key) fails to decrypt.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCb } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join, basename } from "node:path";
import { KeyPair, mnemonicNew, mnemonicToPrivateKey, mnemonicValidate } from "@ton/crypto";
import { isInteractive, promptLine, PromptIO } from "./prompt.js";

export const KEY_FILE_FORMAT = "cocoon-key";
export const KEY_FILE_VERSION = 1;
export const MNEMONIC_WORDS = 24;
/** scrypt cost: N = 2^15, r = 8 (32 MiB, about 0.1 s); p = 1. */
export const DEFAULT_SCRYPT = { N: 2 ** 15, r: 8, p: 1 } as const;
/** Bounds accepted when READING a file, so a crafted file cannot demand gigabytes or take minutes. */
const MIN_SCRYPT_N = 2 ** 10;
const MAX_SCRYPT_N = 2 ** 20;
const MAX_SCRYPT_R = 32;
const MAX_SCRYPT_P = 16;
const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
/** Key files are small; anything bigger is not one. */
const MAX_KEY_FILE_BYTES = 64 * 1024;
export const PASSWORD_ENV = "COCOON_WALLET_PASSWORD";
const MIN_PASSWORD_LENGTH = 8;

export interface ScryptParams { N: number; r: number; p: number }

export interface KeyFileJson {
  format: typeof KEY_FILE_FORMAT;
  version: typeof KEY_FILE_VERSION;
  publicKey: string;
  kdf: { name: "scrypt"; N: number; r: number; p: number; salt: string };
  cipher: { name: "aes-256-gcm"; iv: string; tag: string };
  ciphertext: string;
}

export interface UnlockedKey {
  mnemonic: string[];
  keyPair: KeyPair;
}

export class KeyFileError extends Error {}

function scrypt(password: string, salt: Buffer, p: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(password.normalize("NFKC"), salt, KEY_BYTES, { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + 1024 * 1024 },
      (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function aad(h: Pick<KeyFileJson, "format" | "version" | "publicKey" | "kdf">): Buffer {
  return Buffer.from(JSON.stringify([h.format, h.version, h.publicKey, h.kdf.name, h.kdf.N, h.kdf.r, h.kdf.p, h.kdf.salt]));
}

/** A fresh 24-word mnemonic. */
export async function createMnemonic(): Promise<string[]> {
  return mnemonicNew(MNEMONIC_WORDS);
}

/** Ed25519 key pair of a TON mnemonic; throws a clear error for a wrong word list. */
export async function keyPairFromMnemonic(words: string[]): Promise<KeyPair> {
  if (!Array.isArray(words) || words.length !== MNEMONIC_WORDS || !words.every((w) => typeof w === "string")) {
    throw new KeyFileError(`a TON mnemonic has ${MNEMONIC_WORDS} words`);
  }
  if (!(await mnemonicValidate(words))) throw new KeyFileError("the mnemonic is not a valid TON mnemonic (a word is misspelled or the list is incomplete)");
  return mnemonicToPrivateKey(words);
}

/** Encrypts `mnemonic` under `password`. */
export async function encryptKey(mnemonic: string[], password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<KeyFileJson> {
  if (typeof password !== "string" || password.length < MIN_PASSWORD_LENGTH) {
    throw new KeyFileError(`the wallet password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  const keyPair = await keyPairFromMnemonic(mnemonic);
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(IV_BYTES);
  const header = {
    format: KEY_FILE_FORMAT, version: KEY_FILE_VERSION, publicKey: keyPair.publicKey.toString("hex"),
    kdf: { name: "scrypt", N: params.N, r: params.r, p: params.p, salt: salt.toString("base64") },
  } as const;
  const key = await scrypt(password, salt, params);
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(aad(header));
  const ciphertext = Buffer.concat([c.update(JSON.stringify({ mnemonic })), c.final()]);
  return { ...header, kdf: { ...header.kdf }, cipher: { name: "aes-256-gcm", iv: iv.toString("base64"), tag: c.getAuthTag().toString("base64") }, ciphertext: ciphertext.toString("base64") };
}

function b64(v: unknown, what: string, len?: number): Buffer {
  if (typeof v !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw new KeyFileError(`key file is corrupted: ${what} is not base64`);
  const b = Buffer.from(v, "base64");
  if (len !== undefined && b.length !== len) throw new KeyFileError(`key file is corrupted: ${what} must be ${len} bytes`);
  return b;
}

/** Checks the structure of a parsed key file; throws KeyFileError("key file is corrupted: ...") otherwise. */
export function validateKeyFile(j: unknown): KeyFileJson {
  const bad = (what: string) => new KeyFileError(`key file is corrupted: ${what}`);
  if (typeof j !== "object" || j === null || Array.isArray(j)) throw bad("not a JSON object");
  const o = j as Record<string, any>;
  if (o.format !== KEY_FILE_FORMAT) throw bad(`"format" is not "${KEY_FILE_FORMAT}"`);
  if (o.version !== KEY_FILE_VERSION) throw new KeyFileError(`key file version ${String(o.version)} is not supported (this program reads version ${KEY_FILE_VERSION})`);
  if (typeof o.publicKey !== "string" || !/^[0-9a-f]{64}$/.test(o.publicKey)) throw bad("publicKey must be 64 hex digits");
  const k = o.kdf;
  if (typeof k !== "object" || k === null || k.name !== "scrypt") throw bad('kdf must be {"name":"scrypt",...}');
  const pow2 = (n: unknown) => Number.isSafeInteger(n) && (n as number) > 0 && (((n as number) & ((n as number) - 1)) === 0);
  if (!pow2(k.N) || k.N < MIN_SCRYPT_N || k.N > MAX_SCRYPT_N) throw bad(`scrypt N must be a power of two between ${MIN_SCRYPT_N} and ${MAX_SCRYPT_N}`);
  if (!Number.isSafeInteger(k.r) || k.r < 1 || k.r > MAX_SCRYPT_R) throw bad(`scrypt r must be 1..${MAX_SCRYPT_R}`);
  if (!Number.isSafeInteger(k.p) || k.p < 1 || k.p > MAX_SCRYPT_P) throw bad(`scrypt p must be 1..${MAX_SCRYPT_P}`);
  b64(k.salt, "kdf.salt", SALT_BYTES);
  const c = o.cipher;
  if (typeof c !== "object" || c === null || c.name !== "aes-256-gcm") throw bad('cipher must be {"name":"aes-256-gcm",...}');
  b64(c.iv, "cipher.iv", IV_BYTES);
  b64(c.tag, "cipher.tag", TAG_BYTES);
  const ct = b64(o.ciphertext, "ciphertext");
  if (ct.length === 0) throw bad("ciphertext is empty");
  return o as KeyFileJson;
}

/** Decrypts a key file; wrong password or tampering -> KeyFileError with a clear message. */
export async function decryptKey(file: unknown, password: string): Promise<UnlockedKey> {
  const f = validateKeyFile(file);
  const key = await scrypt(password, b64(f.kdf.salt, "kdf.salt"), f.kdf);
  const d = createDecipheriv("aes-256-gcm", key, b64(f.cipher.iv, "cipher.iv"));
  d.setAAD(aad(f));
  d.setAuthTag(b64(f.cipher.tag, "cipher.tag"));
  let plain: Buffer;
  try {
    plain = Buffer.concat([d.update(b64(f.ciphertext, "ciphertext")), d.final()]);
  } catch {
    throw new KeyFileError("wrong wallet password (or the key file was modified): decryption failed");
  }
  let mnemonic: unknown;
  try {
    mnemonic = (JSON.parse(plain.toString("utf8")) as { mnemonic?: unknown }).mnemonic;
  } catch {
    throw new KeyFileError("key file is corrupted: decrypted content is not JSON");
  }
  const keyPair = await keyPairFromMnemonic(mnemonic as string[]);
  if (keyPair.publicKey.toString("hex") !== f.publicKey) throw new KeyFileError("key file is corrupted: the public key does not match the mnemonic");
  return { mnemonic: mnemonic as string[], keyPair };
}

/** Writes `data` to `path` atomically with mode 0600 (temp file in the same dir, fsync, rename). */
export function writeFileAtomic(path: string, data: string | Buffer): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
  try {
    const dfd = openSync(dir, "r");
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch { /* directory fsync is best effort (not supported everywhere) */ }
}

/** Encrypts and writes a key file. Refuses to overwrite an existing file unless `overwrite` is set. */
export async function writeKeyFile(path: string, mnemonic: string[], password: string,
  opts: { overwrite?: boolean; scrypt?: ScryptParams } = {}): Promise<KeyFileJson> {
  if (!opts.overwrite && existsSync(path)) {
    throw new KeyFileError(`key file ${path} already exists; move it away first (it may hold funds) or choose another --key-file`);
  }
  const json = await encryptKey(mnemonic, password, opts.scrypt);
  writeFileAtomic(path, JSON.stringify(json, null, 2) + "\n");
  return json;
}

/** Reads and parses a key file without decrypting it (for the public key). */
export function readKeyFileJson(path: string): KeyFileJson {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new KeyFileError(`no key file at ${path}; create one with "cocoon wallet new" or pass --key-file`);
    throw new KeyFileError(`cannot read key file ${path}: ${(e as Error).message}`);
  }
  if (text.length > MAX_KEY_FILE_BYTES) throw new KeyFileError(`key file ${path} is corrupted: it is larger than ${MAX_KEY_FILE_BYTES} bytes`);
  let j: unknown;
  try {
    j = JSON.parse(text.toString("utf8"));
  } catch {
    throw new KeyFileError(`key file ${path} is corrupted: not valid JSON`);
  }
  try {
    return validateKeyFile(j);
  } catch (e) {
    throw new KeyFileError(`${path}: ${(e as Error).message}`);
  }
}

export async function readKeyFile(path: string, password: string): Promise<UnlockedKey> {
  return decryptKey(readKeyFileJson(path), password);
}

export interface PasswordSource {
  passwordFile?: string;
  env?: NodeJS.ProcessEnv;
  /** Ask twice on a TTY (when creating a key file). */
  confirm?: boolean;
  io?: PromptIO;
}

/** The wallet password from --password-file, else $COCOON_WALLET_PASSWORD, else a hidden TTY prompt. */
export async function resolvePassword(src: PasswordSource = {}): Promise<string> {
  if (src.passwordFile) {
    let text: string;
    try {
      text = readFileSync(src.passwordFile, "utf8");
    } catch (e) {
      throw new KeyFileError(`cannot read --password-file ${src.passwordFile}: ${(e as Error).message}`);
    }
    const pw = text.replace(/\r?\n$/, "");
    if (pw.length === 0) throw new KeyFileError(`--password-file ${src.passwordFile} is empty`);
    return pw;
  }
  const env = src.env ?? process.env;
  if (env[PASSWORD_ENV]) return env[PASSWORD_ENV] as string;
  if (!isInteractive(src.io)) {
    throw new KeyFileError(`a wallet password is needed: pass --password-file FILE or set ${PASSWORD_ENV} (no terminal to ask on)`);
  }
  const pw = await promptLine("Wallet password: ", { ...src.io, hidden: true });
  if (src.confirm) {
    const again = await promptLine("Repeat the password: ", { ...src.io, hidden: true });
    if (again !== pw) throw new KeyFileError("the two passwords differ; nothing was written");
  }
  return pw;
}
