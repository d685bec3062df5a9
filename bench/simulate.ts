// `npm run simulate`: how the decentralized network scales, bounded and on one machine. For each step (numbers x10):
//   - routing cost per request: a client's ProxySet.pick (src/client/proxy-set.ts) over its proxy links plus the
//     proxy's WorkerPool.pick (src/proxy/pool.ts) over its workers: the real code, with stand-in links and connections
//     (FAKE: no sockets) so that 1,000 workers and 10,000 clients fit in one process;
//   - memory per simulated worker (pool entry) and per simulated client (its proxy set), measured as heap growth;
//   - memory per REAL connection: attested TLS links (sim RA-TLS) from PeerLinks to a real ProxyNode on loopback,
//     up to --real (default 60: a proxy admits 64 connections per address, and all come from 127.0.0.1 here) per step, heap + RSS growth divided by the count;
//   - discovery: a root snapshot with as many registered proxies (the real dictionary serialised to a cell, parsed by
//     the wrapper, turned into targets by src/client/discovery.ts), plus one real get-method call on a local chain;
//   - on-chain transactions per hour, from the batching rules (src/payments/proxy-meter.ts redeems, worker-payee.ts
//     claims; payout vouchers are off chain) driven by a simulated hour of requests.
// Prints a Markdown table; with --write it replaces the results section of docs/scale.md.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { Command, InvalidArgumentError } from "commander";
import { Address, beginCell, Dictionary } from "@ton/core";
import { WorkerPool } from "../src/proxy/pool.js";
import { ProxySet, type ProxyTarget } from "../src/client/proxy-set.js";
import type { ProxyLink } from "../src/client/proxy-link.js";
import type { Connection } from "../src/protocol/connection.js";
import { ProxyInfoValue } from "../src/chain/contracts/RootContract.js";
import { encodeProxyEndpoints } from "../src/chain/proxy-endpoints.js";
import { targetsFromSnapshot } from "../src/client/discovery.js";
import { silentLogger } from "../src/util/log.js";
import { ProxyNode } from "../src/proxy/proxy.js";
import { PeerLink } from "../src/protocol/peer-link.js";
import { nodeSecurity } from "../src/cli/security.js";
import { startChainServer } from "../src/chain/server.js";
import { makeTonClient } from "../src/chain/network.js";
import { bootstrapDevnetContracts } from "../src/payments/bootstrap.js";
import { TonAccess } from "../src/payments/ton.js";
import { DEFAULT_REDEEM_INTERVAL_MS, DEFAULT_REDEEM_THRESHOLD } from "../src/payments/proxy-meter.js";
import { DEFAULT_CLAIM_INTERVAL_MS, DEFAULT_CLAIM_THRESHOLD } from "../src/payments/worker-payee.js";
import { toNano } from "@ton/core";
import v8 from "node:v8";
import vm from "node:vm";

const int = (min: number, max: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
  return n;
};

interface Step {
  workers: number;
  clients: number;
  proxies: number;
}

interface StepResult extends Step {
  routeUs: number;
  clientPickUs: number;
  poolPickUs: number;
  bytesPerWorker: number;
  bytesPerClient: number;
  realConnections: number;
  heapPerConnection: number;
  rssPerConnection: number;
  discoveryParseMs: number;
  txPerHour: { low: number; high: number };
}

// The script runs without --expose-gc (npm run simulate): switch it on here so that heap growth is measured after a
// full collection.
v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

/** A stand-in for a worker's connection: the pool reads only `closed` (FAKE: no socket behind it). */
const fakeConn = () => ({ closed: false }) as unknown as Connection;

/** A stand-in link with a measured RTT (FAKE: no socket). */
function fakeLink(rttMs: number): ProxyLink {
  return { connected: true, conn: { rttMs }, connectedSince: 0, lastError: undefined, start() {}, stop() {}, waitConnected: async () => {} } as unknown as ProxyLink;
}

