import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { SseParser, parseSse } from "../../src/protocol/sse.js";

test("parses vLLM-style streams split at any byte, with CRLF and comments", async () => {
  const wire = ': keep-alive\r\ndata: {"a":1}\r\n\r\nevent: x\ndata: line1\ndata: line2\n\ndata:[DONE]\n\n';
  for (let cut = 1; cut < wire.length; cut++) {
    const enc = new TextEncoder();
    async function* chunks() {
      yield enc.encode(wire.slice(0, cut));
      yield enc.encode(wire.slice(cut));
    }
    const events = [];
    for await (const ev of parseSse(chunks())) events.push(ev);
    assert.deepEqual(events, [
      { event: "message", data: '{"a":1}' },
      { event: "x", data: "line1\nline2" },
      { event: "message", data: "[DONE]" },
    ]);
  }
});

test("multi-byte UTF-8 split across chunks survives", async () => {
  const bytes = new TextEncoder().encode('data: {"t":"héllo 🌍"}\n\n');
  async function* one() {
    for (const b of bytes) yield new Uint8Array([b]);
  }
  const events = [];
  for await (const ev of parseSse(one())) events.push(ev);
  assert.equal(JSON.parse(events[0]!.data).t, "héllo 🌍");
});

test("random text never crashes the parser", () => {
  fc.assert(
    fc.property(fc.array(fc.string({ maxLength: 50 }), { maxLength: 10 }), (parts) => {
      const p = new SseParser();
      for (const part of parts) for (const ev of p.push(part)) assert.equal(typeof ev.data, "string");
    }),
    { numRuns: 1000 },
  );
});
