/**
 * The proxies a client keeps links to, and which one takes the next request.
 *
 * Targets come from the root (src/client/discovery.ts) or from `--proxy` (one pinned target). The set keeps links to
 * at most `maxLinks` of them (DEFAULT_MAX_LINKS): with three, one proxy lost still leaves two to spread load over,
 * while each link costs one attested TLS connection kept alive by pings, on both ends. Which targets get a link is
 * random (so that clients spread over the registered proxies instead of all taking the first ones), and stable:
 * a linked target keeps its link while it stays registered.
 *
 * Choice (`pick`): among connected links that are not cooling down and not excluded (already tried for this
 * request), the one with the lowest score = (requests in flight + 1) x round-trip time (EWMA of the connection's
 * ping RTT, DEFAULT_RTT_MS until measured) x (1 + recent refusals). So a near, idle proxy wins; a busy or far one
 * takes less; one that refused recently takes less still.
 *
 * Health: a refusal that says "not now" (no worker, overloaded, shutting down, lost connection) puts the proxy in a
 * cool-down that doubles with each consecutive one (1 s .. 30 s); an answer that completes resets it. A link that
 * stays unconnected (dead, refused at the handshake, unreachable) for DROP_AFTER_MS is dropped and its place given to
 * another registered target, if there is one; the dropped target goes to the back of the queue and is linked again
 * when a place frees up. A link keeps redialling meanwhile (src/protocol/peer-link.ts), so a proxy that comes back
 * is used again as soon as it is connected.
 */
import type { Logger } from "../util/log.js";
import type { ProxyLink } from "./proxy-link.js";

export const DEFAULT_MAX_LINKS = 3;
/** Round-trip time assumed for a link whose connection has not measured one yet. */
export const DEFAULT_RTT_MS = 50;
/** A link unconnected this long gives its place to another registered proxy. */
export const DROP_AFTER_MS = 20_000;
export const COOLDOWN_MIN_MS = 1_000;
export const COOLDOWN_MAX_MS = 30_000;
/** Weight of the newest RTT sample in the moving average. */
const RTT_ALPHA = 0.3;

export interface ProxyTarget {
  /** Stable identity: the proxy contract address (raw form) when discovered, "host:port" when pinned. */
  key: string;
  host: string;
  port: number;
  /** The proxy contract (friendly form), when known: payments are per proxy contract. */
  contract?: string;
}

export interface ProxyRoute {
  readonly target: ProxyTarget;
  readonly link: ProxyLink;
  inflight: number;
  rttMs: number | undefined;
  /** Consecutive "not now" refusals. */
  refusals: number;
  coolUntil: number;
  /** Since when the link is unconnected (undefined while connected). */
  downSince: number | undefined;
  lastRefusal?: string;
  served: number;
}

export interface ProxySetOptions {
  makeLink: (target: ProxyTarget) => ProxyLink;
  maxLinks?: number;
  log: Logger;
  /** Time source (tests). */
  now?: () => number;
  /** Random source in [0, 1) (tests). */
  random?: () => number;
}

export class ProxySet {
  private readonly routes = new Map<string, ProxyRoute>();
  private targets: ProxyTarget[] = [];
  /** Targets dropped for being unreachable: linked again last. */
  private readonly dropped = new Set<string>();
  private readonly maxLinks: number;
  private readonly now: () => number;
  private readonly random: () => number;
  private started = false;

  constructor(private readonly opts: ProxySetOptions) {
    this.maxLinks = opts.maxLinks ?? DEFAULT_MAX_LINKS;
    if (!Number.isInteger(this.maxLinks) || this.maxLinks < 1) throw new Error(`the number of proxy links must be a positive integer, got ${this.maxLinks}`);
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
  }

  get all(): ProxyRoute[] {
    return [...this.routes.values()];
  }

  /** Every target the set knows of (linked or not). */
  get known(): readonly ProxyTarget[] {
    return this.targets;
  }

  start(): void {
    this.started = true;
    for (const r of this.routes.values()) r.link.start();
  }

  /** The registered targets changed: drop links to those gone, fill free places. */
  setTargets(targets: ProxyTarget[]): void {
    this.targets = targets;
    const listed = new Map(targets.map((t) => [t.key, t]));
    for (const [key, r] of this.routes) {
      const t = listed.get(key);
      // Gone from the list, or it moved (re-registered with other endpoints): unlink (and relink below if listed).
      if (!t || t.host !== r.target.host || t.port !== r.target.port) this.unlink(key, t ? "its endpoints changed" : "no longer registered");
    }
    for (const key of this.dropped) if (!listed.has(key)) this.dropped.delete(key);
    this.fill();
  }

  /** Links free places to unlinked targets: never-dropped ones first, in random order. */
  private fill(): void {
    const free = this.targets.filter((t) => !this.routes.has(t.key));
    const fresh = shuffle(free.filter((t) => !this.dropped.has(t.key)), this.random);
    const again = free.filter((t) => this.dropped.has(t.key));
    for (const t of [...fresh, ...again]) {
      if (this.routes.size >= this.maxLinks) break;
      this.link(t);
    }
  }