function measureRouting(s: Step, requests: number): { clientPickUs: number; poolPickUs: number; bytesPerWorker: number; bytesPerClient: number } {
  const perProxy = Math.ceil(s.workers / s.proxies);
  const h0 = heap();
  const pools = Array.from({ length: s.proxies }, () => new WorkerPool());
  for (let p = 0; p < s.proxies; p++) {
    for (let i = 0; i < perProxy; i++) {
      pools[p]!.upsert(fakeConn(), { description: "sim worker (stand-in)", insecure: true }, {
        type: "announce", workerId: `w${p}-${i}`, models: [{ id: "m" }], capacity: 8, enabled: true, backend: "fake", priceCoefficient: 1000 + (i % 5) * 250,
      });
    }
  }
  const h1 = heap();
  const targets: ProxyTarget[] = Array.from({ length: s.proxies }, (_, i) => ({ key: `p${i}`, host: "127.0.0.1", port: 20000 + i }));
  const sets = Array.from({ length: s.clients }, (_, c) => {
    const set = new ProxySet({ makeLink: (t) => fakeLink(5 + ((c + Number(t.key.slice(1))) % 20)), log: silentLogger });
    set.setTargets(targets);
    set.start();
    return set;
  });
  const h2 = heap();
  // Requests: a random client picks a proxy, that proxy's pool picks a worker under a cap; the slot is held briefly.
  let tClient = 0;
  let tPool = 0;
  const held: Array<{ pool: WorkerPool; id: string }> = [];
  for (let r = 0; r < requests; r++) {
    const set = sets[r % sets.length]!;
    let t = performance.now();
    const route = set.pick()!;
    tClient += performance.now() - t;
    set.begin(route);
    const pool = pools[Number(route.target.key.slice(1))]!;
    t = performance.now();
    const w = pool.pick("m", undefined, undefined, 2000);
    tPool += performance.now() - t;
    set.end(route, { ok: true });
    if (w) {
      w.active++;
      held.push({ pool, id: w.id });
    }
    // About half the capacity stays busy: picks scan busy workers too.
    if (held.length > (s.workers * 8) / 2) {
      const done = held.shift()!;
      const x = done.pool.list().find((y) => y.id === done.id);
      if (x) x.active--;
    }
  }
  return {
    clientPickUs: (tClient / requests) * 1000,
    poolPickUs: (tPool / requests) * 1000,
    bytesPerWorker: (h1 - h0) / s.workers,
    bytesPerClient: (h2 - h1) / s.clients,
  };
}

/** Real attested TLS connections (sim RA-TLS) into one real proxy: heap and RSS growth per connection. */
async function measureConnections(n: number): Promise<{ heap: number; rss: number }> {
  const proxySec = await nodeSecurity("proxy", {}, silentLogger);
  const workerSec = await nodeSecurity("worker", { nodeId: "sim-worker" }, silentLogger);
  const proxy = new ProxyNode({
    identity: proxySec.identity, workerPort: 0, clientPort: 0, statusPort: 0,
    verifyWorker: workerSec.verifierFor("worker"), verifyClient: proxySec.verifierFor("client"), log: silentLogger,
  });
  await proxy.start();
  const links: PeerLink[] = [];
  try {
    const h0 = heap() + process.memoryUsage().external;
    const r0 = process.memoryUsage().rss;
    for (let i = 0; i < n; i += 20) {
      const batch = Array.from({ length: Math.min(20, n - i) }, () => {
        const l = new PeerLink({ host: "127.0.0.1", port: proxy.clientPort, role: "client", nodeId: `c${links.length}`, verifyPeer: workerSec.verifierFor("proxy"), log: silentLogger });
        links.push(l);
        l.start();
        return l;
      });
      await Promise.all(batch.map((l) => l.waitConnected(20_000)));
    }
    const connected = links.filter((l) => l.connected).length;
    if (connected < n) throw new Error(`only ${connected} of ${n} connections came up`);
    const h1 = heap() + process.memoryUsage().external;
    const r1 = process.memoryUsage().rss;
    // Both ends of each connection live in this process: half of the growth is one end.
    return { heap: (h1 - h0) / n / 2, rss: (r1 - r0) / n / 2 };
  } finally {
    for (const l of links) l.stop();
    await proxy.stop();
  }
}

