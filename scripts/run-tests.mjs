#!/usr/bin/env node
// Runs the test suite with Node's built-in runner on plain JavaScript, with no module loader in the test processes
// (a loader hook once stalled a whole file before it printed anything). Usage: npm test [-- path-filter ...]
//
// Each TypeScript file of src/, test/, bench/ and scripts/ is transpiled on its own (TypeScript's transpileModule:
// types are erased, nothing is type-checked; `npm run typecheck` does that) into .test-build/, in the repository's
// layout, and only when its source changed. Everything else there is a link to the real thing (models/, docs/,
// contracts/, package.json, test fixtures), so a path relative to a file's own URL finds what it found from source.
// Node 20's `--test` does not expand globs, so the files are collected here.
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { spawn } from "node:child_process";
import ts from "typescript";

const root = new URL("..", import.meta.url).pathname;
/** Where the compiled tree lives (git-ignored). */
const BUILD = join(root, ".test-build");
/** The folders holding TypeScript that tests import or run. */
const COMPILED = ["src", "test", "bench", "scripts"];
/** Never linked into the build: the build itself, and what Node finds by walking up from it anyway. */
const NOT_LINKED = new Set([".git", ".test-build", "node_modules", ...COMPILED]);
const filters = process.argv.slice(2);
/** Longest a single test file may run; the slowest takes about 20 s on this 2-core machine. */
const FILE_TIMEOUT_MS = Number(process.env.COCOON_TEST_FILE_TIMEOUT_MS ?? 150_000);

function walk(dir) {
  const out = [];
  for (const name of readdirSync(join(root, dir)).sort()) {
    const rel = join(dir, name);
    if (lstatSync(join(root, rel)).isDirectory()) out.push(...walk(rel));
    else out.push(rel);
  }
  return out;
}

/** Makes `at` a symbolic link to `target` (replacing whatever is there). */
function link(at, target) {
  try {
    const st = lstatSync(at);
    if (st.isSymbolicLink() && readlinkSync(at) === target) return;
    rmSync(at, { recursive: true, force: true });
  } catch {
    // not there yet
  }
  mkdirSync(dirname(at), { recursive: true });
  symlinkSync(target, at);
}

/** Brings .test-build/ up to date with the sources; returns how many files were transpiled. */
function build() {
  const options = {
    module: ts.ModuleKind.ESNext,
    target: ts.ScriptTarget.ES2022,
    inlineSourceMap: true,
    inlineSources: true,
  };
  let transpiled = 0;
  const wanted = new Set();
  for (const dir of COMPILED) {
    for (const rel of walk(dir)) {
      const source = join(root, rel);
      if (rel.endsWith(".ts")) {
        const out = join(BUILD, rel.slice(0, -3) + ".js");
        wanted.add(out);
        if (existsSync(out) && statSync(out).mtimeMs >= statSync(source).mtimeMs) continue;
        const { outputText } = ts.transpileModule(readFileSync(source, "utf8"), { fileName: source, compilerOptions: options });
        mkdirSync(dirname(out), { recursive: true });
        writeFileSync(out, outputText);
        transpiled++;
      } else {
        const out = join(BUILD, rel);
        wanted.add(out);
        link(out, source);
      }
    }
  }
  for (const name of readdirSync(root)) if (!NOT_LINKED.has(name)) link(join(BUILD, name), join(root, name));
  // Output whose source is gone (a file deleted or renamed) goes too, so nothing can import it.
  for (const dir of COMPILED) {
    if (!existsSync(join(BUILD, dir))) continue;
    for (const rel of walk(join(".test-build", dir))) {
      const at = join(root, rel);
      if (!wanted.has(at)) rmSync(at, { force: true });
    }
  }
  return transpiled;
}

/**
 * Files that load the whole machine for a while (a paid network of real processes under full load, or beside a browser): they run after the
 * others, alone, so that neither they nor the files beside them time out on a 2-core machine.
 */
const EXCLUSIVE = ["test/bench/soak-short.test.ts", "test/payments/kill-restart.test.ts", "test/payments/two-proxies-kill.test.ts", "test/dashboard/browser.test.ts"];

/** Runs the compiled forms of these test files, streaming the TAP output; resolves with the exit code. */
function run(files, concurrency) {
  const compiled = files.map((f) => join(".test-build", f.slice(0, -3) + ".js"));
  const args = ["--enable-source-maps", "--test", "--test-reporter=tap", `--test-concurrency=${concurrency}`, `--test-timeout=${FILE_TIMEOUT_MS}`, ...compiled];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
    child.on("close", (code) => resolve(code ?? 1));
  });
}

const files = walk("test").filter((f) => f.endsWith(".test.ts") && (filters.length === 0 || filters.some((x) => f.includes(x))));
if (files.length === 0) {
  console.error(`No test files matched ${filters.join(" ") || "test/**/*.test.ts"}.`);
  process.exit(1);
}
const started = Date.now();
const transpiled = build();
console.log(`# .test-build: ${transpiled} file(s) transpiled in ${Date.now() - started} ms`);
const shared = files.filter((f) => !EXCLUSIVE.includes(f));
const alone = files.filter((f) => EXCLUSIVE.includes(f));
const codes = [shared.length ? await run(shared, 2) : 0, alone.length ? await run(alone, 1) : 0];
process.exit(codes.find((c) => c !== 0) ?? 0);
