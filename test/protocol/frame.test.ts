import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeFrame, FrameDecoder, FrameType, MAX_FRAME_PAYLOAD, ProtocolError, FRAME_HEADER_SIZE } from "../../src/protocol/frame.js";

test("frames round-trip however the bytes are split", () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ payload: fc.uint8Array({ maxLength: 300 }), stream: fc.integer({ min: 1, max: 2 ** 32 - 1 }) }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
      (frames, cuts) => {
        const wire = Buffer.concat(frames.map((f) => encodeFrame(FrameType.Data, f.stream, f.payload)));
        const dec = new FrameDecoder();
        const got = [];
        let pos = 0;
        let i = 0;
        while (pos < wire.length) {
          const n = cuts[i++ % cuts.length]!;
          got.push(...dec.push(wire.subarray(pos, pos + n)));
          pos += n;
        }
        assert.equal(got.length, frames.length);
        got.forEach((g, k) => {
          assert.equal(g.streamId, frames[k]!.stream);
          assert.deepEqual(new Uint8Array(g.payload), frames[k]!.payload);
        });
        assert.equal(dec.pending, 0);
      },
    ),
  );
});

test("random bytes never crash the decoder: frames or a ProtocolError", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const dec = new FrameDecoder();
      try {
        dec.push(Buffer.from(bytes));
      } catch (err) {
        assert.ok(err instanceof ProtocolError, `unexpected ${err}`);
        assert.ok((err as Error).message.length > 10);
      }
    }),
    { numRuns: 2000 },
  );
});

test("oversize, unknown and misplaced frames are rejected with the rule named", () => {
  const head = (len: number, type: number, stream: number) => {
    const b = Buffer.alloc(FRAME_HEADER_SIZE);
    b.writeUInt32BE(len, 0);
    b[4] = type;
    b.writeUInt32BE(stream, 6);
    return b;
  };
  assert.throws(() => new FrameDecoder().push(head(MAX_FRAME_PAYLOAD + 1, FrameType.Data, 1)), /above the 16777216-byte limit/);
  assert.throws(() => new FrameDecoder().push(head(0, 0x7f, 1)), /unknown frame type 0x7f/);
  assert.throws(() => new FrameDecoder().push(head(0, FrameType.Data, 0)), /needs a non-zero stream id/);
  assert.throws(() => new FrameDecoder().push(head(8, FrameType.Ping, 3)), /must use stream id 0/);
  assert.throws(() => new FrameDecoder().push(head(3, FrameType.Ping, 0)), /must be 8 bytes/);
  assert.throws(() => encodeFrame(FrameType.Data, 1, new Uint8Array(MAX_FRAME_PAYLOAD + 1)), /exceeds/);
});
