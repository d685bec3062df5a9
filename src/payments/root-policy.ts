// The attestation policy's allow-lists from the root contract: which worker and proxy images and which model
// weights the network accepts are decided on chain, and every node reads them there (the original Cocoon's
// hosts crash when an image hash is missing on chain; ours refuse the peer and say which hash to add).
import type { Address } from "@ton/core";
import type { Policy } from "../tee/policy.js";
import type { TonAccess } from "./ton.js";
import type { Logger } from "../util/log.js";

/** How often a node re-reads the root (every change bumps its version). */
export const ROOT_POLICY_REFRESH_MS = 60_000;

/** The base policy (mode, sim, TCB, debug) with the root's allow-lists. */
export function mergeRootAllowLists(base: Policy, root: { version: number; workerImages: Set<string>; proxyImages: Set<string>; models: Map<string, unknown> }, rootAddress: string): Policy {
  return {
    ...base,
    name: `${base.name} + root ${rootAddress} v${root.version}`,
    measurements: { client: base.measurements.client, worker: [...root.workerImages].sort(), proxy: [...root.proxyImages].sort() },
    models: [...root.models.keys()].sort(),
    // The root is authoritative: an image or model it does not list is not allowed, even in dev mode.
    strictAllowLists: true,
  };
}

export class RootPolicy {
  private policy: Policy;
  private version = -1;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly base: Policy,
    private readonly ton: TonAccess,
    private readonly root: Address,
    private readonly log?: Logger,
  ) {
    this.policy = base;
  }

  /** Reads the root once (failing loudly if it cannot), then refreshes in the background. */
  static async start(base: Policy, ton: TonAccess, root: Address, log?: Logger, refreshMs = ROOT_POLICY_REFRESH_MS): Promise<RootPolicy> {
    const p = new RootPolicy(base, ton, root, log);
    try {
      await p.refresh();
    } catch (err) {
      throw new Error(`cannot read the allow-lists of root contract ${root.toString()} (${(err as Error).message}); check the payments settings (endpoint, root) and that the chain runs`);
    }
    p.timer = setInterval(() => void p.refresh().catch((err: Error) => p.log?.warn(`could not refresh the root's allow-lists: ${err.message}; keeping version ${p.version}`)), refreshMs);
    p.timer.unref();
    return p;
  }

  get current(): Policy {
    return this.policy;
  }

  async refresh(): Promise<void> {
    const snap = await this.ton.rootSnapshot(this.root);
    if (snap.version === this.version) return;
    this.policy = mergeRootAllowLists(this.base, snap, this.root.toString());
    if (this.version >= 0) this.log?.info(`root allow-lists changed (version ${this.version} -> ${snap.version})`);
    this.version = snap.version;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
