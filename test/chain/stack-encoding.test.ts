import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Address, beginCell, Cell, external, storeMessage, TupleItem } from "@ton/core";
import { cellObject, normalizedExternalHash, stackItemJson } from "../../src/chain/toncenterFormat.js";
import { cellFromObject } from "../../src/chain/rpcParams.js";
import { ChainError } from "../../src/chain/localChain.js";
import { tokenContent } from "../../src/chain/tokenData.js";
import { createHash } from "node:crypto";
import { Dictionary } from "@ton/core";

const addrCell = beginCell().storeAddress(new Address(0, Buffer.alloc(32, 7))).endCell();
const b64 = (c: Cell) => c.toBoc().toString("base64");
const int = (v: number): TupleItem => ({ type: "int", value: BigInt(v) });
const NULL: TupleItem = { type: "null" };
const pair = (a: TupleItem, b: TupleItem): TupleItem => ({ type: "tuple", items: [a, b] });

test("top-level stack items are printed as TON Center prints them", () => {
  assert.deepEqual(stackItemJson(int(255)), ["num", "0xff"]);
  assert.deepEqual(stackItemJson(int(-5)), ["num", "-0x5"]);
  // slices and builders are cells, with TON Center's legacy object form next to the BoC
  for (const type of ["slice", "cell", "builder"] as const) {
    const j = stackItemJson({ type, cell: addrCell }) as [string, { bytes: string; object: { data: { len: number } } }];
    assert.equal(j[0], "cell");
    assert.equal(j[1].bytes, b64(addrCell));
    assert.equal(j[1].object.data.len, 267);
  }
  assert.deepEqual(stackItemJson(NULL), ["list", { "@type": "tvm.list", elements: [] }]);
});

test("cons lists are flattened; other tuples stay tuples; nested slices are stackEntryCell", () => {
  const list = pair(int(1), pair(int(2), NULL));
  assert.deepEqual(stackItemJson(list), ["list", { "@type": "tvm.list", elements: [
    { "@type": "tvm.stackEntryNumber", number: { "@type": "tvm.numberDecimal", number: "1" } },
    { "@type": "tvm.stackEntryNumber", number: { "@type": "tvm.numberDecimal", number: "2" } },
  ] }]);
  const tuple: TupleItem = { type: "tuple", items: [int(1), { type: "slice", cell: addrCell }, NULL] };
  assert.deepEqual(stackItemJson(tuple), ["tuple", { "@type": "tvm.tuple", elements: [
    { "@type": "tvm.stackEntryNumber", number: { "@type": "tvm.numberDecimal", number: "1" } },
    { "@type": "tvm.stackEntryCell", cell: { "@type": "tvm.cell", bytes: b64(addrCell) } },
    { "@type": "tvm.stackEntryList", list: { "@type": "tvm.list", elements: [] } },
  ] }]);
  // A pair whose tail is not a list is a tuple, not a list.
  assert.equal((stackItemJson(pair(int(1), int(2))) as string[])[0], "tuple");
  // A long list does not overflow the stack and keeps its order.
  let long: TupleItem = NULL;
  for (let i = 9999; i >= 0; i--) long = pair(int(i), long);
  const j = stackItemJson(long) as [string, { elements: { number: { number: string } }[] }];
  assert.equal(j[1].elements.length, 10000);
  assert.equal(j[1].elements[9999].number.number, "9999");
});

test("cell object form: round trip through sendQuerySimple's parser; a huge DAG prints bytes only", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 127 }), fc.integer({ min: 0, max: 7 }), (bytes, cut) => {
    const bits = Math.max(0, bytes.length * 8 - cut);
    const c = beginCell().storeBits(beginCell().storeBuffer(Buffer.from(bytes)).endCell().bits.substring(0, bits))
      .storeRef(addrCell).endCell();
    assert.ok(cellFromObject(cellObject(c), "body").equals(c));
  }), { numRuns: 200 });
  let dag = beginCell().endCell();
  for (let i = 0; i < 20; i++) dag = beginCell().storeUint(i, 8).storeRef(dag).storeRef(dag).endCell();
  assert.equal(cellObject(dag), undefined);
  const j = stackItemJson({ type: "cell", cell: dag }) as [string, { bytes: string; object?: unknown }];
  assert.equal(j[1].object, undefined);
  assert.equal(j[1].bytes, b64(dag));
});

