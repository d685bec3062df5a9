import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Address, beginCell, toNano } from "@ton/core";
import { ChainError } from "../../src/chain/localChain.js";
import { parseHttpRequest, parseStack } from "../../src/chain/rpcParams.js";
import { RPC_METHODS } from "../../src/chain/rpcMethods.js";
import { startChainServer } from "../../src/chain/server.js";

function onlyChainErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof ChainError)) throw e;
    assert.ok([404, 405, 413, 422].includes(e.code), `client errors only, got ${e.code}`);
    assert.ok(e.message.length > 10);
  }
}

test("request envelope parser survives random input", () => {
  fc.assert(
    fc.property(
      fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH"),
      fc.oneof(fc.string(), fc.constantFrom("/jsonRPC", "/api/v2/jsonRPC", "/getAddressBalance?address=x", "/a/b", "/", "//x")),
      fc.oneof(fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)), fc.json().map((j) => Buffer.from(j))),
      (m, path, body) => onlyChainErrors(() => parseHttpRequest(m, path, body)),
    ),
    { numRuns: 2000 },
  );
});

test("JSON-RPC envelope: method and params are extracted, id echoed", () => {
  const r = parseHttpRequest("POST", "/api/v2/jsonRPC", Buffer.from(JSON.stringify({ method: "getMasterchainInfo", params: { a: 1 }, id: "7" })));
  assert.deepEqual(r, { method: "getMasterchainInfo", params: { a: 1 }, id: "7" });
  const g = parseHttpRequest("GET", "/getTransactions?address=abc&limit=5", Buffer.alloc(0));
  assert.deepEqual(g, { method: "getTransactions", params: { address: "abc", limit: "5" } });
  assert.throws(() => parseHttpRequest("GET", "/jsonRPC", Buffer.alloc(0)), (e: ChainError) => e.code === 405);
  assert.throws(() => parseHttpRequest("POST", "/jsonRPC", Buffer.from("{")), /not valid JSON/);
  assert.throws(() => parseHttpRequest("POST", "/jsonRPC", Buffer.alloc(2 * 1024 * 1024)), (e: ChainError) => e.code === 413);
});

test("stack parser: valid forms decode, random input gives clear errors", () => {
  const cell = beginCell().storeUint(5, 8).endCell();
  const items = parseStack([["num", "123"], ["num", "-0x10"], ["tvm.Cell", cell.toBoc().toString("base64")], ["tvm.Slice", { bytes: cell.toBoc().toString("base64") }]]);
  assert.deepEqual(items.map((i) => i.type), ["int", "int", "cell", "slice"]);
  assert.equal((items[1] as { value: bigint }).value, -16n);
  assert.deepEqual(parseStack("[]"), []);
  fc.assert(fc.property(fc.anything(), (v) => onlyChainErrors(() => parseStack(v))), { numRuns: 2000 });
  fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom("num", "tvm.Cell", "tvm.Slice", "null", "x"), fc.oneof(fc.string(), fc.integer(), fc.base64String()))),
    (v) => onlyChainErrors(() => parseStack(v))), { numRuns: 1000 });
});

test("server answers random method calls with JSON, no internal error, status = code, and keeps serving", async () => {
  const internal: string[] = [];
  const srv = await startChainServer({ port: 0, log: (s) => { if (s.includes("internal error")) internal.push(s); } });
  try {
    const someAddress = new Address(0, Buffer.alloc(32, 3)).toString();
    const paramValue = fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.constant(someAddress), fc.base64String({ maxLength: 40 }),
      fc.constant(null), fc.boolean(), fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }));
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...RPC_METHODS, "bogus"),
        fc.dictionary(fc.constantFrom("address", "amount", "boc", "stack", "method", "lt", "hash", "limit", "seqno", "body",
          "source", "destination", "created_lt", "workchain", "shard", "after_lt", "after_hash", "count", "config_id",
          "libraries", "init_code", "init_data", "ignore_chksig", "unixtime", "root_hash", "file_hash"), paramValue),
        async (method, params) => {
          const r = await fetch(srv.url, { method: "POST", body: JSON.stringify({ method, params, id: 1, jsonrpc: "2.0" }) });
          const j = (await r.json()) as { ok: boolean; code?: number; error?: string };
          assert.equal(typeof j.ok, "boolean");
          if (!j.ok) {
            // TON Center's statuses: the HTTP status is the code; 500 only for a refusal the chain explains.
            assert.equal(r.status, j.code, `${method} ${JSON.stringify(params)} -> HTTP ${r.status}, code ${j.code}`);
            assert.ok([404, 409, 422, 500].includes(j.code!), `${method} ${JSON.stringify(params)} -> ${j.code} ${j.error}`);
            assert.ok(typeof j.error === "string" && j.error.length > 10);
          } else {
            assert.equal(r.status, 200);
          }
        },
      ),
      { numRuns: 150 },
    );
    const info = await (await fetch(srv.url.replace("jsonRPC", "getMasterchainInfo"))).json();
    assert.equal(info.ok, true);
    assert.deepEqual(internal, [], "no request may end in an unexplained internal error");
  } finally {
    await srv.close();
  }
});

test("transaction history is bounded and the sandbox's in-memory log is trimmed", async () => {
  const srv = await startChainServer({ port: 0, history: { perAccount: 3, total: 50 } });
  try {
    const to = new Address(0, Buffer.alloc(32, 4));
    for (let i = 0; i < 6; i++) await srv.chain.faucet(to, toNano("1"));
    assert.equal((srv.blockchain as unknown as { transactions: unknown[] }).transactions.length, 0);
    const r = await fetch(srv.url, { method: "POST", body: JSON.stringify({ method: "getTransactions", params: { address: to.toString(), limit: 100 } }) });
    const j = await r.json();
    assert.equal(j.ok, true);
    assert.equal(j.result.length, 3);
    // Six grants arrived (an uninitialized account pays a few nanoTON of storage fee between them).
    const balance = (await srv.chain.accountInfo(to)).balance;
    assert.ok(balance <= toNano("6") && balance > toNano("5.999"), `balance ${balance}`);
  } finally {
    await srv.close();
  }
});
