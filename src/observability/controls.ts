// Which operator controls each role offers (src/observability/admin.ts checks the token and runs them), wired
// by the CLI when the node starts with --admin-token-file.
import type { WorkerNode } from "../worker/worker.js";
import type { ProxyNode } from "../proxy/proxy.js";
import type { ProxyMeter } from "../payments/proxy-meter.js";
import type { WorkerPayee } from "../payments/worker-payee.js";
import { loadOrCreateAdminToken, type AdminControls } from "./admin.js";

/** Turns a node's controls on with the token in `file` (made when missing); no file, no controls. */
export function enableAdmin(admin: AdminControls, file: string | undefined): void {
  if (file) admin.setToken(loadOrCreateAdminToken(file));
}

/** `payees`: the worker's payees now (one, or one per proxy it serves when it found its proxies on the root). */
export function registerWorkerControls(worker: WorkerNode, payees: (() => WorkerPayee[]) | undefined): void {
  const admin = worker.obs.admin;
  const hold = async (state: string, reason: string | undefined, said: string) => {
    await worker.hold(reason);
    admin.state = state;
    return said;
  };
  admin.register("drain", () => hold("draining", "draining by its operator: finishing running requests, taking no new ones", "draining: proxies send no new requests; running ones finish (enable to undo)"));
  admin.register("disable", () => hold("disabled", "disabled by its operator", "disabled: announced to proxies as disabled (enable to undo)"));
  admin.register("enable", () => hold("serving", undefined, "enabled: announced to proxies as taking requests"));
  if (payees) {
    admin.register("payout", async () => {
      const said: string[] = [];
      for (const payee of payees()) {
        const before = payee.claims;
        await payee.claim(true);
        const s = payee.status();
        said.push(payee.claims > before ? `claimed on chain: ${s.paid} nanoTON paid so far` : `nothing to claim now (unclaimed: ${s.unclaimed} nanoTON)`);
      }
      return said.length ? said.join("; ") : "nothing to claim now (no proxy pays this worker yet)";
    });
  }
}

export function registerProxyControls(proxy: ProxyNode, meter: ProxyMeter | undefined): void {
  const admin = proxy.obs.admin;
  admin.register("drain", async () => {
    proxy.hold(`The proxy ${proxy.id} is drained by its operator and takes no new requests; retry through another proxy.`);
    admin.state = "draining";
    return "draining: new requests are refused, running ones finish (enable to undo)";
  });
  admin.register("enable", async () => {
    proxy.hold(undefined);
    admin.state = "serving";
    return "serving: new requests are routed again";
  });
  if (meter) {
    admin.register("payout", async () => {
      await meter.flushPayouts(true);
      return `payout vouchers sent to the connected workers (${String(meter.status().transactions && (meter.status().transactions as { payoutVouchers?: number }).payoutVouchers)} so far)`;
    });
    admin.register("redeem", async () => {
      await meter.flushRedeems(true);
      return `client vouchers redeemed on chain: ${String(meter.status().redeemed)} nanoTON redeemed so far`;
    });
  }
}
