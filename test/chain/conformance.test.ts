import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { startChainServer } from "../../src/chain/server.js";
import { conformanceTable, runConformance, TABLE_BEGIN, TABLE_END } from "./conformance-steps.js";

test("TON Center conformance: @ton/ton and tonweb flows pass against cocoon chain, and docs/chain.md's table is current", async () => {
  const srv = await startChainServer({ port: 0 });
  try {
    const results = await runConformance(srv);
    const failed = results.filter((r) => !r.ok).map((r) => `${r.client}: ${r.name}: ${r.error}`);
    assert.deepEqual(failed, [], "every conformance step passes");
    assert.ok(results.length >= 20);
    const doc = readFileSync(new URL("../../docs/chain.md", import.meta.url), "utf8");
    const begin = doc.indexOf(TABLE_BEGIN);
    const end = doc.indexOf(TABLE_END);
    assert.ok(begin >= 0 && end > begin, "docs/chain.md holds the generated table between its markers");
    assert.equal(doc.slice(begin + TABLE_BEGIN.length, end).trim(), conformanceTable(results),
      "docs/chain.md's method table is stale: run `node --import tsx scripts/chain-conformance-table.ts`");
  } finally {
    await srv.close();
  }
});