  private link(t: ProxyTarget): void {
    const link = this.opts.makeLink(t);
    this.routes.set(t.key, { target: t, link, inflight: 0, rttMs: undefined, refusals: 0, coolUntil: 0, downSince: this.now(), served: 0 });
    this.dropped.delete(t.key);
    if (this.started) link.start();
    this.opts.log.info(`linking to proxy ${describeTarget(t)}`);
  }

  private unlink(key: string, why: string): void {
    const r = this.routes.get(key);
    if (!r) return;
    this.routes.delete(key);
    r.link.stop();
    this.opts.log.info(`unlinked proxy ${describeTarget(r.target)}: ${why}`);
  }

  /**
   * Refreshes health from the links (connected or not, RTT) and replaces links that stayed unconnected for
   * DROP_AFTER_MS with unlinked targets, if any. Called before each choice and on a timer.
   */
  tend(): void {
    const now = this.now();
    for (const r of this.routes.values()) {
      if (r.link.connected) {
        // Back after being down: a fresh connection starts with a clean record.
        if (r.downSince !== undefined && r.link.connectedSince !== undefined && r.link.connectedSince >= r.downSince) {
          r.refusals = 0;
          r.coolUntil = 0;
        }
        r.downSince = undefined;
        const rtt = r.link.conn?.rttMs;
        if (rtt !== undefined) r.rttMs = r.rttMs === undefined ? rtt : r.rttMs * (1 - RTT_ALPHA) + rtt * RTT_ALPHA;
      } else {
        r.downSince ??= now;
      }
    }
    // Swapping only helps when a link stayed down long enough and some registered proxy has no link.
    const stale = [...this.routes].filter(([, r]) => r.downSince !== undefined && now - r.downSince >= DROP_AFTER_MS);
    if (stale.length === 0 || !this.targets.some((t) => !this.routes.has(t.key))) return;
    for (const [key, r] of stale) {
      this.dropped.add(key);
      this.unlink(key, `unreachable for ${Math.round((now - r.downSince!) / 1000)} s${r.link.lastError ? ` (${r.link.lastError})` : ""}; trying another registered proxy`);
    }
    this.fill();
  }

  score(r: ProxyRoute): number {
    return (r.inflight + 1) * (r.rttMs ?? DEFAULT_RTT_MS) * (1 + r.refusals);
  }

  /** The healthiest connected route not in `exclude`, or undefined when none is usable now. */
  pick(exclude: ReadonlySet<string> = new Set()): ProxyRoute | undefined {
    this.tend();
    const now = this.now();
    let best: ProxyRoute | undefined;
    let fallback: ProxyRoute | undefined;
    for (const r of this.routes.values()) {
      if (exclude.has(r.target.key) || !r.link.connected) continue;
      // Cooling down: used only when nothing else is connected.
      if (r.coolUntil > now) {
        if (!fallback || r.coolUntil < fallback.coolUntil) fallback = r;
        continue;
      }
      if (!best || this.score(r) < this.score(best)) best = r;
    }
    return best ?? fallback;
  }

  /** Resolves once some route not in `exclude` is connected, or after `ms`. */
  async waitUsable(ms: number, exclude: ReadonlySet<string> = new Set()): Promise<ProxyRoute | undefined> {
    const deadline = this.now() + ms;
    for (;;) {
      const r = this.pick(exclude);
      if (r || this.now() >= deadline) return r;
      const waiting = this.all.filter((x) => !exclude.has(x.target.key));
      if (waiting.length === 0) {
        await new Promise((res) => setTimeout(res, Math.min(100, Math.max(1, deadline - this.now()))));
        continue;
      }
      await Promise.race(waiting.map((x) => x.link.waitConnected(Math.min(250, Math.max(1, deadline - this.now())))));
    }
  }

  /** A request is going out on `r`. */
  begin(r: ProxyRoute): void {
    r.inflight++;
  }

  /** It ended: `ok` when an answer came back; a "not now" refusal cools the proxy down. */
  end(r: ProxyRoute, outcome: { ok: true } | { ok: false; refusal?: string }): void {
    r.inflight = Math.max(0, r.inflight - 1);
    if (outcome.ok) {
      r.served++;
      r.refusals = 0;
      r.coolUntil = 0;
      return;
    }
    if (!outcome.refusal) return;
    r.refusals++;
    r.lastRefusal = outcome.refusal;
    r.coolUntil = this.now() + Math.min(COOLDOWN_MAX_MS, COOLDOWN_MIN_MS * 2 ** (r.refusals - 1));
  }

  stop(): void {
    this.started = false;
    for (const key of [...this.routes.keys()]) {
      const r = this.routes.get(key)!;
      this.routes.delete(key);
      r.link.stop();
    }
  }
}

export function describeTarget(t: ProxyTarget): string {
  return t.contract ? `${t.contract} at ${t.host}:${t.port}` : `${t.host}:${t.port}`;
}

function shuffle<T>(a: T[], random: () => number): T[] {
  const out = [...a];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
