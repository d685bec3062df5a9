// The multipart/form-data reader survives any bytes (a clear Error, never a crash) and reads what encoders write.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { boundaryFromBody, boundaryOf, parseMultipart } from "../../src/util/multipart.js";

test("reads a form as fetch's FormData encodes it", async () => {
  const form = new FormData();
  form.append("model", "whisper-1");
  form.append("file", new Blob([new Uint8Array([0, 1, 2, 255, 13, 10, 45, 45])]), "a.wav");
  const req = new Request("http://x/", { method: "POST", body: form });
  const boundary = boundaryOf(req.headers.get("content-type")!)!;
  const body = Buffer.from(await req.arrayBuffer());
  assert.equal(boundaryFromBody(body), boundary);
  const parts = parseMultipart(body, boundary);
  assert.deepEqual(parts.map((p) => [p.name, p.filename, p.data.length]), [["model", undefined, 9], ["file", "a.wav", 8]]);
  assert.deepEqual([...parts[1]!.data], [0, 1, 2, 255, 13, 10, 45, 45]);
});

test("random bytes and cut-off forms give a clear Error", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, prefixed) => {
      const body = prefixed ? Buffer.concat([Buffer.from("--b\r\n"), bytes]) : Buffer.from(bytes);
      try {
        assert.ok(Array.isArray(parseMultipart(body, "b")));
      } catch (e) {
        assert.ok(e instanceof Error && /multipart|boundary|field/.test(e.message), String(e));
      }
      boundaryFromBody(body);
    }),
    { numRuns: 2000 },
  );
  assert.throws(() => parseMultipart(Buffer.from('--b\r\nContent-Disposition: form-data; name="x"\r\n\r\nvalue'), "b"), /cut off/);
  assert.equal(boundaryOf("application/json"), undefined);
  assert.equal(boundaryOf('multipart/form-data; boundary="quoted b"'), "quoted b");
});
