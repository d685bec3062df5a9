// The proxy's bound on streams one client connection holds open (--max-streams-per-client): past it a new stream is
// refused with too_many_streams while the ones within it are answered; thousands of long streams need it raised.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ProxyNode } from "../../src/proxy/proxy.js";
import { nodeSecurity } from "../../src/cli/security.js";
import { acceptAnyPeer, dial } from "../../src/protocol/transport.js";
import { StreamError } from "../../src/protocol/connection.js";
import { OP_MODELS } from "../../src/protocol/messages.js";
import { silentLogger } from "../../src/util/log.js";

test("a client connection may hold --max-streams-per-client streams open at the proxy; one more is refused", async () => {
  const sec = await nodeSecurity("proxy", {}, silentLogger);
  const proxy = new ProxyNode({
    identity: sec.identity,
    workerPort: 0,
    clientPort: 0,
    verifyWorker: sec.verifierFor("worker"),
    verifyClient: acceptAnyPeer,
    maxStreamsPerClientConnection: 2,
    log: silentLogger,
  });
  await proxy.start();
  const { conn } = await dial({ host: "127.0.0.1", port: proxy.clientPort, verifyPeer: acceptAnyPeer, connection: { role: "client", nodeId: "limits-probe" } });
  try {
    // Not ended on this side: each stays open at the proxy after its answer, so the third is one too many.
    const streams = [conn.open({ op: OP_MODELS }), conn.open({ op: OP_MODELS }), conn.open({ op: OP_MODELS })];
    const heads = await Promise.allSettled(streams.map((s) => s.replyHead()));
    assert.equal(heads[0]!.status, "fulfilled");
    assert.equal(heads[1]!.status, "fulfilled");
    assert.equal(heads[2]!.status, "rejected");
    const err = (heads[2] as PromiseRejectedResult).reason;
    assert.ok(err instanceof StreamError, String(err));
    assert.equal(err.code, "too_many_streams");
    // Ending the open ones frees their places: a new stream is answered again.
    for (const s of streams.slice(0, 2)) {
      s.end();
      await s.readAll(0);
    }
    let answered = false;
    for (let tries = 0; !answered; tries++) {
      const s = conn.open({ op: OP_MODELS });
      try {
        await s.replyHead();
        answered = true;
      } catch (e) {
        if (!(e instanceof StreamError && e.code === "too_many_streams") || tries > 200) throw e;
        await new Promise((r) => setTimeout(r, 10));
      } finally {
        s.end();
      }
    }
  } finally {
    conn.close();
    await proxy.stop();
  }
});
