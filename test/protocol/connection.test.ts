import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Duplex, PassThrough } from "node:stream";
import { Connection, StreamError, type Stream } from "../../src/protocol/connection.js";
import { encodeFrame, FrameType, jsonPayload } from "../../src/protocol/frame.js";

// In-memory pipes hold no handle open and the ping timer is unref'd: keep the event loop alive.
let keepAlive: NodeJS.Timeout;
before(() => (keepAlive = setInterval(() => {}, 1000)));
after(() => clearInterval(keepAlive));

/** Two connected in-memory byte pipes: what one side writes, the other reads. */
function pipePair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  const a = Duplex.from({ readable: ba, writable: ab });
  const b = Duplex.from({ readable: ab, writable: ba });
  return [a, b];
}

function pair(opts: Partial<ConstructorParameters<typeof Connection>[1]> = {}) {
  const [x, y] = pipePair();
  const a = new Connection(x, { role: "a", nodeId: "A", initiator: true, ...opts });
  const b = new Connection(y, { role: "b", nodeId: "B", initiator: false, ...opts });
  return { a, b };
}

test("hello negotiates the highest common version", async () => {
  const [x, y] = pipePair();
  const a = new Connection(x, { role: "a", nodeId: "A", initiator: true, versions: [1, 2] });
  const b = new Connection(y, { role: "b", nodeId: "B", initiator: false, versions: [1] });
  await Promise.all([a.ready, b.ready]);
  assert.equal(a.version, 1);
  assert.equal(b.peerHello?.node, "A");
  a.close();
});

test("no common version closes with a clear reason", async () => {
  const [x, y] = pipePair();
  const a = new Connection(x, { role: "a", nodeId: "A", initiator: true, versions: [2] });
  const b = new Connection(y, { role: "b", nodeId: "B", initiator: false, versions: [1] });
  const [ea, eb] = await Promise.all([a.ready.then(() => undefined, (e) => e), b.ready.then(() => undefined, (e) => e)]);
  assert.match(String((ea ?? eb)?.message), /no common protocol version/);
});

test("many concurrent streams carry their own data", async () => {
  const { a, b } = pair();
  b.on("stream", async (s) => {
    const body = await s.readAll();
    s.reply({ n: s.head!.n });
    await s.write(Buffer.concat([body, body]));
    s.end({ done: true });
  });
  await a.ready;
  const results = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const s = a.open({ n: i });
      await s.write(Buffer.from(`req-${i}`));
      s.end();
      const head = await s.replyHead();
      const body = await s.readAll();
      return { head, body: body.toString(), trailer: s.trailer };
    }),
  );
  results.forEach((r, i) => {
    assert.equal(r.head.n, i);
    assert.equal(r.body, `req-${i}req-${i}`);
    assert.deepEqual(r.trailer, { done: true });
  });
  a.close();
});

test("flow control: a sender blocks until the reader consumes", async () => {
  const { a, b } = pair({ streamWindow: 1024 });
  let written = 0;
  let resolveStream!: (s: any) => void;
  const incoming = new Promise<any>((r) => (resolveStream = r));
  b.on("stream", (s) => resolveStream(s));
  await a.ready;
  const s = a.open({});
  const writer = (async () => {
    for (let i = 0; i < 8; i++) {
      await s.write(Buffer.alloc(512, i));
      written += 512;
    }
    s.end();
  })();
  const rs = await incoming;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(written, 1024, "sender must stop at the window");
  const body = await rs.readAll();
  await writer;
  assert.equal(body.length, 4096);
  a.close();
});

test("reset propagates to the other side as a StreamError with the code", async () => {
  const { a, b } = pair();
  let seen: StreamError | undefined;
  const done = new Promise<void>((resolve) =>
    b.on("stream", async (s) => {
      try {
        for await (const _ of s) {
          /* wait */
        }
      } catch (e) {
        seen = e as StreamError;
      }
      resolve();
    }),
  );
  await a.ready;
  const s = a.open({});
  await s.write(Buffer.from("x"));
  s.reset("cancelled", "app went away");
  await done;
  assert.equal(seen?.code, "cancelled");
  assert.ok(b.activeStreams === 0);
  a.close();
});

