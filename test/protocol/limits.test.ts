// Memory bounds of one protocol connection (issue #10 item 4): what a peer can make us buffer.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Duplex, PassThrough } from "node:stream";
import fc from "fast-check";
import { ByteBudget, Connection, QUEUED_CHUNK_OVERHEAD, StreamError, type Stream } from "../../src/protocol/connection.js";
import { encodeFrame, FrameDecoder, FrameType, jsonPayload, ProtocolError, readFirstFrame } from "../../src/protocol/frame.js";

let keepAlive: NodeJS.Timeout;
before(() => (keepAlive = setInterval(() => {}, 1000)));
after(() => clearInterval(keepAlive));

function pipePair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  return [Duplex.from({ readable: ba, writable: ab }), Duplex.from({ readable: ab, writable: ba })];
}

function pair(opts: Partial<ConstructorParameters<typeof Connection>[1]> = {}) {
  const [x, y] = pipePair();
  const a = new Connection(x, { role: "a", nodeId: "A", initiator: true });
  const b = new Connection(y, { role: "b", nodeId: "B", initiator: false, ...opts });
  return { a, b, x, y };
}

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

test("before Hello, a frame above 4 KiB is refused from its header", async () => {
  const [x, y] = pipePair();
  x.on("error", () => {});
  const b = new Connection(y, { role: "b", nodeId: "B", initiator: false });
  const head = Buffer.alloc(10);
  head.writeUInt32BE(16 * 1024 * 1024, 0);
  head[4] = FrameType.Hello;
  x.write(head);
  await assert.rejects(b.ready, /frame announces 16777216 bytes, above the 4096-byte limit/);
  x.destroy();
});

test("after Hello, frames up to the stream window are accepted", async () => {
  const { a, b } = pair();
  b.on("stream", async (s) => {
    const body = await s.readAll();
    s.reply({ n: body.length });
    s.end();
  });
  await a.ready;
  const s = a.open({});
  // One Data frame of 512 KiB, written raw (our sender splits at 64 KiB; another implementation might not).
  a.sendRaw(encodeFrame(FrameType.Data, s.id, Buffer.alloc(512 * 1024)));
  s.end();
  assert.deepEqual(await s.replyHead(), { n: 512 * 1024 });
  a.close();
});

test("a responder that ended without reading resets the stream when the peer keeps writing; nothing stays buffered", async () => {
  const { a, b } = pair();
  b.on("stream", (s) => {
    s.reply({ models: [] });
    s.end();
  });
  await a.ready;
  const s = a.open({ op: "models" });
  assert.deepEqual(await s.replyHead(), { models: [] });
  await assert.rejects(s.write(Buffer.alloc(1024 * 1024)), (err: StreamError) => err.code === "stream_closed");
  await tick();
  assert.equal(b.activeStreams, 0);
  assert.equal(b.bufferedBytes, 0);
  a.close();
});

test("a stream whose both halves ended is forgotten on both sides", async () => {
  const { a, b } = pair();
  b.on("stream", async (s) => {
    await s.readAll();
    s.reply({});
    s.end();
  });
  await a.ready;
  for (let i = 0; i < 20; i++) {
    const s = a.open({});
    await s.write(Buffer.from("x"));
    s.end();
    await s.readAll();
  }
  await tick();
  assert.equal(a.activeStreams, 0);
  assert.equal(b.activeStreams, 0);
  a.close();
});

test("unread data is bounded per connection: the stream that passes the budget is reset as overloaded", async () => {
  const limit = 4 * 1024 * 1024;
  const { a, b } = pair({ maxBufferedBytes: limit });
  const held: Stream[] = [];
  b.on("stream", (s) => held.push(s)); // never read
  await a.ready;
  const codes: string[] = [];
  await Promise.all(
    Array.from({ length: 12 }, async () => {
      const s = a.open({});
      try {
        await s.write(Buffer.alloc(1024 * 1024));
      } catch (err) {
        codes.push((err as StreamError).code);
      }
    }),
  );
  await tick(50);
  assert.ok(b.bufferedBytes <= limit, `${b.bufferedBytes} bytes buffered`);
  assert.ok(codes.length >= 8 && codes.every((c) => c === "overloaded"), codes.join(","));
  assert.ok(!b.closed, "the connection itself stays up");
  // Reading frees the budget.
  for (const s of held) if (!s.error) void s.readAll().catch(() => {});
  await tick(50);
  assert.equal(b.bufferedBytes, 0);
  a.close();
});

