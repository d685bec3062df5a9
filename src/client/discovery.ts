/**
 * Proxy discovery: the root contract is the network's directory. A client or worker started with `--root` (and no
 * `--proxy`) reads the registered proxies there, links to several (src/client/proxy-set.ts for clients, the worker's
 * own links for workers), and re-reads the list when the root's version changes.
 *
 * Trust: a registry entry only says where to dial. A link is trusted once the proxy's RA-TLS certificate verifies
 * against the policy whose allow-lists come from the same root (src/payments/root-policy.ts: proxy images on the
 * root's list, strict), AND its attested claims name the registered proxy contract (`expectRegisteredProxy`): a
 * proxy at a registered address whose attestation names another contract, or none, is refused with the reason.
 *
 * Refresh: one get-method call (`root_dicts`) every DISCOVERY_REFRESH_MS (15 s); nothing changes unless the version
 * did. 15 s bounds how long a newly registered proxy stays unused and how long a removed one is still dialled, at
 * 240 calls an hour per node (a public TON Center API key allows far more).
 */
import type { Address } from "@ton/core";
import { decodeProxyEndpoints } from "../chain/proxy-endpoints.js";
import type { RootSnapshot } from "../chain/contracts/RootContract.js";
import type { PeerInfo, PeerVerifier } from "../protocol/transport.js";
import type { Logger } from "../util/log.js";
import type { ProxyTarget } from "./proxy-set.js";

export const DISCOVERY_REFRESH_MS = 15_000;

/** Which public endpoint a node dials: clients the clients port, workers the workers port. */
export type DiscoverySide = "clients" | "workers";

export interface RootReader {
  rootSnapshot(root: Address): Promise<Pick<RootSnapshot, "version" | "proxies">>;
}

/** The registered proxies a node of `side` can dial, from a root snapshot. */
export function targetsFromSnapshot(snap: Pick<RootSnapshot, "proxies">, side: DiscoverySide): { targets: ProxyTarget[]; skipped: string[] } {
  const targets: ProxyTarget[] = [];
  const skipped: string[] = [];
  for (const p of snap.proxies.values()) {
    const hp = decodeProxyEndpoints(p.endpoint)[side];
    if (!hp) {
      skipped.push(p.address.toString());
      continue;
    }
    targets.push({ key: p.address.toRawString(), host: hp.host, port: hp.port, contract: p.address.toString() });
  }
  targets.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { targets, skipped };
}

export class ProxyDirectory {
  private version = -1;
  private list: ProxyTarget[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<(targets: ProxyTarget[]) => void> = [];
  lastError: string | undefined;
  refreshedAt: number | undefined;

  private constructor(
    private readonly reader: RootReader,
    readonly root: Address,
    private readonly side: DiscoverySide,
    private readonly log: Logger,
  ) {}

  /** Reads the root once (failing loudly if it cannot, or if it registers no proxy for this side), then refreshes. */
  static async start(o: { reader: RootReader; root: Address; side: DiscoverySide; log: Logger; refreshMs?: number }): Promise<ProxyDirectory> {
    const d = new ProxyDirectory(o.reader, o.root, o.side, o.log);
    try {
      await d.refresh();
    } catch (err) {
      throw new Error(`cannot read the proxies registered on root ${o.root.toString()} (${(err as Error).message}); check --root and the chain endpoint, or pin a proxy with --proxy`);
    }
    if (d.list.length === 0) {
      o.log.warn(`root ${o.root.toString()} registers no proxy with a ${o.side} endpoint yet; waiting for one ("cocoon proxy register")`);
    }
    d.timer = setInterval(() => void d.refresh().catch((err: Error) => {
      d.lastError = err.message;
      d.log.warn(`could not re-read the proxies on the root: ${err.message}; keeping version ${d.version}`);
    }), o.refreshMs ?? DISCOVERY_REFRESH_MS);
    d.timer.unref();
    return d;
  }

  get targets(): ProxyTarget[] {
    return this.list;
  }

  get rootVersion(): number {
    return this.version;
  }

  onChange(listener: (targets: ProxyTarget[]) => void): void {
    this.listeners.push(listener);
  }

  async refresh(): Promise<boolean> {
    const snap = await this.reader.rootSnapshot(this.root);
    this.refreshedAt = Date.now();
    this.lastError = undefined;
    if (snap.version === this.version) return false;
    const { targets, skipped } = targetsFromSnapshot(snap, this.side);
    if (skipped.length) this.log.info(`registered proxies without a ${this.side} endpoint (not used here): ${skipped.join(", ")}`);
    const before = this.version;
    this.version = snap.version;
    this.list = targets;
    if (before >= 0) this.log.info(`root version ${before} -> ${snap.version}: ${targets.length} proxy(ies) for ${this.side}`);
    for (const l of this.listeners) l(targets);
    return true;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  status(): Record<string, unknown> {
    return {
      root: this.root.toString(),
      rootVersion: this.version,
      registered: this.list.map((t) => ({ contract: t.contract, endpoint: `${t.host}:${t.port}` })),
      ...(this.refreshedAt ? { refreshedAt: new Date(this.refreshedAt).toISOString() } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }
}

/**
 * Wraps a proxy verifier (RA-TLS evidence against the root-derived policy) with the registry binding: the proxy's
 * attested claims must name the contract it is registered as (its node id is its contract address, raw form).
 */
export function expectRegisteredProxy(verify: PeerVerifier, target: ProxyTarget): PeerVerifier {
  return async (der): Promise<PeerInfo> => {
    const peer = await verify(der);
    const claims = peer.claims as { nodeId?: string | null } | undefined;
    const named = claims?.nodeId ?? peer.nodeId;
    if (named !== target.key) {
      throw new Error(`the proxy at ${target.host}:${target.port} is registered on the root as ${target.contract ?? target.key}, but its attestation names ${typeof named === "string" ? `"${named.slice(0, 80)}"` : "no proxy contract"}; refusing it (start the proxy with --payments naming its own proxy contract)`);
    }
    return peer;
  };
}
