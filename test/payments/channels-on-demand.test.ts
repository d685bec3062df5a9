// Channels on demand through the real client (processes, the devnet's root, two registered proxies, a fake engine):
// the client's payments file has a channel with proxy 1 only. With a budget that proxy 1's channel already fills,
// proxy 2 gets no channel (said on /status and in the log) and every request goes through proxy 1. With room in the
// budget, the client opens a channel with proxy 2 from its wallet, records it, and requests go through both. A
// restart uses the recorded channel: no second one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toNano } from "@ton/core";
import { startDevnetChain, type DevnetChain } from "../../src/payments/devnet.js";
import { loadPaymentsConfig } from "../../src/payments/config.js";
import { registerProxyCommand } from "../../src/cli/proxy-admin.js";
import { startFakeUpstream, type FakeUpstream } from "../../src/dev/fake-upstream.js";
import { startRole, waitFor, type RoleProcess } from "../helpers/processes.js";
import { freePorts } from "../helpers/payments-processes.js";

const MODEL = "on-demand-model";
const START_MS = 40_000;
const json = async (url: string) => (await fetch(url, { signal: AbortSignal.timeout(5_000) })).json() as Promise<any>;

test("channels on demand through the client: the budget decides, requests go to funded proxies, a restart reuses the channel", { timeout: 170_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-on-demand-"));
  const modelFile = join(dir, `${MODEL}.gguf`);
  writeFileSync(modelFile, randomBytes(64));
  const live = new Set<RoleProcess>();
  let chain: DevnetChain | undefined;
  let upstream: FakeUpstream | undefined;
  try {
    chain = await startDevnetChain({ dir, workers: 1, proxies: 2, modelFile, deposit: toNano("3") });
    const c = chain;
    const file = c.files.client;
    const cfg = JSON.parse(readFileSync(file, "utf8"));
    writeFileSync(file, JSON.stringify({ ...cfg, channel: c.boot.proxies[0]!.channel.toString(), channels: [c.boot.proxies[0]!.channel.toString()] }, null, 2));
    upstream = await startFakeUpstream({ model: MODEL, tokens: 4, tokenDelayMs: 5 });
    const contracts = c.boot.proxies.map((p) => p.contract.toString());

    const role = async (args: string[]) => {
      const r = startRole(args);
      live.add(r);
      r.proc.once("exit", () => live.delete(r));
      const info = await Promise.race([r.ready, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`cocoon ${args[0]} not ready within ${START_MS} ms:\n${r.output()}`)), START_MS).unref())]);
      return { r, info };
    };
    const ports = await freePorts(6);
    await Promise.all([0, 1].map((i) => role(["proxy", "--worker-port", String(ports[3 * i]), "--client-port", String(ports[3 * i + 1]), "--status-port", String(ports[3 * i + 2]), "--payments", c.files.proxies[i]!])));
    for (let i = 0; i < 2; i++) {
      await registerProxyCommand(c.files.owner, { proxyContract: contracts[i], clients: `127.0.0.1:${ports[3 * i + 1]}`, workers: `127.0.0.1:${ports[3 * i]}` }, { print: () => {} });
    }
    const root = c.boot.root.toString();
    await role(["worker", "--root", root, "--backend", "openai", "--upstream", upstream.url, "--model", MODEL, "--name", "w1", "--status-port", "0", "--capacity", "4", "--payments", c.files.workers[0]!]);

    const startClient = async (maxDeposit: string) => {
      const cl = await role(["client", "--port", "0", "--root", root, "--payments", file, "--channel-deposit", "1", "--max-deposit", maxDeposit]);
      const api = String(cl.info.api);
      const status = `${api.replace(/\/v1$/, "")}/status`;
      await waitFor("both proxies linked", async () => ((await json(status)).peers?.filter((p: any) => p.connected).length === 2 ? true : undefined), START_MS);
      return { ...cl, api, status };
    };
    const chat = async (api: string) => {
      const res = await fetch(`${api}/chat/completions`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "one two" }], max_tokens: 4 }),
        signal: AbortSignal.timeout(20_000),
      });
      const body = await res.text();
      assert.equal(res.status, 200, body);
      return res.headers.get("x-cocoon-proxy");
    };

    // 1. Budget 1.5 TON: proxy 1's channel holds it all; proxy 2 gets nothing, requests all go through proxy 1.
    const a = await startClient("1.5");
    const p2 = await waitFor("proxy 2 refused for the budget", async () => {
      const s = (await json(a.status)).paymentsByProxy?.[contracts[1]!];
      return s?.funding?.state === "no-budget" ? s : undefined;
    }, START_MS);
    assert.equal(p2.channel, null);
    assert.match(p2.funding.lastError, /deposit budget has 0 TON left \(--max-deposit 1\.5 TON/);
    assert.match(a.r.output(), /raise --max-deposit/);
    for (let i = 0; i < 6; i++) assert.equal(await chat(a.api), contracts[0], "only the funded proxy takes requests");
    await a.r.stop();
    assert.equal(loadPaymentsConfig(file).channels.length, 1, "nothing opened");

    // 2. Budget 10 TON: the client opens a channel with proxy 2 (1 TON), records it, and uses both proxies.
    const b = await startClient("10");
    const opened = await waitFor("a channel opened with proxy 2", async () => {
      const s = (await json(b.status)).paymentsByProxy?.[contracts[1]!];
      return s?.funding?.state === "open" && s.channel && s.channelStatus ? s : undefined; // channelStatus: read on chain
    }, START_MS);
    assert.equal(opened.deposited, toNano("1").toString());
    assert.equal(opened.funding.budget.used, toNano("2.5").toString());
    assert.deepEqual(loadPaymentsConfig(file).channels.map(String), [c.boot.proxies[0]!.channel.toString(), opened.channel], "recorded in the payments file");
    const seen = new Set<string | null>();
    // Four at a time: the client spreads concurrent requests by load, so both proxies take some.
    await waitFor("answers through both proxies", async () => {
      for (const p of await Promise.all([1, 2, 3, 4].map(() => chat(b.api)))) seen.add(p);
      return seen.has(contracts[0]!) && seen.has(contracts[1]!) ? true : undefined;
    }, START_MS);
    const spent = await waitFor("proxy 2's channel paid", async () => {
      const s = (await json(b.status)).paymentsByProxy?.[contracts[1]!];
      return BigInt(s?.spent ?? "0") > 0n ? s : undefined;
    });
    assert.equal(spent.channel, opened.channel);
    await b.r.stop();

    // 3. A restart uses the recorded channel.
    const d = await startClient("10");
    const again = await waitFor("proxy 2's channel after the restart", async () => {
      const s = (await json(d.status)).paymentsByProxy?.[contracts[1]!];
      return s?.channel && s.channelStatus ? s : undefined;
    }, START_MS);
    assert.equal(again.channel, opened.channel, "the same channel");
    assert.equal(again.deposited, toNano("1").toString(), "no second deposit");
    assert.equal(loadPaymentsConfig(file).channels.length, 2);
    assert.doesNotMatch(d.r.output(), /opening a channel/);
  } finally {
    await Promise.all([...live].map((r) => r.stop("SIGKILL")));
    await upstream?.close();
    await chain?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
