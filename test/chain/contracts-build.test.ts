// The committed contract build matches a fresh compile, and the constants shared between Tolk and
// TypeScript (exit codes, opcodes, voucher tags, storage reserve) agree.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { toNano } from "@ton/core";
import { CONTRACT_NAMES, TOLK_VERSION, buildFileContents, buildFilePath, compileContract, contractsDir, loadContract } from "../../src/chain/compile.js";
import { ContractError } from "../../src/chain/contracts/errors.js";
import { Op, STORAGE_RESERVE } from "../../src/chain/contracts/opcodes.js";
import { VoucherTag } from "../../src/chain/vouchers.js";

const tolkSources = () => readdirSync(contractsDir()).filter((f) => f.endsWith(".tolk")).map((f) => readFileSync(join(contractsDir(), f), "utf-8"));

test("committed contracts/build/*.json equal a fresh compile with the pinned Tolk", async () => {
  for (const name of CONTRACT_NAMES) {
    const fresh = await compileContract(name);
    assert.equal(fresh.tolkVersion, TOLK_VERSION, "installed @ton/tolk-js differs from the pinned version");
    const committed = readFileSync(buildFilePath(name), "utf-8");
    assert.equal(committed, buildFileContents(fresh), `${name}: stale build, run node --import tsx scripts/compile-contracts.ts`);
    const loaded = loadContract(name);
    assert.equal(loaded.codeHashHex, fresh.code.hash().toString("hex"));
  }
});

test("compile errors are reported with the file name", async () => {
  await assert.rejects(async () => compileContract("nope" as "root"), /Unknown contract "nope"/);
});

test("exit codes in contracts/errors.tolk equal src/chain/contracts/errors.ts", () => {
  const src = readFileSync(join(contractsDir(), "errors.tolk"), "utf-8");
  const tolk: Record<string, number> = {};
  for (const m of src.matchAll(/^const ERR_(\w+) = (\d+);/gm)) tolk[m[1]] = Number(m[2]);
  assert.ok(Object.keys(tolk).length >= 15);
  assert.deepEqual(tolk, { ...ContractError });
  assert.equal(new Set(Object.values(tolk)).size, Object.keys(tolk).length, "codes are distinct");
});

test("message opcodes in contracts/*.tolk equal src/chain/contracts/opcodes.ts", () => {
  const tolk: Record<string, number> = {};
  for (const src of tolkSources()) {
    for (const m of src.matchAll(/^struct \((0x[0-9a-fA-F]{8})\) (\w+)/gm)) tolk[m[2]] = Number(m[1]);
  }
  assert.deepEqual(tolk, { ...Op });
  assert.equal(new Set(Object.values(tolk)).size, Object.keys(tolk).length, "opcodes are distinct");
});

test("voucher tags and the storage reserve agree", () => {
  const src = readFileSync(join(contractsDir(), "shared.tolk"), "utf-8");
  const tags: Record<string, number> = {};
  for (const m of src.matchAll(/^const VOUCHER_TAG_(\w+) = (0x[0-9a-fA-F]+)/gm)) tags[m[1]] = Number(m[2]);
  assert.deepEqual(tags, { ...VoucherTag });
  const reserve = /^const STORAGE_RESERVE = ton\("([\d.]+)"\)/m.exec(src);
  assert.ok(reserve);
  assert.equal(toNano(reserve[1]), STORAGE_RESERVE);
});