test("a stream's signal aborts with the StreamError when the stream fails, whether it was asked for before or after", async () => {
  const { a, b } = pair();
  const accepted: Stream[] = [];
  const two = new Promise<void>((resolve) =>
    b.on("stream", (s) => {
      accepted.push(s);
      if (accepted.length === 2) resolve();
    }),
  );
  await a.ready;
  const early = a.open({ n: 1 });
  const late = a.open({ n: 2 });
  await two;
  const before = accepted[0]!.signal; // asked for while the stream is alive
  assert.equal(before.aborted, false);
  const aborted = new Promise<unknown>((resolve) => before.addEventListener("abort", () => resolve(before.reason), { once: true }));
  early.reset("cancelled", "app went away");
  late.reset("bad_request", "no");
  const reason = await aborted;
  assert.ok(reason instanceof StreamError && reason.code === "cancelled", String(reason));
  // Asked for only after the failure: already aborted, with the same reason.
  while (!accepted[1]!.error) await new Promise((r) => setImmediate(r));
  const after = accepted[1]!.signal;
  assert.equal(after.aborted, true);
  assert.ok(after.reason instanceof StreamError && after.reason.code === "bad_request");
  assert.equal(accepted[1]!.signal, after, "the same signal every time");
  a.close();
});

test("connection loss fails every open stream", async () => {
  const { a, b } = pair();
  b.on("stream", () => {});
  await a.ready;
  const s = a.open({});
  const head = s.replyHead();
  b.destroy(new Error("boom"));
  await assert.rejects(head, (e: StreamError) => e.code === "connection_lost");
});

test("a silent peer is dropped after the idle timeout", async () => {
  const [x, y] = pipePair();
  const a = new Connection(x, { role: "a", nodeId: "A", initiator: true, pingIntervalMs: 20, idleTimeoutMs: 60 });
  // The other side says Hello and then nothing, not even Pong.
  y.write(encodeFrame(FrameType.Hello, 0, jsonPayload({ protocol: "cocoon", versions: [1], role: "mute", node: "M", software: "t" })));
  y.resume();
  y.on("error", () => {});
  await a.ready;
  const reason = await new Promise<Error | undefined>((r) => a.once("close", r));
  assert.match(String(reason?.message), /silent/);
});

test("garbage from a peer closes the connection with a protocol error, no crash", async () => {
  const [x, y] = pipePair();
  const a = new Connection(x, { role: "a", nodeId: "A", initiator: true });
  y.resume();
  y.on("error", () => {});
  y.write(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  const reason = await new Promise<Error | undefined>((r) => a.once("close", r));
  assert.match(String(reason?.message), /frame|Hello/);
});

test("round-trip time is measured by ping", async () => {
  const { a, b } = pair({ pingIntervalMs: 20 });
  await a.ready;
  await new Promise((r) => setTimeout(r, 80));
  assert.ok(a.rttMs !== undefined && a.rttMs >= 0);
  a.close();
  void b;
});

test("a stream and a control message that arrive before the owner attached its listeners wait for them (the first request is never dropped)", async () => {
  const { a, b } = pair();
  await Promise.all([a.ready, b.ready]);
  // The peer's first messages arrive while nobody listens on b yet (its owner learns of b only after `ready`).
  a.sendControl({ type: "cancel", requestId: "r1" });
  const s = a.open({ op: "first" });
  s.end();
  await new Promise((r) => setTimeout(r, 20));
  const controls: Record<string, unknown>[] = [];
  b.on("control", (m) => controls.push(m));
  const heads: unknown[] = [];
  b.on("stream", (st) => {
    heads.push(st.head);
    st.reply({ ok: true });
    st.end();
  });
  assert.deepEqual(await s.replyHead(), { ok: true }, "the early stream was answered once a listener came");
  assert.deepEqual(controls, [{ type: "cancel", requestId: "r1" }]);
  assert.deepEqual(heads, [{ op: "first" }]);
  a.close();
});
