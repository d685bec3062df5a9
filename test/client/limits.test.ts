// The client's bound on open app connections (--max-connections): connections past it are closed at accept, the
// ones within it are served, and a freed slot is usable again. Thousands of long streams need it raised.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { ClientNode } from "../../src/client/client.js";
import { acceptAnyPeer } from "../../src/protocol/transport.js";
import { silentLogger } from "../../src/util/log.js";

/** A raw keep-alive connection that has had one /status answered (so the server counts it as open). */
async function openServed(port: number): Promise<net.Socket> {
  const s = net.connect(port, "127.0.0.1");
  const answered = await new Promise<boolean>((resolve) => {
    let got = "";
    s.on("data", (d) => {
      got += d.toString();
      if (got.includes("\r\n\r\n")) resolve(/^HTTP\/1\.1 200/.test(got));
    });
    s.once("close", () => resolve(false));
    s.once("error", () => resolve(false));
    s.write("GET /status HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
  });
  s.removeAllListeners("data");
  if (!answered) {
    s.destroy();
    throw new Error("connection was not served");
  }
  return s;
}

/** Whether a new connection is closed by the server without any answer. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("data", () => {
      s.destroy();
      resolve(false);
    });
    s.once("close", () => resolve(true));
    s.once("error", () => resolve(true));
    s.write("GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
  });
}

test("the client closes app connections past --max-connections and serves them again once one is freed", async () => {
  const client = new ClientNode({ port: 0, proxy: { host: "127.0.0.1", port: 1 }, verifyProxy: acceptAnyPeer, log: silentLogger, maxAppConnections: 3 });
  await client.start();
  const open: net.Socket[] = [];
  try {
    for (let i = 0; i < 3; i++) open.push(await openServed(client.port));
    assert.equal(await refused(client.port), true, "a fourth connection must be closed at accept");
    const closed = new Promise((r) => open[0]!.once("close", r));
    open.shift()!.destroy();
    await closed;
    // The server sees the close a moment after this side does: retry until the freed slot is usable.
    let again: net.Socket | undefined;
    for (let tries = 0; !again; tries++) {
      try {
        again = await openServed(client.port);
      } catch (err) {
        if (tries > 200) throw err;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    open.push(again);
    assert.equal(open.length, 3);
  } finally {
    for (const s of open) s.destroy();
    await client.stop();
  }
});
