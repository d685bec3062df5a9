import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { Duplex, PassThrough } from "node:stream";
import { Connection, StreamError } from "../../src/protocol/connection.js";
import { encodeFrame, FrameType, jsonPayload } from "../../src/protocol/frame.js";
import { CocoonError, ERROR_CODES, errorCodeFromPeer, httpStatusOf, isErrorCode, type ErrorCode } from "../../src/protocol/errors.js";
import { toApiError } from "../../src/client/client.js";

let keepAlive: NodeJS.Timeout;
before(() => (keepAlive = setInterval(() => {}, 1000)));
after(() => clearInterval(keepAlive));

function pair() {
  const ab = new PassThrough();
  const ba = new PassThrough();
  const x = Duplex.from({ readable: ba, writable: ab });
  const y = Duplex.from({ readable: ab, writable: ba });
  return { a: new Connection(x, { role: "a", nodeId: "A", initiator: true }), b: new Connection(y, { role: "b", nodeId: "B", initiator: false }), raw: x };
}

test("every code has an HTTP error status and a meaning", () => {
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    assert.ok(spec.status >= 400 && spec.status < 600, `${code}: status ${spec.status}`);
    assert.ok(spec.meaning.length > 10, `${code}: meaning`);
    assert.equal(isErrorCode(code), true);
  }
  assert.equal(isErrorCode("toString"), false, "inherited object keys are not codes");
  assert.equal(isErrorCode("nonsense"), false);
  assert.equal(errorCodeFromPeer("nonsense"), "protocol_error");
  assert.equal(errorCodeFromPeer("overloaded"), "overloaded");
});

test("a reset with a code outside the vocabulary arrives as protocol_error, the peer's code kept in the message", async () => {
  const { a, b } = pair();
  const seen = new Promise<StreamError>((resolve) =>
    b.on("stream", async (s) => {
      try {
        for await (const _ of s) {
          /* wait */
        }
      } catch (e) {
        resolve(e as StreamError);
      }
    }),
  );
  await a.ready;
  const s = a.open({});
  await s.write(Buffer.from("x"));
  // A hostile or newer peer: writes a Reset frame with a code this node does not know.
  a.sendRaw(encodeFrame(FrameType.Reset, s.id, jsonPayload({ code: "totally_made_up", message: "hi" })));
  const err = await seen;
  assert.ok(err instanceof CocoonError);
  assert.equal(err.code, "protocol_error");
  assert.match(err.message, /totally_made_up/);
  assert.equal(err.status, 502);
  a.close();
});

test("the client's API answers each code with its status and OpenAI error type", () => {
  const cases: [ErrorCode, number, string][] = [
    ["overloaded", 429, "rate_limit_error"],
    ["insufficient_funds", 402, "insufficient_quota"],
    ["model_not_found", 404, "invalid_request_error"],
    ["no_worker", 503, "api_error"],
    ["cancelled", 499, "api_error"],
  ];
  for (const [code, status, type] of cases) {
    const api = toApiError(new StreamError(code, "x"));
    assert.equal(api.status, status, code);
    assert.equal(api.status, httpStatusOf(code));
    assert.equal(api.type, type, code);
    assert.equal(api.code, code);
  }
  assert.equal(toApiError(new Error("boom")).status, 500);
});

/** The table in docs/protocol.md is generated from ERROR_CODES; COCOON_UPDATE_DOCS=1 rewrites it. */
test("docs/protocol.md lists exactly the codes in src/protocol/errors.ts", () => {
  const path = new URL("../../docs/protocol.md", import.meta.url);
  const doc = readFileSync(path, "utf8");
  const begin = "<!-- error-codes:begin (generated from src/protocol/errors.ts by test/protocol/errors.test.ts) -->\n";
  const end = "<!-- error-codes:end -->";
  const rows = Object.entries(ERROR_CODES).map(([code, s]) => `| \`${code}\` | ${s.status} | ${s.retryable ? "yes" : "no"} | ${s.meaning} |`);
  const table = `${begin}| code | HTTP | retry may succeed | meaning |\n|---|---|---|---|\n${rows.join("\n")}\n${end}`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  assert.ok(i >= 0 && j > i, "docs/protocol.md has the generated error-code table markers");
  const current = doc.slice(i, j + end.length);
  if (current !== table && process.env.COCOON_UPDATE_DOCS === "1") writeFileSync(path, doc.slice(0, i) + table + doc.slice(j + end.length));
  else assert.equal(current, table, "the error-code table is stale: run COCOON_UPDATE_DOCS=1 node --import tsx --test test/protocol/errors.test.ts");
});