/** Parsing a root snapshot with `k` registered proxies into dial targets (ms). */
function measureDiscoveryParse(k: number): number {
  const dict = Dictionary.empty(Dictionary.Keys.Address(), ProxyInfoValue);
  for (let i = 0; i < k; i++) {
    const hash = Buffer.alloc(32);
    hash.writeUInt32BE(i + 1, 28);
    dict.set(new Address(0, hash), {
      signingKey: Buffer.alloc(32, 1), identityKey: Buffer.alloc(32, 2),
      endpoint: encodeProxyEndpoints({ clients: { host: `10.0.${(i >> 8) & 255}.${i & 255}`, port: 11002 }, workers: { host: `10.0.${(i >> 8) & 255}.${i & 255}`, port: 11001 } }),
    });
  }
  const cell = beginCell().storeDictDirect(dict).endCell();
  const t = performance.now();
  const parsed = Dictionary.loadDirect(Dictionary.Keys.Address(), ProxyInfoValue, cell);
  const proxies = new Map(parsed.keys().map((a) => [a.toRawString(), { ...parsed.get(a)!, address: a }]));
  const { targets } = targetsFromSnapshot({ proxies }, "clients");
  const ms = performance.now() - t;
  if (targets.length !== k) throw new Error(`discovery parsed ${targets.length} of ${k} proxies`);
  return ms;
}

/**
 * On-chain transactions in one hour under the batching rules: each proxy redeems all its channels in ONE wallet
 * transaction per timer tick (when anything is unredeemed) or when a channel's unredeemed amount crosses the
 * threshold; each worker claims from each proxy it earned from once per claim tick or when its unclaimed amount
 * crosses the threshold. Payout vouchers are off chain. `nanoPerHour`: money moved through the network.
 */
function txPerHour(s: Step, requestsPerHour: number): number {
  const nanoPerHour = BigInt(requestsPerHour) * NANO_PER_REQUEST;
  const ticksRedeem = 3_600_000 / DEFAULT_REDEEM_INTERVAL_MS;
  const ticksClaim = 3_600_000 / DEFAULT_CLAIM_INTERVAL_MS;
  // A proxy's timer redeems only when something is unredeemed: at most one batch per tick, none in an idle tick.
  const requestsPerProxy = requestsPerHour / s.proxies;
  const thresholdRedeems = Number(nanoPerHour / BigInt(s.proxies) / DEFAULT_REDEEM_THRESHOLD);
  const redeems = s.proxies * (Math.min(ticksRedeem, requestsPerProxy) + thresholdRedeems);
  // Each (worker, proxy) pair: a claim per tick with something new to claim, plus threshold crossings.
  const pairs = s.workers * s.proxies;
  const requestsPerPair = requestsPerHour / pairs;
  const thresholdClaims = Number(nanoPerHour / BigInt(pairs) / DEFAULT_CLAIM_THRESHOLD);
  const claims = pairs * (Math.min(ticksClaim, requestsPerPair) + thresholdClaims);
  return Math.round(redeems + claims);
}

async function measureChainRoundTrip(): Promise<number> {
  const srv = await startChainServer({ port: 0 });
  try {
    const client = makeTonClient("devnet", srv.url, {});
    const boot = await bootstrapDevnetContracts({ client, endpoint: srv.url, models: {}, workers: 0, proxies: 2, deposit: toNano("4") });
    const ton = new TonAccess(client, "devnet");
    await ton.rootSnapshot(boot.root);
    const t = performance.now();
    const n = 20;
    for (let i = 0; i < n; i++) await ton.rootSnapshot(boot.root);
    return (performance.now() - t) / n;
  } finally {
    await srv.close();
  }
}

