#!/usr/bin/env node
// Runs the whole test suite with Node's built-in runner. Node 20's `--test` does not expand globs,
// so the files are collected here. Usage: npm test [-- path-filter ...]
//
// A test file whose process stalls before it finishes (seen once here: a file that printed nothing at all until
// the runner's timeout, i.e. stuck while loading) is run once more on its own. Only such file-level timeouts are
// retried; a failed assertion fails the run at once. The retry is announced, and its result decides.
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { spawn } from "node:child_process";

const root = new URL("..", import.meta.url).pathname;
const filters = process.argv.slice(2);
/** Longest a single test file may run; the slowest takes about 20 s on this 2-core machine. */
const FILE_TIMEOUT_MS = Number(process.env.COCOON_TEST_FILE_TIMEOUT_MS ?? 150_000);

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...collect(path));
    else if (name.endsWith(".test.ts")) out.push(relative(root, path));
  }
  return out;
}

/**
 * Files that load the whole machine for a while (a paid network of real processes under full load, or beside a browser): they run after the
 * others, alone, so that neither they nor the files beside them time out on a 2-core machine.
 */
const EXCLUSIVE = ["test/bench/soak-short.test.ts", "test/payments/kill-restart.test.ts", "test/payments/two-proxies-kill.test.ts", "test/dashboard/browser.test.ts"];

/** Runs the files, streaming the TAP output; resolves with the exit code and the output. */
function run(files, concurrency = 2) {
  const args = ["--import", "tsx", "--test", "--test-reporter=tap", `--test-concurrency=${concurrency}`, `--test-timeout=${FILE_TIMEOUT_MS}`, ...files];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.on("close", (code) => resolve({ code: code ?? 1, out }));
  });
}

/** Test files that failed only by timing out as a whole (top-level `not ok` with a timeout failure type). */
function timedOutFiles(tap, files) {
  const stuck = [];
  const re = /^not ok \d+ - (.+\.test\.ts)\n {2}---\n(?: {2}.*\n)*? {2}failureType: 'testTimeoutFailure'/gm;
  for (const m of tap.matchAll(re)) {
    const file = relative(root, m[1].startsWith("/") ? m[1] : join(root, m[1]));
    if (files.includes(file)) stuck.push(file);
  }
  return stuck;
}

const files = collect(join(root, "test")).filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error(`No test files matched ${filters.join(" ") || "test/**/*.test.ts"}.`);
  process.exit(1);
}
/** Runs a set of files; a file that only stalled as a whole is run once more on its own. Resolves with the exit code. */
async function phase(set, concurrency) {
  if (set.length === 0) return 0;
  const first = await run(set, concurrency);
  if (first.code === 0) return 0;
  const stuck = timedOutFiles(first.out, set);
  // Every failing file has a top-level `not ok`; retry only when all of them are whole-file timeouts.
  const failingFiles = first.out.match(/^not ok \d+ - /gm)?.length ?? 0;
  if (stuck.length === 0 || failingFiles !== stuck.length) return first.code;
  console.log(`\n# ${stuck.length} test file(s) stalled and timed out as a whole (not a failed assertion): ${stuck.join(", ")}`);
  console.log("# running them once more on their own; their result decides");
  return (await run(stuck, 1)).code;
}

const shared = files.filter((f) => !EXCLUSIVE.includes(f));
const alone = files.filter((f) => EXCLUSIVE.includes(f));
const codes = [await phase(shared, 2), await phase(alone, 1)];
process.exit(codes.find((c) => c !== 0) ?? 0);
