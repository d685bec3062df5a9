// Starting each role from command-line settings, shared by the single-role commands and devnet.
import { ProxyNode, DEFAULT_CLIENT_PORT, DEFAULT_PROXY_STATUS_PORT, DEFAULT_WORKER_PORT } from "../proxy/proxy.js";
import { WorkerNode } from "../worker/worker.js";
import { ClientNode, DEFAULT_CLIENT_API_PORT } from "../client/client.js";
import { EmbeddedBackend } from "../worker/backends/embedded.js";
import { OpenAiBackend } from "../worker/backends/openai.js";
import type { Backend } from "../worker/backends/backend.js";
import { parseHostPort } from "../util/http.js";
import { createLogger, type Logger } from "../util/log.js";
import { openSync, writeSync } from "node:fs";
import { nodeSecurity, resolvePolicy, sealingKeysOf, type SecurityOptions } from "./security.js";
import { randomBytes, randomUUID } from "node:crypto";
import { loadPaymentsConfig, type PaymentsConfig } from "../payments/config.js";
import { RootPolicy } from "../payments/root-policy.js";
import { modelDirDigest, parseModelDigest } from "../tee/model-digest.js";
import { TonAccess } from "../payments/ton.js";
import type { Policy } from "../tee/policy.js";
import { assertNetworkAllowsSim, makeTonClient } from "../chain/network.js";
import { PayeesByProxy, PayersByProxy, startClientPayments, startProxyPayments, startWorkerPayments } from "../payments/setup.js";
import { parseNetwork, type NetworkName } from "../chain/network.js";
import { parseAddress } from "../payments/ton.js";
import { checkCoefficient } from "../payments/pricing.js";
import { DISCOVERY_REFRESH_MS, expectRegisteredProxy, ProxyDirectory, type DiscoverySide } from "../client/discovery.js";
import { fromNano, toNano, type Address } from "@ton/core";
import { DEFAULT_CHANNEL_DEPOSIT, defaultMaxDeposit, type ChannelFunding } from "../payments/client-channels.js";
import { enableAdmin, registerProxyControls, registerWorkerControls } from "../observability/controls.js";
import { withOwnEvidence } from "../observability/evidence.js";

export const DEFAULT_WORKER_STATUS_PORT = 12000;
/** How long a client's start waits for the channels it opens on demand. */
const STARTUP_FUNDING_WAIT_MS = 30_000;

/** Where a node reads the network's configuration: the root contract on a chain. */
interface ChainSettings {
  network: NetworkName;
  endpoint?: string;
  root: Address;
}

/** Flags that point a client or worker at the root, to find proxies there (discovery). */
export interface DiscoveryCliOptions {
  /** Root contract address: with no --proxy, proxies are read from it. */
  root?: string;
  /** TON Center v2 JSON-RPC endpoint of the chain holding the root (default: the payments config's, else the network's). */
  chainEndpoint?: string;
  network?: string;
}

/** The chain settings from --root/--network/--chain-endpoint, or else from the payments config; undefined with neither. */
function chainSettings(o: DiscoveryCliOptions, pay: PaymentsConfig | undefined): ChainSettings | undefined {
  if (o.root) {
    const root = parseAddress(o.root, "--root");
    if (pay && !pay.root.equals(root)) throw new Error(`--root ${o.root} is not the root of the payments config ${pay.file ?? ""} (${pay.root.toString()}); use one root`);
    const network = o.network ? parseNetwork(o.network) : pay?.network ?? "devnet";
    if (pay && network !== pay.network) throw new Error(`--network ${network} differs from the payments config's ${pay.network}`);
    const endpoint = o.chainEndpoint ?? pay?.endpoint;
    return { network, root, ...(endpoint ? { endpoint } : {}) };
  }
  return pay ? { network: pay.network, root: pay.root, ...(pay.endpoint ? { endpoint: pay.endpoint } : {}) } : undefined;
}

/** Reads the registered proxies from the root (discovery), logging what it found. */
async function proxyDirectory(cs: ChainSettings, side: DiscoverySide, log: Logger): Promise<ProxyDirectory> {
  const ton = new TonAccess(makeTonClient(cs.network, cs.endpoint), cs.network);
  const d = await ProxyDirectory.start({ reader: ton, root: cs.root, side, log, refreshMs: DISCOVERY_REFRESH_MS });
  log.info(`discovery: root ${cs.root.toString()} v${d.rootVersion} registers ${d.targets.length} proxy(ies) for ${side}: ${d.targets.map((t) => `${t.host}:${t.port}`).join(", ") || "none yet"}`);
  return d;
}

