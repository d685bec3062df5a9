// The weights digest of a worker on an external engine: a Merkle tree over the model directory's files.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { merkleLeaf, merkleRoot, modelDirDigest, parseModelDigest } from "../../src/tee/model-digest.js";
import { OpenAiBackend } from "../../src/worker/backends/openai.js";
import { startFakeUpstream } from "../../src/dev/fake-upstream.js";
import { openAiModelDigest } from "../../src/cli/roles.js";
import { checkPolicy, PRODUCTION_POLICY } from "../../src/tee/policy.js";

const sha = (...parts: Buffer[]) => createHash("sha256").update(Buffer.concat(parts)).digest();

function checkpoint(): string {
  const dir = mkdtempSync(join(tmpdir(), "model-"));
  writeFileSync(join(dir, "config.json"), '{"arch":"llama"}');
  mkdirSync(join(dir, "weights"));
  writeFileSync(join(dir, "weights", "model-00001.safetensors"), Buffer.alloc(70_000, 1));
  writeFileSync(join(dir, "weights", "model-00002.safetensors"), Buffer.alloc(10, 2));
  writeFileSync(join(dir, ".cache"), "ignored");
  return dir;
}

describe("model directory digest", () => {
  it("is the Merkle root of (path, SHA-256 of contents) leaves in path order, hidden files skipped", async () => {
    const dir = checkpoint();
    try {
      const r = await modelDirDigest(dir);
      assert.deepEqual(r.files, ["config.json", "weights/model-00001.safetensors", "weights/model-00002.safetensors"]);
      const leaf = (p: string, body: Buffer) => {
        const len = Buffer.alloc(4);
        len.writeUInt32BE(Buffer.byteLength(p));
        return sha(Buffer.from([0]), len, Buffer.from(p), sha(body));
      };
      const l = [leaf("config.json", Buffer.from('{"arch":"llama"}')), leaf("weights/model-00001.safetensors", Buffer.alloc(70_000, 1)), leaf("weights/model-00002.safetensors", Buffer.alloc(10, 2))];
      const expected = sha(Buffer.from([1]), sha(Buffer.from([1]), l[0], l[1]), l[2]); // the odd leaf is carried up
      assert.equal(r.digest, expected.toString("hex"));
      assert.deepEqual(merkleRoot([merkleLeaf("a", sha(Buffer.from("x")))]), merkleLeaf("a", sha(Buffer.from("x"))));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it("changes when a byte or a file name changes", async () => {
    const dir = checkpoint();
    try {
      const base = (await modelDirDigest(dir)).digest;
      writeFileSync(join(dir, "weights", "model-00002.safetensors"), Buffer.from([2, 2, 2, 2, 2, 2, 2, 2, 2, 3]));
      const changed = (await modelDirDigest(dir)).digest;
      assert.notEqual(changed, base);
      renameSync(join(dir, "config.json"), join(dir, "config2.json"));
      assert.notEqual((await modelDirDigest(dir)).digest, changed);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it("refuses an empty directory, a file and a missing path with what to give instead", async () => {
    const dir = mkdtempSync(join(tmpdir(), "model-empty-"));
    try {
      await assert.rejects(modelDirDigest(dir), /holds no files/);
      writeFileSync(join(dir, "f"), "x");
      await assert.rejects(modelDirDigest(join(dir, "f")), /is not a directory/);
      await assert.rejects(modelDirDigest(join(dir, "nope")), /--model-dir .*nope: ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.throws(() => parseModelDigest("abc"), /64 hex characters/);
    assert.equal(parseModelDigest("AB".repeat(32)), "ab".repeat(32));
  });
});

describe("a worker on --backend openai declares its weights", () => {
  const log = { info: () => undefined };
  it("checks the flags: openai only, one of the two, and a model name", async () => {
    await assert.rejects(openAiModelDigest({ backend: "embedded", modelDigest: "ab".repeat(32), model: "m" }, log), /for --backend openai/);
    await assert.rejects(openAiModelDigest({ backend: "openai", modelDigest: "ab".repeat(32) }, log), /need --model NAME/);
    await assert.rejects(openAiModelDigest({ backend: "openai", modelDigest: "ab".repeat(32), modelDir: "/x", model: "m" }, log), /not both/);
    assert.equal(await openAiModelDigest({ backend: "openai" }, log), undefined);
    assert.equal(await openAiModelDigest({ backend: "openai", model: "m", modelDigest: "CD".repeat(32) }, log), "cd".repeat(32));
  });
  it("the backend reports the digest for the served model, and production accepts an allowed one", async () => {
    const up = await startFakeUpstream({ model: "m" });
    const b = new OpenAiBackend({ upstream: up.url, model: "m", modelDigest: "cd".repeat(32) });
    try {
      await b.start();
      assert.deepEqual(b.models(), [{ id: "m", digest: "cd".repeat(32) }]);
      const claims = { model: { name: "m", digest: "cd".repeat(32) }, nodeId: "w" } as never;
      const subject = { role: "worker" as const, platform: "tdx" as const, imageDigest: "ee".repeat(32), claims, hasVerifiedGpu: true, hasGpuOcsp: true, hasGpuRim: true };
      const policy = { ...PRODUCTION_POLICY, measurements: { client: [], proxy: [], worker: ["ee".repeat(32)] } };
      assert.throws(() => checkPolicy(policy, subject), /policy\.model/);
      assert.doesNotThrow(() => checkPolicy({ ...policy, models: ["cd".repeat(32)] }, subject));
    } finally {
      await b.close();
      await up.close();
    }
  });
});
