// Test helper: a whole network in one process (proxy, workers on fake upstreams, client) with real sim
// RA-TLS identities, peer verification and sealing, exactly as the CLI wires them.
import { ProxyNode, type ProxyOptions } from "../../src/proxy/proxy.js";
import { WorkerNode } from "../../src/worker/worker.js";
import { ClientNode, type ClientOptions } from "../../src/client/client.js";
import { OpenAiBackend } from "../../src/worker/backends/openai.js";
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from "../../src/dev/fake-upstream.js";
import { silentLogger, type Logger } from "../../src/util/log.js";
import { nodeSecurity, sealingKeysOf, type NodeSecurity } from "../../src/cli/security.js";
import type { Meter } from "../../src/proxy/meter.js";
import type { Payer } from "../../src/client/payer.js";
import type { Payee } from "../../src/worker/worker.js";
import type { Backend } from "../../src/worker/backends/backend.js";

export interface TestNetwork {
  proxy: ProxyNode;
  workers: WorkerNode[];
  upstreams: FakeUpstream[];
  client: ClientNode;
  /** Each node's identity (rotate() renews it, wired as the CLI wires it). */
  security: { proxy: NodeSecurity; workers: NodeSecurity[] };
  close(): Promise<void>;
}

export interface Tamper {
  chunk?: (data: Buffer, index: number) => Buffer;
  trailer?: (t: Record<string, unknown>) => Record<string, unknown>;
}

/** A proxy that rewrites what it relays: the malicious proxy of the tamper tests (a subclass; production has no such hook). */
function tamperingProxy(t: Tamper): typeof ProxyNode {
  return class TamperingProxy extends ProxyNode {
    protected override relayedChunk(chunk: Buffer, index: number): Buffer {
      return t.chunk ? t.chunk(chunk, index) : chunk;
    }
    protected override relayedTrailer(trailer: Record<string, unknown>): Record<string, unknown> {
      return t.trailer ? t.trailer(trailer) : trailer;
    }
  };
}

export interface TestNetworkOptions {
  /** Seal requests to attested workers (default true). */
  seal?: boolean;
  meter?: Meter;
  tap?: ProxyOptions["tap"];
  /** Play a malicious proxy: rewrite relayed answer chunks and trailers (see TamperingProxy). */
  tamper?: Tamper;
  /** Client payment hook (and the client id it registers under). */
  payer?: Payer;
  clientId?: string;
  /** Worker payment hooks, by worker index. */
  payees?: (Payee | undefined)[];
  /** The proxy's wait queue settings. */
  queue?: ProxyOptions["queue"];
  /** Price coefficient of each worker, by index (default: none announced, i.e. 1000). */
  priceCoefficients?: (number | undefined)[];
  /** The client's price ceiling. */
  maxCoefficient?: number;
  /** Workers on these backends (e.g. the embedded engine) instead of the fake upstreams; upstreamOpts is then []. */
  backends?: Backend[];
  /** Extra client settings (CORS origins, request timeout). */
  client?: Pick<ClientOptions, "corsOrigins" | "requestTimeoutMs">;
  /** Each node's logger, by node name (proxy, w1, …, client); default silent. */
  log?: (node: string) => Logger;
  /** Give each worker a status page on a free port. */
  workerStatus?: boolean;
}

export async function startTestNetwork(upstreamOpts: FakeUpstreamOptions[], o: TestNetworkOptions = {}): Promise<TestNetwork> {
  const proxySec = await nodeSecurity("proxy", {}, silentLogger);
  const proxy = new (o.tamper ? tamperingProxy(o.tamper) : ProxyNode)({
    identity: proxySec.identity,
    workerPort: 0,
    clientPort: 0,
    statusPort: 0,
    verifyWorker: proxySec.verifierFor("worker"),
    verifyClient: proxySec.verifierFor("client"),
    meter: o.meter,
    tap: o.tap,
    ...(o.queue ? { queue: o.queue } : {}),
    statusExtra: proxySec.statusExtra,
    log: o.log?.("proxy") ?? silentLogger,
  });
  await proxy.start();
  proxySec.onRotate(() => proxy.setIdentity(proxySec.identity));
  const workerSecs: NodeSecurity[] = [];
  const upstreams: FakeUpstream[] = [];
  const workers: WorkerNode[] = [];
  const backends: Backend[] = [...(o.backends ?? [])];
  for (const uo of upstreamOpts) {
    const up = await startFakeUpstream(uo);
    upstreams.push(up);
    const backend = new OpenAiBackend({ upstream: up.url });
    await backend.start();
    backends.push(backend);
  }
  for (const [i, backend] of backends.entries()) {
    const sec = await nodeSecurity("worker", { nodeId: `w${i + 1}` }, silentLogger);
    const w = new WorkerNode({
      proxies: [{ host: "127.0.0.1", port: proxy.workerPort }],
      backend,
      capacity: 4,
      identity: () => sec.identity,
      verifyProxy: sec.verifierFor("proxy"),
      sealing: sealingKeysOf(sec.node),
      workerId: `w${i + 1}`,
      ...(o.payees?.[i] ? { payee: o.payees[i] } : {}),
      ...(o.priceCoefficients?.[i] !== undefined ? { priceCoefficient: o.priceCoefficients[i] } : {}),
      ...(o.workerStatus ? { statusPort: 0 } : {}),
      log: o.log?.(`w${i + 1}`) ?? silentLogger,
    });
    await w.start();
    sec.onRotate((node) => w.rotateIdentity(sealingKeysOf(node), 5_000));
    workerSecs.push(sec);
    workers.push(w);
  }
  const clientSec = await nodeSecurity("client", {}, silentLogger);
  const client = new ClientNode({
    port: 0,
    proxy: { host: "127.0.0.1", port: proxy.clientPort },
    verifyProxy: clientSec.verifierFor("proxy"),
    ...(o.seal === false ? {} : { verifyWorkerCert: clientSec.workerCertVerifier }),
    selfInsecure: true,
    ...(o.payer ? { payer: o.payer } : {}),
    ...(o.clientId ? { clientId: o.clientId } : {}),
    ...(o.maxCoefficient ? { maxCoefficient: o.maxCoefficient } : {}),
    statusExtra: clientSec.statusExtra,
    log: o.log?.("client") ?? silentLogger,
    ...o.client,
  });
  await client.start();
  for (let i = 0; i < 300 && proxy.pool.size < workers.length; i++) await new Promise((r) => setTimeout(r, 10));
  return {
    proxy,
    workers,
    upstreams,
    client,
    security: { proxy: proxySec, workers: workerSecs },
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
