// Test helper: how to run a TypeScript entry point as a child process, whichever way the tests themselves run.
// `npm test` runs them compiled (scripts/run-tests.mjs: .test-build/, plain node, no loader), where the entry's
// compiled .js sits at the same relative path; run from source (`node --import tsx --test x.test.ts`), it is the .ts
// through tsx.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface NodeEntry {
  /** The file to run. */
  file: string;
  /** Node options it needs (the tsx loader for a .ts file, none for compiled JavaScript). */
  execArgv: string[];
}

/** `source` names a .ts file relative to the caller (new URL("../../src/cli/main.ts", import.meta.url)). */
export function nodeEntry(source: URL): NodeEntry {
  const ts = fileURLToPath(source);
  if (ts.endsWith(".ts") && !existsSync(ts)) {
    const js = ts.replace(/\.ts$/, ".js");
    if (existsSync(js)) return { file: js, execArgv: [] };
  }
  return { file: ts, execArgv: ["--import", "tsx"] };
}

/** True when these tests run compiled (from .test-build/). */
export const COMPILED = import.meta.url.endsWith(".js");
