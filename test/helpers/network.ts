// Test helper: a whole network in one process (proxy, workers on fake upstreams, client), no attestation.
import { ProxyNode } from "../../src/proxy/proxy.js";
import { WorkerNode } from "../../src/worker/worker.js";
import { ClientNode } from "../../src/client/client.js";
import { OpenAiBackend } from "../../src/worker/backends/openai.js";
import { acceptAnyPeer } from "../../src/protocol/transport.js";
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from "../../src/dev/fake-upstream.js";
import { silentLogger } from "../../src/util/log.js";
import { testIdentity } from "./tls.js";

export interface TestNetwork {
  proxy: ProxyNode;
  workers: WorkerNode[];
  upstreams: FakeUpstream[];
  client: ClientNode;
  close(): Promise<void>;
}

export async function startTestNetwork(upstreamOpts: FakeUpstreamOptions[]): Promise<TestNetwork> {
  const id = await testIdentity();
  const proxy = new ProxyNode({ identity: id, workerPort: 0, clientPort: 0, statusPort: 0, verifyWorker: acceptAnyPeer, verifyClient: acceptAnyPeer, log: silentLogger });
  await proxy.start();
  const upstreams: FakeUpstream[] = [];
  const workers: WorkerNode[] = [];
  for (const [i, uo] of upstreamOpts.entries()) {
    const up = await startFakeUpstream(uo);
    upstreams.push(up);
    const backend = new OpenAiBackend({ upstream: up.url });
    await backend.start();
    const w = new WorkerNode({ proxies: [{ host: "127.0.0.1", port: proxy.workerPort }], backend, capacity: 4, identity: id, verifyProxy: acceptAnyPeer, workerId: `w${i + 1}`, log: silentLogger });
    await w.start();
    workers.push(w);
  }
  const client = new ClientNode({ port: 0, proxy: { host: "127.0.0.1", port: proxy.clientPort }, verifyProxy: acceptAnyPeer, log: silentLogger });
  await client.start();
  for (let i = 0; i < 200 && proxy.pool.size < workers.length; i++) await new Promise((r) => setTimeout(r, 10));
  return {
    proxy,
    workers,
    upstreams,
    client,
    async close() {
      await client.stop();
      for (const w of workers) await w.stop();
      await proxy.stop();
      for (const u of upstreams) await u.close();
    },
  };
}

export function chat(url: string, body: Record<string, unknown>, init: RequestInit = {}): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), ...init });
}