/** With payments on (or --root), the allow-lists of the policy (images, models) come from the root contract. */
async function rootPolicyFor(cfg: ChainSettings | undefined, o: SecurityOptions, log: Logger): Promise<(() => Policy) | undefined> {
  if (!cfg) return undefined;
  const ton = new TonAccess(makeTonClient(cfg.network, cfg.endpoint), cfg.network);
  const rp = await RootPolicy.start(resolvePolicy(o.policy), ton, cfg.root, log);
  log.info(`attestation allow-lists from root ${cfg.root.toString()}: ${rp.current.measurements.worker.length} worker image(s), ${rp.current.measurements.proxy.length} proxy image(s), ${rp.current.models.length} model(s)`);
  return () => rp.current;
}

/** Loads a role's payments config; real money (mainnet) is refused to a node whose attestation is the sim stand-in. */
function paymentsConfig(o: SecurityOptions & { payments?: string }) {
  const cfg = loadPaymentsConfig(o.payments!);
  assertNetworkAllowsSim(cfg.network, o.platform ?? "sim");
  return cfg;
}

/**
 * COCOON_PROXY_CAPTURE=FILE appends every decrypted byte the proxy receives and sends to FILE: an audit of
 * what a proxy operator can see (with sealing on, only routing metadata and ciphertext).
 */
function captureTap(file: string | undefined, log: Logger): ((dir: "in" | "out", data: Buffer) => void) | undefined {
  if (!file) return undefined;
  log.warn(`capturing everything this proxy handles to ${file} (COCOON_PROXY_CAPTURE)`);
  const fd = openSync(file, "a");
  return (_dir, data) => writeSync(fd, data);
}

export interface ProxyCliOptions extends SecurityOptions {
  /** Name in its logs (default "proxy"). */
  name?: string;
  host: string;
  workerPort: number;
  clientPort: number;
  statusPort: number;
  /** Payments config JSON (src/payments/config.ts); without it the proxy only counts tokens. */
  payments?: string;
  /** Operator controls' token file (made when missing); without it the controls are off. */
  adminTokenFile?: string;
  /** Requests one client connection may have in flight (--max-in-flight-per-client). */
  maxInFlightPerClient?: number;
  /** Streams one client connection may hold open (--max-streams-per-client). */
  maxStreamsPerClient?: number;
}

export async function startProxyRole(o: ProxyCliOptions): Promise<ProxyNode> {
  const log = createLogger(o.name ?? "proxy");
  const pay = o.payments ? paymentsConfig(o) : undefined;
  // With a proxy contract, the attestation binds it (as the node id): clients and workers that find this proxy on
  // the root check that it is the one registered there (src/client/discovery.ts).
  const sec = await nodeSecurity("proxy", { ...o, ...(pay ? { nodeId: pay.proxyContract.toRawString() } : {}) }, log, undefined, await rootPolicyFor(chainSettings({}, pay), o, log));
  const tap = captureTap(process.env.COCOON_PROXY_CAPTURE, log);
  const meter = pay ? await startProxyPayments(pay, log) : undefined;
  const proxy = new ProxyNode({
    ...(meter ? { meter } : {}),
    ...(tap ? { tap } : {}),
    host: o.host,
    workerPort: o.workerPort,
    clientPort: o.clientPort,
    statusPort: o.statusPort,
    identity: sec.identity,
    verifyWorker: sec.verifierFor("worker"),
    verifyClient: sec.verifierFor("client"),
    requireSealed: sec.production,
    ...(o.maxInFlightPerClient ? { maxInFlightPerClient: o.maxInFlightPerClient } : {}),
    ...(o.maxStreamsPerClient ? { maxStreamsPerClientConnection: o.maxStreamsPerClient } : {}),
    log,
    statusExtra: withOwnEvidence(sec, "proxy"),
  });
  registerProxyControls(proxy, meter);
  enableAdmin(proxy.obs.admin, o.adminTokenFile);
  await proxy.start();
  sec.onRotate(() => proxy.setIdentity(sec.identity));
  return proxy;
}

