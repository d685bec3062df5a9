// Structured logs: JSON lines with the request id as a field, readable lines for terminals, COCOON_LOG levels.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { createLogger, prettyLine, withFields, silentLogger } from "../../src/util/log.js";

const saved = { level: process.env.COCOON_LOG, format: process.env.COCOON_LOG_FORMAT };
afterEach(() => {
  for (const [k, v] of [["COCOON_LOG", saved.level], ["COCOON_LOG_FORMAT", saved.format]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

test("JSON: one object per line with time, level, node name, message and the request id", () => {
  process.env.COCOON_LOG_FORMAT = "json";
  process.env.COCOON_LOG = "info";
  const lines: string[] = [];
  const log = createLogger("proxy", (l) => lines.push(l));
  log.info("worker joined");
  withFields(log, { requestId: "chatcmpl-1" }).warn("retrying on another worker", { workerId: "w2" });
  log.debug("hidden at info");
  assert.equal(lines.length, 2);
  const [a, b] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(a!.level, "info");
  assert.equal(a!.name, "proxy");
  assert.equal(a!.msg, "worker joined");
  assert.ok(!Number.isNaN(Date.parse(String(a!.time))));
  assert.deepEqual([b!.level, b!.requestId, b!.workerId, b!.msg], ["warn", "chatcmpl-1", "w2", "retrying on another worker"]);
});

test("COCOON_LOG sets the level: quiet drops everything, debug shows debug", () => {
  process.env.COCOON_LOG_FORMAT = "json";
  const lines: string[] = [];
  process.env.COCOON_LOG = "quiet";
  createLogger("a", (l) => lines.push(l)).error("nothing");
  process.env.COCOON_LOG = "warn";
  const w = createLogger("a", (l) => lines.push(l));
  w.info("no");
  w.warn("yes");
  process.env.COCOON_LOG = "debug";
  createLogger("a", (l) => lines.push(l)).debug("dbg");
  assert.deepEqual(lines.map((l) => (JSON.parse(l) as { msg: string }).msg), ["yes", "dbg"]);
});

test("pretty: the readable line people had before, with the request id and other fields", () => {
  process.env.COCOON_LOG_FORMAT = "pretty";
  process.env.COCOON_LOG = "info";
  const lines: string[] = [];
  const log = createLogger("worker-1", (l) => lines.push(l));
  log.info("ready");
  log.child!({ requestId: "cmpl-9" }).error("engine failed", { code: "backend_failed" });
  assert.match(lines[0]!, /^\d\d:\d\d:\d\d\.\d{3} \[worker-1\] ready$/);
  assert.match(lines[1]!, /^\d\d:\d\d:\d\d\.\d{3} \[worker-1\] ERROR engine failed \(request cmpl-9\) code=backend_failed$/);
  assert.equal(prettyLine("not json"), "not json");
});

test("withFields on a logger without child() (a test's own) returns it unchanged", () => {
  assert.equal(withFields(silentLogger, { requestId: "x" }), silentLogger);
});