test("a budget shared by connections bounds their total", async () => {
  const shared = new ByteBudget(2 * 1024 * 1024);
  const conns = [pair({ sharedBudget: shared }), pair({ sharedBudget: shared })];
  for (const { b } of conns) b.on("stream", () => {});
  await Promise.all(conns.map(({ a }) => a.ready));
  const results = await Promise.all(
    conns.flatMap(({ a }) => [0, 1].map(() => a.open({}).write(Buffer.alloc(1024 * 1024)).then(() => "ok", (e: StreamError) => e.code))),
  );
  assert.ok(shared.used <= shared.limit);
  assert.ok(results.includes("overloaded"), results.join(","));
  for (const { a } of conns) a.close();
  await tick();
  assert.equal(shared.used, 0, "closing gives the shared budget back");
});

test("tiny Data frames are charged their overhead, so a million 1-byte frames cannot hide in a 1 MiB window", async () => {
  const limit = 1024 * 1024;
  const { a, b } = pair({ maxBufferedBytes: limit });
  let stream: Stream | undefined;
  b.on("stream", (s) => (stream = s));
  await a.ready;
  const s = a.open({});
  const one = Buffer.from([1]);
  for (let i = 0; i < 10_000; i++) a.sendRaw(encodeFrame(FrameType.Data, s.id, one));
  await tick(100);
  assert.ok(stream);
  assert.equal(stream.error?.code, "overloaded");
  assert.ok(Math.floor(limit / (1 + QUEUED_CHUNK_OVERHEAD)) < 10_000);
  assert.equal(b.bufferedBytes, 0);
  a.close();
});

test("a huge version list is not echoed back whole", async () => {
  const [x, y] = pipePair();
  x.on("error", () => {});
  const b = new Connection(y, { role: "b", nodeId: "B", initiator: false });
  const versions = Array.from({ length: 500 }, (_, i) => i + 100);
  x.write(encodeFrame(FrameType.Hello, 0, jsonPayload({ protocol: "cocoon", versions, role: "a", node: "A", software: "x" })));
  const err = await b.ready.then(() => undefined, (e: Error) => e);
  assert.ok(err instanceof ProtocolError);
  assert.match(err.message, /peer speaks 100,101,102,103,104,105,106,107,… \(500 in all\)/);
  assert.ok(err.message.length < 300);
  x.destroy();
});

test("a GoAway or Reset message from the peer is cut before it reaches logs", async () => {
  const { a, b } = pair();
  await a.ready;
  const closed = new Promise<Error | undefined>((r) => b.once("close", r));
  a.sendRaw(encodeFrame(FrameType.GoAway, 0, jsonPayload({ code: "x".repeat(5000), message: "y".repeat(100_000) })));
  const err = await closed;
  assert.ok(err && err.message.length < 1200, `${err?.message.length}`);
  assert.ok((err as StreamError).code.length < 100);
  a.destroy();
});

test("a peer that pings without reading gets no Pongs once our output backs up", async () => {
  const [x, y] = pipePair();
  const b = new Connection(y, { role: "b", nodeId: "B", initiator: false });
  x.on("error", () => {});
  // x never reads: everything b writes stays in its writable buffer.
  x.write(encodeFrame(FrameType.Hello, 0, jsonPayload({ protocol: "cocoon", versions: [1], role: "a", node: "A", software: "x" })));
  await b.ready;
  const ping = encodeFrame(FrameType.Ping, 0, Buffer.alloc(8));
  for (let i = 0; i < 200_000; i++) x.write(ping);
  await tick(200);
  assert.ok(y.writableLength < 2 * 1024 * 1024, `${y.writableLength} bytes wait in the output`);
  b.destroy();
  x.destroy();
});

test("the decoder with a small limit survives random bytes", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), fc.integer({ min: 0, max: 100 }), (chunks, limit) => {
      const dec = new FrameDecoder(limit);
      try {
        for (const c of chunks) for (const f of dec.push(Buffer.from(c))) assert.ok(f.payload.length <= limit);
      } catch (err) {
        assert.ok(err instanceof ProtocolError, `unexpected ${err}`);
      }
    }),
    { numRuns: 2000 },
  );
});

test("the handshake's first-frame reader survives random bytes and finds an encoded frame however it is followed", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.integer({ min: 0, max: 80 }), (bytes, limit) => {
      try {
        const got = readFirstFrame(Buffer.from(bytes), limit);
        if (got) {
          assert.ok(got.frame.payload.length <= limit);
          assert.equal(got.frame.payload.length + got.rest.length + 10, bytes.length);
        }
      } catch (err) {
        assert.ok(err instanceof ProtocolError, `unexpected ${err}`);
      }
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 8, maxLength: 64 }), fc.uint8Array({ maxLength: 40 }), (nonce, tail) => {
      const wire = Buffer.concat([encodeFrame(FrameType.Solution, 0, nonce), tail]);
      const got = readFirstFrame(wire, 64)!;
      assert.deepEqual(new Uint8Array(got.frame.payload), nonce);
      assert.deepEqual(new Uint8Array(got.rest), tail);
      assert.equal(readFirstFrame(wire.subarray(0, 9 + nonce.length), 64), undefined);
    }),
  );
});