export interface WorkerCliOptions extends SecurityOptions, DiscoveryCliOptions {
  /** Proxies' worker ports; empty with --root: read them from the root. */
  proxy: string[];
  backend: "embedded" | "openai";
  upstream?: string;
  upstreamKey?: string;
  model?: string;
  modelFile?: string;
  /** --backend openai: the directory the engine loads the weights from (hashed as a Merkle tree). */
  modelDir?: string;
  /** --backend openai: the weights digest, when the directory is not readable from here. */
  modelDigest?: string;
  capacity: number;
  threads?: number;
  statusHost: string;
  statusPort: number;
  name?: string;
  /** Payments config JSON: payout wallet, proxy contract, ledger. */
  payments?: string;
  /** Price coefficient asked (thousandths of the base price). */
  priceCoefficient?: number;
  adminTokenFile?: string;
}

/** The weights digest a worker on --backend openai declares (--model-digest, or --model-dir hashed). */
export async function openAiModelDigest(o: Pick<WorkerCliOptions, "backend" | "model" | "modelDir" | "modelDigest">, log: { info(s: string): void }): Promise<string | undefined> {
  if (!o.modelDir && !o.modelDigest) return undefined;
  if (o.backend !== "openai") throw new Error("--model-dir and --model-digest are for --backend openai (the embedded backend hashes its --model-file itself)");
  if (o.modelDir && o.modelDigest) throw new Error("give either --model-dir or --model-digest, not both");
  if (!o.model) throw new Error("--model-dir / --model-digest need --model NAME: the digest is bound to the one model the worker serves");
  if (o.modelDigest) return parseModelDigest(o.modelDigest);
  log.info(`hashing the weights in ${o.modelDir} (Merkle tree over its files)…`);
  const r = await modelDirDigest(o.modelDir!);
  log.info(`model ${o.model}: ${r.files.length} file(s), digest ${r.digest}`);
  return r.digest;
}

export async function startWorkerRole(o: WorkerCliOptions): Promise<WorkerNode> {
  // The id is fixed before the identity is made: the attestation binds it, and the proxy checks the announced one.
  const id = o.name ?? `worker-${randomUUID().slice(0, 8)}`;
  const log = createLogger(id);
  let backend: Backend;
  const modelDigest = await openAiModelDigest(o, log);
  if (o.backend === "openai") {
    if (!o.upstream) throw new Error("--backend openai needs --upstream URL (the engine's base URL, e.g. http://127.0.0.1:8000)");
    const b = new OpenAiBackend({ upstream: o.upstream, apiKey: o.upstreamKey, model: o.model, ...(modelDigest ? { modelDigest } : {}) });
    await b.start();
    const h = await b.health();
    if (!h.ok) log.warn(`${h.reason} The worker announces itself disabled until the engine answers.`);
    backend = b;
  } else if (o.backend === "embedded") {
    log.info(`loading model ${o.modelFile ?? "(default: models/kjv-char-llama.gguf)"}`);
    backend = await EmbeddedBackend.load({ modelFile: o.modelFile, modelName: o.model, capacity: o.capacity, threads: o.threads });
    log.info(`model ready: ${backend.models().map((m) => `${m.id} (context ${m.contextLength}, sha256 ${m.digest?.slice(0, 12)}…)`).join(", ")}`);
  } else {
    throw new Error(`unknown backend "${o.backend as string}"; use embedded or openai`);
  }
  // An engine that is down at start lists no model yet; a declared digest still binds the named model.
  const served = backend.models()[0];
  const model = served ?? (modelDigest && o.model ? { id: o.model, digest: modelDigest } : undefined);
  const pay = o.payments ? paymentsConfig(o) : undefined;
  const cs = chainSettings(o, pay);
  const sec = await nodeSecurity("worker", { ...o, nodeId: id }, log, model?.digest ? { name: model.id, digest: model.digest } : undefined, await rootPolicyFor(cs, o, log));
  const digests = Object.fromEntries(backend.models().filter((m) => m.digest).map((m) => [m.id, m.digest!]));
  const discover = o.proxy.length === 0 && !!o.root;
  const pinned = o.proxy.length ? o.proxy : discover ? [] : [`127.0.0.1:${DEFAULT_WORKER_PORT}`];
  const directory = discover ? await proxyDirectory(cs!, "workers", log) : undefined;
  // Discovered proxies: each pays from its own contract (a payee each); pinned ones share the configured one.
  const payees = directory && pay ? new PayeesByProxy(pay, digests, log) : undefined;
  const servable = async (targets: ProxyDirectory["targets"]) => {
    if (!payees) return targets;
    await payees.ensure(targets.map((t) => parseAddress(t.contract, "registered proxy")));
    return targets.filter((t) => payees.get(t.key));
  };
  const payee = pay && !directory ? await startWorkerPayments(pay, digests, log) : undefined;
  const worker = new WorkerNode({
    ...(payee ? { payee } : {}),
    ...(payees ? { payeeFor: (t) => payees.get(t.key!) } : {}),
    ...(directory ? { verifyProxyFor: (t) => expectRegisteredProxy(sec.verifierFor("proxy"), { key: t.key!, host: t.host, port: t.port, contract: t.contract }) } : {}),
    proxies: directory ? await servable(directory.targets) : pinned.map((p) => parseHostPort(p, DEFAULT_WORKER_PORT)),
    backend,
    capacity: o.capacity,
    ...(o.priceCoefficient !== undefined ? { priceCoefficient: checkCoefficient(o.priceCoefficient, "--price-coefficient") } : {}),
    identity: () => sec.identity,
    verifyProxy: sec.verifierFor("proxy"),
    workerId: id,
    sealing: sealingKeysOf(sec.node),
    requireSealed: sec.production,
    statusHost: o.statusHost,
    statusPort: o.statusPort,
    log,
    statusExtra: withOwnEvidence(sec, "worker"),
  });
  registerWorkerControls(worker, payee ? () => [payee] : payees ? () => payees.all() : undefined);
  enableAdmin(worker.obs.admin, o.adminTokenFile);
  await worker.start();
  sec.onRotate((node) => worker.rotateIdentity(sealingKeysOf(node)));
  directory?.onChange((targets) => void servable(targets).then((t) => worker.setProxies(t)).catch((err: Error) => log.warn(`could not follow the root's proxy list: ${err.message}`)));
  return worker;
}

