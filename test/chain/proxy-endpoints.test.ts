import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeProxyEndpoints, encodeProxyEndpoints, MAX_ENDPOINT_CHARS, parseEndpointHostPort } from "../../src/chain/proxy-endpoints.js";

test("endpoints round-trip, and a bare HOST:PORT (older registrations) is the clients endpoint", () => {
  const s = encodeProxyEndpoints({ clients: { host: "203.0.113.5", port: 11002 }, workers: { host: "proxy.example.org", port: 11001 } });
  assert.equal(s, "clients=203.0.113.5:11002 workers=proxy.example.org:11001");
  assert.deepEqual(decodeProxyEndpoints(s), { clients: { host: "203.0.113.5", port: 11002 }, workers: { host: "proxy.example.org", port: 11001 } });
  assert.deepEqual(decodeProxyEndpoints("127.0.0.1:11002"), { clients: { host: "127.0.0.1", port: 11002 } });
  assert.deepEqual(decodeProxyEndpoints(encodeProxyEndpoints({ workers: { host: "::1", port: 5 } })), { workers: { host: "::1", port: 5 } });
});

test("malformed endpoints are refused when registering and ignored when read from chain", () => {
  assert.throws(() => encodeProxyEndpoints({}), /at least one public endpoint/);
  assert.throws(() => encodeProxyEndpoints({ clients: { host: "bad host", port: 1 } }), /not HOST:PORT/);
  assert.throws(() => encodeProxyEndpoints({ clients: { host: "h", port: 70000 } }), /not HOST:PORT/);
  assert.throws(() => encodeProxyEndpoints({ clients: { host: "a".repeat(250), port: 1 }, workers: { host: "b".repeat(100), port: 2 } }), /at most 255/);
  assert.equal(parseEndpointHostPort("host:0"), undefined);
  assert.equal(parseEndpointHostPort(":80"), undefined);
  assert.deepEqual(decodeProxyEndpoints("clients=::: workers=h:1 workers=g:2 other=x:1"), { workers: { host: "h", port: 1 } });
  assert.deepEqual(decodeProxyEndpoints("x".repeat(MAX_ENDPOINT_CHARS + 1)), {});
});

test("decoding any string never throws and yields only valid host:port pairs", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: "grapheme", maxLength: 80 }), fc.array(fc.constantFrom("clients=", "workers=", " ", ":", "1", "a", "[", "]", "."), { maxLength: 60 }).map((a) => a.join(""))), (s) => {
      const e = decodeProxyEndpoints(s);
      for (const hp of [e.clients, e.workers]) {
        if (!hp) continue;
        assert.ok(hp.port >= 1 && hp.port <= 65535);
        assert.ok(hp.host.length > 0);
        // what was read can be registered again unchanged
        assert.deepEqual(decodeProxyEndpoints(encodeProxyEndpoints({ clients: hp })).clients, hp);
      }
    }),
    { numRuns: 2000 },
  );
});
