#!/usr/bin/env node
// Runs the whole test suite with Node's built-in runner. Node 20's `--test` does not expand globs,
// so the files are collected here. Usage: npm test [-- path-filter ...]
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { spawnSync } from "node:child_process";

const root = new URL("..", import.meta.url).pathname;
const filters = process.argv.slice(2);

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...collect(path));
    else if (name.endsWith(".test.ts")) out.push(relative(root, path));
  }
  return out;
}

const files = collect(join(root, "test")).filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error(`No test files matched ${filters.join(" ") || "test/**/*.test.ts"}.`);
  process.exit(1);
}
const args = ["--import", "tsx", "--test", "--test-concurrency=2", "--test-timeout=180000", ...files];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