export interface ClientCliOptions extends SecurityOptions, DiscoveryCliOptions {
  host: string;
  port: number;
  /** A pinned proxy's client port; without it and with --root, proxies are read from the root. */
  proxy?: string;
  /** Most proxies to keep links to (discovery). */
  maxProxies?: number;
  /** Price ceiling (coefficient, thousandths of the base price). */
  maxCoefficient?: number;
  /** commander's --no-seal sets this false. */
  seal?: boolean;
  /** Payments config JSON: the client's wallet, channel and ledger. */
  payments?: string;
  /** Origins browser apps may call the API from (--cors-origin, repeatable). */
  corsOrigin?: string[];
  /** Seconds a request may run before it is cancelled (--request-timeout). */
  requestTimeout?: number;
  /** Most app HTTP connections open at once (--max-connections). */
  maxConnections?: number;
  adminTokenFile?: string;
  /** With --root and --payments: TON deposited into a channel opened on demand, and into each top-up. */
  channelDeposit?: string;
  /** With --root and --payments: most TON kept deposited in this client's channels that are not closed (0: off). */
  maxDeposit?: string;
}

/** How a discovering client funds its channels (--channel-deposit, --max-deposit; defaults in client-channels.ts). */
function channelFunding(o: ClientCliOptions, pay: PaymentsConfig): ChannelFunding {
  const ton = (v: string, flag: string, zero: boolean): bigint => {
    let n: bigint;
    try {
      n = toNano(v);
    } catch {
      throw new Error(`${flag} must be an amount of TON like 1 or 0.5, got "${v}"`);
    }
    if (n < 0n || (!zero && n === 0n)) throw new Error(`${flag} must be ${zero ? "zero or more" : "more than zero"}, got "${v}"`);
    return n;
  };
  return {
    channelDeposit: o.channelDeposit !== undefined ? ton(o.channelDeposit, "--channel-deposit", false) : DEFAULT_CHANNEL_DEPOSIT,
    maxDeposit: o.maxDeposit !== undefined ? ton(o.maxDeposit, "--max-deposit", true) : defaultMaxDeposit(pay.network),
  };
}