function table(rows: StepResult[], chainMs: number, requests: number): string {
  const kb = (b: number) => (b / 1024).toFixed(1);
  const lines = [
    `| workers | clients | proxies | routing per request (client pick + proxy pick) | worker (pool entry) | client (proxy set) | one end of a real attested connection (JS heap + buffers / RSS; ${rows[0]!.realConnections}-${rows.at(-1)!.realConnections} measured) | discovery: parse the root's list | on-chain tx per hour (10 k / 1 M requests per hour) |`,
    "|---:|---:|---:|---|---:|---:|---|---:|---|",
    ...rows.map((r) => `| ${r.workers} | ${r.clients} | ${r.proxies} | ${r.routeUs.toFixed(2)} µs (${r.clientPickUs.toFixed(2)} + ${r.poolPickUs.toFixed(2)}) | ${kb(r.bytesPerWorker)} KiB | ${kb(r.bytesPerClient)} KiB | ${kb(r.heapPerConnection)} / ${kb(r.rssPerConnection)} KiB | ${r.discoveryParseMs.toFixed(2)} ms for ${r.proxies * 25} proxies | ${r.txPerHour.low} / ${r.txPerHour.high} |`),
  ];
  return `${lines.join("\n")}\n\nOne get-method call (\`root_dicts\`) on the local chain: ${chainMs.toFixed(1)} ms. Routing averaged over ${requests} requests per step; half of all worker slots busy while routing. On-chain counts assume ${(Number(NANO_PER_REQUEST) / 1e9).toFixed(4)} TON per request.`;
}

/** Money per request in the tx model: about the devnet price of a 30+20 token answer. */
const NANO_PER_REQUEST = 3_500_000n;

async function main(): Promise<void> {
  const o = new Command("simulate")
    .description("Scale simulation of the decentralized network (bounded, in process and on loopback). Stand-in links and connections are named FAKE in the code; real connections and real parsing are measured as such.")
    .option("--max-workers <n>", "largest step's workers (steps grow x10 from 10)", int(10, 10_000), 1_000)
    .option("--requests <n>", "routed requests per step", int(100, 10_000_000), 100_000)
    .option("--real <n>", "most real attested connections measured per step (a proxy admits 64 per address: all come from 127.0.0.1 here)", int(0, 60), 60)
    .option("--write", "replace the results section of docs/scale.md")
    .parse(process.argv)
    .opts<{ maxWorkers: number; requests: number; real: number; write?: boolean }>();
  const steps: Step[] = [];
  for (let w = 10, c = 100, p = 2; w <= o.maxWorkers; w *= 10, c *= 10, p *= 2) steps.push({ workers: w, clients: c, proxies: p });
  const chainMs = await measureChainRoundTrip();
  const rows: StepResult[] = [];
  for (const s of steps) {
    const r = measureRouting(s, o.requests);
    const real = Math.min(o.real, s.workers);
    const conn = real > 0 ? await measureConnections(real) : { heap: 0, rss: 0 };
    const row: StepResult = {
      ...s, ...r, routeUs: r.clientPickUs + r.poolPickUs, realConnections: real, heapPerConnection: conn.heap, rssPerConnection: conn.rss,
      discoveryParseMs: measureDiscoveryParse(s.proxies * 25),
      txPerHour: { low: txPerHour(s, 10_000), high: txPerHour(s, 1_000_000) },
    };
    rows.push(row);
    process.stderr.write(`step ${s.workers} workers / ${s.clients} clients / ${s.proxies} proxies done\n`);
  }
  const md = table(rows, chainMs, o.requests);
  console.log(md);
  if (o.write) {
    const file = fileURLToPath(new URL("../docs/scale.md", import.meta.url));
    const doc = readFileSync(file, "utf8");
    const start = "<!-- simulate:start -->";
    const end = "<!-- simulate:end -->";
    const i = doc.indexOf(start);
    const j = doc.indexOf(end);
    if (i < 0 || j < i) throw new Error(`docs/scale.md has no ${start} … ${end} section to replace`);
    writeFileSync(file, `${doc.slice(0, i + start.length)}\n${md}\n${doc.slice(j)}`);
    console.error(`wrote the results into ${file}`);
  }
}

main().then(() => process.exit(0), (err: Error) => {
  console.error(`simulate: ${err.stack ?? err.message}`);
  process.exit(1);
});
