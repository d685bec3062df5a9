// The weights digest a worker on an external engine (--backend openai) declares: either given (--model-digest) or
// computed from the directory the engine loads (--model-dir) as a Merkle tree over its files, so that a root owner
// can compute the same value from a published checkpoint and allow it (`cocoon root set-model`).
//
//   files   every regular file under the directory (symlinks followed, directories recursed), by relative POSIX
//           path in byte order; names starting with "." are skipped (.git, caches)
//   leaf    SHA-256(0x00 || u32 big-endian path length || UTF-8 path || SHA-256(file contents))
//   node    SHA-256(0x01 || left || right); an odd node is carried up unchanged
//   digest  the root as lowercase hex; an empty directory is refused
// The embedded backend keeps the plain SHA-256 of its single GGUF file.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";

const HEX_SHA256 = /^[0-9a-f]{64}$/;

async function sha256File(path: string): Promise<Buffer> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest();
}

async function listFiles(root: string, dir = root, out: string[] = []): Promise<string[]> {
  for (const name of await readdir(dir)) {
    if (name.startsWith(".")) continue;
    const full = join(dir, name);
    const s = await stat(full);
    if (s.isDirectory()) await listFiles(root, full, out);
    else if (s.isFile()) out.push(relative(root, full).split(sep).join("/"));
  }
  return out;
}

export function merkleLeaf(path: string, contentDigest: Buffer): Buffer {
  const p = Buffer.from(path, "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32BE(p.length);
  return createHash("sha256").update(Buffer.from([0])).update(len).update(p).update(contentDigest).digest();
}

export function merkleRoot(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) throw new Error("no files to hash");
  let level = leaves;
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) {
      next.push(i + 1 < level.length ? createHash("sha256").update(Buffer.from([1])).update(level[i]).update(level[i + 1]).digest() : level[i]);
    }
    level = next;
  }
  return level[0];
}

/** The Merkle digest of a model directory (see above); `onFile` reports progress on large checkpoints. */
export async function modelDirDigest(dir: string, onFile?: (path: string, index: number, total: number) => void): Promise<{ digest: string; files: string[] }> {
  let s;
  try {
    s = await stat(dir);
  } catch (e) {
    throw new Error(`--model-dir ${dir}: ${(e as Error).message}`);
  }
  if (!s.isDirectory()) throw new Error(`--model-dir ${dir} is not a directory (give the directory the engine loads the weights from)`);
  const files = (await listFiles(dir)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  if (files.length === 0) throw new Error(`--model-dir ${dir} holds no files`);
  const leaves: Buffer[] = [];
  for (const [i, f] of files.entries()) {
    onFile?.(f, i, files.length);
    leaves.push(merkleLeaf(f, await sha256File(join(dir, f))));
  }
  return { digest: merkleRoot(leaves).toString("hex"), files };
}

/** Checks a digest given on the command line. */
export function parseModelDigest(text: string): string {
  const d = text.trim().toLowerCase();
  if (!HEX_SHA256.test(d)) throw new Error(`--model-digest must be 64 hex characters (a SHA-256, e.g. from \`cocoon attest model-digest DIR\`), got "${text}"`);
  return d;
}
