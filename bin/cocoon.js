#!/usr/bin/env node
// Entry point of the `cocoon` command. Runs the compiled CLI from dist/ (built by `npm install` via `prepare`).
import { existsSync } from "node:fs";
const main = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(main)) {
  console.error("cocoon: dist/ is missing. Run `npm install` (or `npm run build`) in the project folder first.");
  process.exit(1);
}
await import(main.href);