test("cell object parser refuses random input with a 422, never a crash", () => {
  fc.assert(fc.property(fc.anything({ maxDepth: 4 }), (v) => {
    try {
      cellFromObject(v, "body");
    } catch (e) {
      assert.ok(e instanceof ChainError && e.code === 422, String(e));
    }
  }), { numRuns: 500 });
});

test("TEP-467 normalized hash ignores the sender's wrapping (init, inline body) but not the body or destination", () => {
  const dest = new Address(0, Buffer.alloc(32, 1));
  const body = beginCell().storeUint(42, 32).endCell();
  const init = { code: beginCell().storeUint(1, 8).endCell(), data: beginCell().endCell() };
  const plain = external({ to: dest, body });
  const withInit = external({ to: dest, body, init });
  const h = normalizedExternalHash(plain);
  assert.ok(h.equals(normalizedExternalHash(withInit)));
  const cellOf = (m: typeof plain) => beginCell().store(storeMessage(m)).endCell();
  assert.ok(!cellOf(plain).hash().equals(cellOf(withInit).hash()), "the plain hashes differ");
  assert.ok(!h.equals(normalizedExternalHash(external({ to: dest, body: beginCell().storeUint(43, 32).endCell() }))));
  assert.ok(!h.equals(normalizedExternalHash(external({ to: new Address(0, Buffer.alloc(32, 2)), body }))));
  // The normalized form itself: ext_in_msg_info$10, addr_none, import_fee 0, no init, body in a reference.
  const norm = beginCell().storeUint(2, 2).storeUint(0, 2).storeAddress(dest).storeCoins(0).storeBit(0).storeBit(1).storeRef(body).endCell();
  assert.ok(h.equals(norm.hash()));
});

test("token content: off-chain URI and on-chain dictionary (TEP-64)", () => {
  const off = beginCell().storeUint(1, 8).storeStringTail("https://example.org/jetton.json").endCell();
  assert.deepEqual(tokenContent(off), { type: "offchain", data: "https://example.org/jetton.json" });
  const dict = Dictionary.empty(Dictionary.Keys.BigUint(256), Dictionary.Values.Cell());
  const key = (k: string) => BigInt("0x" + createHash("sha256").update(k).digest("hex"));
  dict.set(key("name"), beginCell().storeUint(0, 8).storeStringTail("Cocoon Test").endCell());
  dict.set(key("decimals"), beginCell().storeUint(0, 8).storeStringTail("9").endCell());
  const on = beginCell().storeUint(0, 8).storeDict(dict).endCell();
  assert.deepEqual(tokenContent(on), { type: "onchain", data: { name: "Cocoon Test", decimals: "9" } });
  assert.throws(() => tokenContent(beginCell().storeUint(7, 8).endCell()), /unknown prefix/);
});

test("input stacks take TON Center's tuple and list forms: what runGetMethod prints parses back", async () => {
  const { parseStack } = await import("../../src/chain/rpcParams.js");
  const cellItem: TupleItem = { type: "cell", cell: addrCell };
  const samples: TupleItem[] = [
    { type: "tuple", items: [int(1), cellItem, { type: "tuple", items: [int(-3), int(4), int(5)] }] },
    pair(int(1), pair(cellItem, NULL)),
    NULL,
  ];
  for (const item of samples) {
    const [back] = parseStack([stackItemJson(item)]);
    assert.deepEqual(stackItemJson(back), stackItemJson(item));
  }
  // A list comes back as the cons list it stands for.
  const [list] = parseStack([["list", { "@type": "tvm.list", elements: [
    { "@type": "tvm.stackEntryNumber", number: { "@type": "tvm.numberDecimal", number: "7" } },
  ] }]]);
  assert.deepEqual(list, pair(int(7), NULL));
  assert.throws(() => parseStack([["num", (2n ** 256n).toString()]]), /257-bit/);
  assert.equal(parseStack([["num", (-(2n ** 256n)).toString()]])[0].type, "int");
  let deep: unknown = { "@type": "tvm.stackEntryTuple", tuple: { elements: [] } };
  for (let i = 0; i < 20; i++) deep = { "@type": "tvm.stackEntryTuple", tuple: { elements: [deep] } };
  assert.throws(() => parseStack([["tuple", (deep as { tuple: unknown }).tuple]]), (e: unknown) => e instanceof ChainError && e.code === 422);
});
