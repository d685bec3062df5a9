// Issue #10 item 4: an unauthenticated stranger on the proxy's client port must not be able to make the proxy hold
// memory. Two probes, as in the report, against an in-process proxy; the test process's RSS is sampled throughout
// (an upper bound for the proxy's share: the attacker's side runs in the same process).
// Probe B runs first, so that its measurement does not reuse memory that probe A made the process take.
//   A. one connection opens 700 `models` streams and sends 1 MiB on each (the proxy answers and never reads them).
//      Before the fix each stream kept its 1 MiB for as long as the connection stayed up (~700 MB).
//   B. 20 connections each send, before any Hello, one frame header announcing 16 MiB and then the payload.
//      Before the fix each was buffered for up to 10 s (~320 MB).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import tls from "node:tls";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { acceptAnyPeer, dial, solveProofOfWork } from "../../src/protocol/transport.js";
import { encodeFrame, FRAME_HEADER_SIZE, FrameType } from "../../src/protocol/frame.js";
import { StreamError } from "../../src/protocol/connection.js";

const MB = 1024 * 1024;
/** Allowed RSS growth under each probe. */
const LIMIT = 64 * MB;

let net: TestNetwork;
before(async () => {
  net = await startTestNetwork([{}], { seal: false });
});
after(async () => {
  await net?.close();
});

/** Samples RSS every 20 ms while fn runs and for holdMs after; returns the peak growth over the start. */
async function peakRssGrowth(fn: () => Promise<void>, holdMs: number): Promise<{ peak: number; base: number }> {
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    await fn();
    await new Promise((r) => setTimeout(r, holdMs));
  } finally {
    clearInterval(timer);
  }
  peak = Math.max(peak, process.memoryUsage().rss);
  return { peak: peak - base, base };
}

function drainOrClose(s: tls.TLSSocket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      s.off("drain", done);
      s.off("close", done);
      resolve();
    };
    s.once("drain", done);
    s.once("close", done);
  });
}

/** Raw TLS to the proxy; answers a proof-of-work challenge if the proxy sends one, then returns the socket. */
async function strangerSocket(port: number): Promise<tls.TLSSocket> {
  const s = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, minVersion: "TLSv1.3" });
  s.on("error", () => {});
  await new Promise((r) => s.once("secureConnect", r));
  const first = await new Promise<Buffer>((resolve) => {
    let got = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= FRAME_HEADER_SIZE && got.length >= FRAME_HEADER_SIZE + got.readUInt32BE(0)) {
        s.off("data", onData);
        resolve(got);
      }
    };
    s.on("data", onData);
  });
  if (first[4] === FrameType.Challenge) {
    const challenge = first.subarray(FRAME_HEADER_SIZE, FRAME_HEADER_SIZE + first.readUInt32BE(0));
    s.write(encodeFrame(FrameType.Solution, 0, await solveProofOfWork(challenge, challenge[0]!)));
  }
  s.resume();
  return s;
}

test("probe B: 20 connections announcing a 16 MiB frame before Hello are refused at the header", async () => {
  const sockets = await Promise.all(Array.from({ length: 20 }, () => strangerSocket(net.proxy.clientPort)));
  const closedAt: number[] = [];
  const t0 = Date.now();
  for (const s of sockets) s.once("close", () => closedAt.push(Date.now() - t0));
  const chunk = Buffer.alloc(MB, 0x62);
  const { peak, base } = await peakRssGrowth(async () => {
    await Promise.all(
      sockets.map(async (s) => {
        const head = Buffer.alloc(FRAME_HEADER_SIZE);
        head.writeUInt32BE(16 * MB, 0);
        head[4] = FrameType.Hello;
        s.write(head);
        for (let i = 0; i < 16 && !s.destroyed; i++) {
          // One byte short of the announced size: the frame never completes.
          if (!s.write(i === 15 ? chunk.subarray(1) : chunk)) await drainOrClose(s);
        }
      }),
    );
  }, 2_000);
  console.log(
    `# probe B: RSS ${Math.round(base / MB)} MB at start, peak growth ${(peak / MB).toFixed(1)} MB (limit ${LIMIT / MB} MB); ` +
      `${closedAt.length}/20 connections closed by the proxy${closedAt.length ? ` after ${Math.min(...closedAt)}..${Math.max(...closedAt)} ms` : ""}`,
  );
  for (const s of sockets) s.destroy();
  assert.ok(peak < LIMIT, `RSS grew by ${(peak / MB).toFixed(1)} MB`);
  assert.equal(closedAt.length, 20);
});

test("probe A: 700 streams x 1 MiB that the proxy never reads do not stay in its memory", async () => {
  const { conn } = await dial({
    host: "127.0.0.1",
    port: net.proxy.clientPort,
    verifyPeer: acceptAnyPeer,
    connection: { role: "client", nodeId: "probe-a" },
  });
  const payload = Buffer.alloc(MB, 0x61);
  let accepted = 0;
  let refused = 0;
  const codes = new Map<string, number>();
  const { peak, base } = await peakRssGrowth(async () => {
    // 50 streams at a time, so that the attacker's own unsent output stays small and the samples show the proxy.
    for (let i = 0; i < 700; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          const s = conn.open({ op: "models" });
          try {
            await s.write(payload);
            accepted++;
          } catch (err) {
            refused++;
            const code = err instanceof StreamError ? err.code : (err as Error).message;
            codes.set(code, (codes.get(code) ?? 0) + 1);
          }
        }),
      );
    }
  }, 1_000);
  console.log(
    `# probe A: RSS ${Math.round(base / MB)} MB at start, peak growth ${(peak / MB).toFixed(1)} MB (limit ${LIMIT / MB} MB); ` +
      `${accepted} streams took the whole MiB, ${refused} were reset (${[...codes].map(([c, n]) => `${c}: ${n}`).join(", ")}); ` +
      `connection still up: ${!conn.closed}`,
  );
  conn.close();
  assert.ok(peak < LIMIT, `RSS grew by ${(peak / MB).toFixed(1)} MB`);
});
