/**
 * Compiles every contract in contracts/ with the pinned Tolk compiler and writes contracts/build/<name>.json
 * (code BoC + code hash). Run after editing any .tolk file:  node --import tsx scripts/compile-contracts.ts
 * With --check it writes nothing and exits 1 if a committed build differs from a fresh compile.
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname } from "node:path";
import { CONTRACT_NAMES, TOLK_VERSION, buildFileContents, buildFilePath, compileContract } from "../src/chain/compile.js";

const check = process.argv.includes("--check");
let stale = 0;
for (const name of CONTRACT_NAMES) {
  const c = await compileContract(name);
  if (c.tolkVersion !== TOLK_VERSION) {
    console.error(`Tolk ${c.tolkVersion} is installed but the build is pinned to ${TOLK_VERSION}: install @ton/tolk-js@${TOLK_VERSION}.`);
    process.exit(1);
  }
  const file = buildFilePath(name);
  const text = buildFileContents(c);
  const same = existsSync(file) && readFileSync(file, "utf-8") === text;
  if (check) {
    if (!same) stale++;
    console.log(`${same ? "ok   " : "STALE"} ${name}  code hash ${c.codeHashHex}  ${c.code.toBoc().length} bytes`);
    continue;
  }
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  console.log(`wrote ${file}  code hash ${c.codeHashHex}  ${c.code.toBoc().length} bytes`);
}
if (stale > 0) {
  console.error(`${stale} committed build(s) differ from the sources: run node --import tsx scripts/compile-contracts.ts`);
  process.exit(1);
}