export async function startClientRole(o: ClientCliOptions): Promise<ClientNode> {
  const log = createLogger("client");
  const pay = o.payments ? paymentsConfig(o) : undefined;
  const cs = chainSettings(o, pay);
  const sec = await nodeSecurity("client", o, log, undefined, await rootPolicyFor(cs, o, log));
  const seal = o.seal !== false;
  if (!seal && sec.production) throw new Error("--no-seal is not allowed with the production policy: requests must be sealed to attested workers");
  if (!seal) log.warn("sealing is OFF (--no-seal): the proxy can read every prompt and answer; for development only");
  const clientId = `client-${randomBytes(4).toString("hex")}`;
  const discover = !o.proxy && !!o.root;
  const directory = discover ? await proxyDirectory(cs!, "clients", log) : undefined;
  // Discovered proxies: a payer per proxy contract, on the open channel with it (none: that proxy is not used).
  if ((o.channelDeposit !== undefined || o.maxDeposit !== undefined) && !(directory && pay)) throw new Error("--channel-deposit and --max-deposit are for a client that finds proxies on the root (--root, no --proxy) and pays (--payments)");
  const funding = directory && pay ? channelFunding(o, pay) : undefined;
  const payers = directory && pay ? new PayersByProxy(pay, clientId, log, funding) : undefined;
  const contractsOf = (targets: ProxyDirectory["targets"]) => targets.map((t) => parseAddress(t.contract, "registered proxy"));
  // The client sees a list change only once the payers of new proxies run (a link registers its channel on connecting).
  const listeners: Array<(t: ProxyDirectory["targets"]) => void> = [];
  const view = directory && {
    get targets() {
      return directory.targets;
    },
    onChange: (l: (t: ProxyDirectory["targets"]) => void) => void listeners.push(l),
    status: () => directory.status(),
  };
  if (payers) {
    await payers.load();
    const b = payers.funder!.budget();
    log.info(funding!.maxDeposit > 0n
      ? `channels on demand: a linked proxy without a channel gets one with ${fromNano(funding!.channelDeposit)} TON, topped up when under ${fromNano(payers.funder!.topUpBelow)} TON; at most ${fromNano(b.max)} TON deposited in this client's channels (--max-deposit), ${fromNano(b.used)} TON now, ${fromNano(b.left)} TON left`
      : "channels on demand are off (--max-deposit 0): only proxies with a channel opened by hand are used");
    await payers.ensure(contractsOf(directory!.targets));
  }
  directory?.onChange((targets) => void (payers ? payers.ensure(contractsOf(targets)) : Promise.resolve())
    .catch((err: Error) => log.warn(err.message))
    .finally(() => listeners.forEach((l) => l(targets))));
  const payer = pay && !directory ? await startClientPayments(pay, clientId, log) : undefined;
  const client = new ClientNode({
    clientId,
    ...(payer ? { payer } : {}),
    ...(payers ? { payerFor: (t) => payers.get(t.key) } : {}),
    host: o.host,
    port: o.port,
    ...(o.maxCoefficient !== undefined ? { maxCoefficient: checkCoefficient(o.maxCoefficient, "--max-coefficient") } : {}),
    ...(directory
      ? { directory: view, verifyProxyFor: (t) => expectRegisteredProxy(sec.verifierFor("proxy"), t), ...(o.maxProxies ? { maxProxyLinks: o.maxProxies } : {}) }
      : { proxy: parseHostPort(o.proxy ?? `127.0.0.1:${DEFAULT_CLIENT_PORT}`, DEFAULT_CLIENT_PORT) }),
    verifyProxy: sec.verifierFor("proxy"),
    identity: sec.identity,
    log,
    selfInsecure: sec.node.insecure,
    ...(seal ? { verifyWorkerCert: sec.workerCertVerifier } : {}),
    statusExtra: sec.statusExtra,
    ...(o.corsOrigin?.length ? { corsOrigins: o.corsOrigin } : {}),
    ...(o.requestTimeout ? { requestTimeoutMs: o.requestTimeout * 1000 } : {}),
    ...(o.maxConnections ? { maxAppConnections: o.maxConnections } : {}),
  });
  enableAdmin(client.obs.admin, o.adminTokenFile);
  // Channels being opened for the proxies just linked: ready then means funded (bounded: a slow chain does not hold
  // the client back; until its channel opens a proxy takes no request).
  await payers?.settled(STARTUP_FUNDING_WAIT_MS);
  await client.start();
  return client;
}

export { DEFAULT_CLIENT_API_PORT, DEFAULT_CLIENT_PORT, DEFAULT_WORKER_PORT, DEFAULT_PROXY_STATUS_PORT };
