// Test helper: several proxies in one process, workers linked to all of them, and a client that finds the proxies
// in a directory (a stand-in for the root's list: same shape as src/client/discovery.ts ProxyDirectory), each proxy
// attested with its "contract address" as node id, exactly as the CLI binds it.
import { ProxyNode } from "../../src/proxy/proxy.js";
import { WorkerNode } from "../../src/worker/worker.js";
import { ClientNode, type ClientOptions } from "../../src/client/client.js";
import { OpenAiBackend } from "../../src/worker/backends/openai.js";
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from "../../src/dev/fake-upstream.js";
import { silentLogger } from "../../src/util/log.js";
import { nodeSecurity, sealingKeysOf } from "../../src/cli/security.js";
import { expectRegisteredProxy } from "../../src/client/discovery.js";
import type { ProxyTarget } from "../../src/client/proxy-set.js";

/** A raw-form "contract address" per proxy index (what the root's directory keys proxies by). */
export const proxyKey = (i: number) => `0:${(i + 1).toString(16).padStart(2, "0").repeat(32)}`;

export class StubDirectory {
  private list: ProxyTarget[];
  private readonly listeners: Array<(t: ProxyTarget[]) => void> = [];
  constructor(targets: ProxyTarget[]) {
    this.list = targets;
  }
  get targets(): ProxyTarget[] {
    return this.list;
  }
  onChange(l: (t: ProxyTarget[]) => void): void {
    this.listeners.push(l);
  }
  status(): Record<string, unknown> {
    return { stub: "test directory", registered: this.list.length };
  }
  set(targets: ProxyTarget[]): void {
    this.list = targets;
    for (const l of this.listeners) l(targets);
  }
}

export interface MultiProxyNetwork {
  proxies: ProxyNode[];
  targets: ProxyTarget[];
  workers: WorkerNode[];
  upstreams: FakeUpstream[];
  client: ClientNode;
  directory: StubDirectory;
  /** Starts proxy i again on its old ports (after `proxies[i].stop()`). */
  restartProxy(i: number): Promise<ProxyNode>;
  close(): Promise<void>;
}

async function startProxy(i: number, ports: { workerPort: number; clientPort: number } = { workerPort: 0, clientPort: 0 }): Promise<ProxyNode> {
  const sec = await nodeSecurity("proxy", { nodeId: proxyKey(i) }, silentLogger);
  const p = new ProxyNode({
    identity: sec.identity, ...ports, statusPort: 0, verifyWorker: sec.verifierFor("worker"), verifyClient: sec.verifierFor("client"),
    proxyId: `proxy-${i + 1}`, log: silentLogger,
  });
  await p.start();
  return p;
}

export async function startMultiProxyNetwork(nProxies: number, upstreamOpts: FakeUpstreamOptions[], o: { capacity?: number; maxProxyLinks?: number; payerFor?: ClientOptions["payerFor"] } = {}): Promise<MultiProxyNetwork> {
  const proxies: ProxyNode[] = [];
  for (let i = 0; i < nProxies; i++) proxies.push(await startProxy(i));
  const targets = proxies.map((p, i): ProxyTarget => ({ key: proxyKey(i), host: "127.0.0.1", port: p.clientPort, contract: `proxy-contract-${i + 1}` }));
  const upstreams: FakeUpstream[] = [];
  const workers: WorkerNode[] = [];
  for (const [i, uo] of upstreamOpts.entries()) {
    const up = await startFakeUpstream(uo);
    upstreams.push(up);
    const backend = new OpenAiBackend({ upstream: up.url });
    await backend.start();
    const sec = await nodeSecurity("worker", { nodeId: `w${i + 1}` }, silentLogger);
    const w = new WorkerNode({
      proxies: proxies.map((p, j) => ({ host: "127.0.0.1", port: p.workerPort, key: proxyKey(j) })),
      verifyProxyFor: (t) => expectRegisteredProxy(sec.verifierFor("proxy"), { key: t.key!, host: t.host, port: t.port }),
      backend, capacity: o.capacity ?? 4, identity: () => sec.identity, verifyProxy: sec.verifierFor("proxy"),
      sealing: sealingKeysOf(sec.node), workerId: `w${i + 1}`, log: silentLogger,
    });
    await w.start();
    workers.push(w);
  }
  const clientSec = await nodeSecurity("client", {}, silentLogger);
  const directory = new StubDirectory(targets);
  const client = new ClientNode({
    port: 0, directory, verifyProxy: clientSec.verifierFor("proxy"),
    verifyProxyFor: (t) => expectRegisteredProxy(clientSec.verifierFor("proxy"), t),
    verifyWorkerCert: clientSec.workerCertVerifier, selfInsecure: true, log: silentLogger,
    ...(o.maxProxyLinks ? { maxProxyLinks: o.maxProxyLinks } : {}),
    ...(o.payerFor ? { payerFor: o.payerFor } : {}),
  });
  await client.start();
  for (let i = 0; i < 300 && !proxies.every((p) => p.pool.size >= workers.length); i++) await new Promise((r) => setTimeout(r, 10));
  for (let i = 0; i < 300 && client.proxies.all.some((r) => !r.link.connected); i++) await new Promise((r) => setTimeout(r, 10));
  const net: MultiProxyNetwork = {
    proxies, targets, workers, upstreams, client, directory,
    async restartProxy(i: number) {
      const old = proxies[i]!;
      proxies[i] = await startProxy(i, { workerPort: old.workerPort, clientPort: old.clientPort });
      return proxies[i]!;
    },
    async close() {
      await client.stop();
      for (const w of workers) await w.stop();
      for (const p of proxies) await p.stop().catch(() => undefined);
      for (const u of upstreams) await u.close();
    },
  };
  return net;
}
