/**
 * Compiling the Cocoon contracts (`contracts/*.tolk`) with the pinned Tolk compiler, and loading the
 * committed build (`contracts/build/<name>.json`) so that run time does not need the compiler.
 *
 * The code hash decides every contract address, so the committed build must match a fresh compile
 * with the pinned compiler; `scripts/compile-contracts.ts` rewrites it and a test compares the two.
 */
import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { Cell } from "@ton/core";

/** The contracts, by the base name of their entry file in `contracts/`. */
export const CONTRACT_NAMES = ["root", "client_channel", "proxy"] as const;
export type ContractName = (typeof CONTRACT_NAMES)[number];

/** The Tolk version the committed build was made with; a different compiler changes every address. */
export const TOLK_VERSION = "1.3.0";

export interface CompiledContract {
  name: ContractName;
  code: Cell;
  /** Code cell hash, lowercase hex (64 chars). */
  codeHashHex: string;
  /** Code BoC, base64. */
  codeBoc64: string;
  tolkVersion: string;
}

/** Shape of `contracts/build/<name>.json`. */
export interface ContractBuildFile {
  name: ContractName;
  codeBoc64: string;
  codeHashHex: string;
  tolkVersion: string;
}

/** Folder holding the `.tolk` sources. Works from `src/chain/` (tsx) and from `dist/chain/` (tsc output). */
export function contractsDir(): string {
  return fileURLToPath(new URL("../../contracts/", import.meta.url));
}

/** Path of the committed build file of a contract. */
export function buildFilePath(name: ContractName): string {
  return join(contractsDir(), "build", `${name}.json`);
}

function assertName(name: string): asserts name is ContractName {
  if (!(CONTRACT_NAMES as readonly string[]).includes(name)) {
    throw new Error(`Unknown contract "${name}": expected one of ${CONTRACT_NAMES.join(", ")}.`);
  }
}

const compiled = new Map<ContractName, Promise<CompiledContract>>();

/** Compiles a contract from its Tolk source (cached in memory per process). Throws with the compiler's message. */
export function compileContract(name: ContractName): Promise<CompiledContract> {
  assertName(name);
  let p = compiled.get(name);
  if (!p) {
    p = compileUncached(name);
    compiled.set(name, p);
    p.catch(() => compiled.delete(name));
  }
  return p;
}

async function compileUncached(name: ContractName): Promise<CompiledContract> {
  const { runTolkCompiler } = await import("@ton/tolk-js");
  const dir = contractsDir();
  const r = await runTolkCompiler({
    entrypointFileName: `${name}.tolk`,
    fsReadCallback: (p: string) => readFileSync(join(dir, p), "utf-8"),
  });
  if (r.status === "error") {
    throw new Error(`Tolk compilation of contracts/${name}.tolk failed:\n${r.message}`);
  }
  const code = Cell.fromBase64(r.codeBoc64);
  return { name, code, codeHashHex: r.codeHashHex.toLowerCase(), codeBoc64: r.codeBoc64, tolkVersion: r.tolkVersion };
}

const loaded = new Map<ContractName, CompiledContract>();

/**
 * Loads the committed build of a contract (no compiler needed). Verifies that the BoC hashes to the
 * recorded code hash, so a corrupted or hand-edited file is refused.
 */
export function loadContract(name: ContractName): CompiledContract {
  assertName(name);
  const hit = loaded.get(name);
  if (hit) return hit;
  const file = buildFilePath(name);
  if (!existsSync(file)) {
    throw new Error(
      `Missing compiled contract ${file}. Run: node --import tsx scripts/compile-contracts.ts`,
    );
  }
  let parsed: ContractBuildFile;
  try {
    parsed = JSON.parse(readFileSync(file, "utf-8")) as ContractBuildFile;
  } catch (e) {
    throw new Error(`Compiled contract ${file} is not valid JSON (${(e as Error).message}); regenerate it with scripts/compile-contracts.ts.`);
  }
  if (typeof parsed.codeBoc64 !== "string" || typeof parsed.codeHashHex !== "string") {
    throw new Error(`Compiled contract ${file} lacks codeBoc64/codeHashHex; regenerate it with scripts/compile-contracts.ts.`);
  }
  const code = Cell.fromBase64(parsed.codeBoc64);
  const hash = code.hash().toString("hex");
  if (hash !== parsed.codeHashHex.toLowerCase()) {
    throw new Error(`Compiled contract ${file}: code hashes to ${hash}, file says ${parsed.codeHashHex}; regenerate it with scripts/compile-contracts.ts.`);
  }
  const c: CompiledContract = { name, code, codeHashHex: hash, codeBoc64: parsed.codeBoc64, tolkVersion: parsed.tolkVersion };
  loaded.set(name, c);
  return c;
}

/** Code cell of a contract from the committed build. */
export function contractCode(name: ContractName): Cell {
  return loadContract(name).code;
}

/** The JSON written to `contracts/build/<name>.json` for a compile result. */
export function buildFileContents(c: CompiledContract): string {
  const f: ContractBuildFile = { name: c.name, codeBoc64: c.codeBoc64, codeHashHex: c.codeHashHex, tolkVersion: c.tolkVersion };
  return JSON.stringify(f, null, 2) + "\n";
}
