/**
 * Regenerates the TON Center method table in docs/chain.md from the conformance steps (test/chain/conformance-steps.ts)
 * run against a fresh in-memory `cocoon chain`:  node --import tsx scripts/chain-conformance-table.ts
 * test/chain/conformance.test.ts fails when the table in the docs differs from what the steps give now.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { startChainServer } from "../src/chain/server.js";
import { conformanceTable, runConformance, TABLE_BEGIN, TABLE_END } from "../test/chain/conformance-steps.js";

const DOC = new URL("../docs/chain.md", import.meta.url);

const srv = await startChainServer({ port: 0 });
try {
  const results = await runConformance(srv);
  for (const r of results) console.log(`${r.ok ? "pass" : "FAIL"}  ${r.client}  ${r.name}${r.ok ? "" : `: ${r.error}`}`);
  const doc = readFileSync(DOC, "utf8");
  const begin = doc.indexOf(TABLE_BEGIN);
  const end = doc.indexOf(TABLE_END);
  if (begin < 0 || end < begin) throw new Error(`docs/chain.md has no "${TABLE_BEGIN}" ... "${TABLE_END}" markers`);
  writeFileSync(DOC, doc.slice(0, begin + TABLE_BEGIN.length) + "\n" + conformanceTable(results) + "\n" + doc.slice(end));
  console.log(`docs/chain.md: table written (${results.filter((r) => r.ok).length}/${results.length} steps pass)`);
} finally {
  await srv.close();
}
