// Random input at every network entry point of a running network: the proxy's client port (random stream heads
// and bodies), and the client's HTTP API (random JSON). Nothing crashes; every answer is a clear refusal; the network
// still serves a normal request afterwards.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { dial, acceptAnyPeer } from "../../src/protocol/transport.js";
import { StreamError } from "../../src/protocol/connection.js";
import { workersRequestSchema } from "../../src/protocol/messages.js";
import { nodeSecurity } from "../../src/cli/security.js";
import { silentLogger } from "../../src/util/log.js";
import { chat, startTestNetwork, type TestNetwork } from "../helpers/network.js";

let net: TestNetwork;
before(async () => {
  net = await startTestNetwork([{ model: "m", tokens: 3 }]);
});
after(() => net.close());

test("random stream heads and bodies sent to the proxy are refused without harm", async () => {
  const sec = await nodeSecurity("client", {}, silentLogger);
  const { conn } = await dial({ host: "127.0.0.1", port: net.proxy.clientPort, identity: sec.identity, verifyPeer: acceptAnyPeer, connection: { role: "client", nodeId: "fuzzer" } });
  const ops = fc.constantFrom("inference", "models", "workers", "payments", "nope", 7, null);
  await fc.assert(
    fc.asyncProperty(fc.record({ op: ops, extra: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }) }), fc.uint8Array({ maxLength: 300 }), async (h, body) => {
      const head = { ...h.extra, op: h.op };
      // Only a model list, or a candidate list whose head is well-formed, may be answered; no random head is a valid
      // inference request, this proxy has no payments, and any other op is unknown: each is refused as bad_request.
      const answerable = h.op === "models" || (h.op === "workers" && workersRequestSchema.safeParse(head).success);
      const s = conn.open(head);
      let reply: Record<string, unknown> | undefined;
      let error: unknown;
      try {
        await s.write(body);
        s.end();
        reply = await s.replyHead();
        await s.readAll();
      } catch (err) {
        error = err;
      }
      if (answerable) {
        assert.equal(error, undefined, `${JSON.stringify(head)} was refused: ${String(error)}`);
        assert.ok(Array.isArray(reply?.[h.op === "models" ? "models" : "workers"]), JSON.stringify(reply));
      } else {
        assert.ok(error instanceof StreamError, `${JSON.stringify(head)} was answered: ${JSON.stringify(reply)}`);
        assert.equal(error.code, "bad_request", error.message);
        assert.ok(error.message.length > 5);
      }
    }),
    { numRuns: 150 },
  );
  conn.close();
  const res = await chat(net.client.url, { model: "m", messages: [{ role: "user", content: "still alive" }] });
  assert.equal(res.status, 200);
});

test("random JSON bodies to the client API get 4xx OpenAI errors, never a 5xx or a crash", async () => {
  await fc.assert(
    fc.asyncProperty(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom("/v1/chat/completions", "/v1/completions"), async (body, path) => {
      const res = await fetch(`${net.client.url}${path}`, { method: "POST", body: JSON.stringify(body) });
      const json = (await res.json()) as any;
      // A random JSON value is never a valid request (it would need model "m" and a messages array or prompt).
      assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}: ${JSON.stringify(json)}`);
      assert.equal(typeof json.error.message, "string");
    }),
    { numRuns: 150 },
  );
});
