// One node's money across the proxies it deals with: a client holds a channel with each proxy it uses, a worker is
// paid by each proxy it serves. Status pages and dashboards show the per-proxy views and this sum of them.

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/**
 * Sums per-proxy payment views field by field: a field that is a decimal nanoTON string in every view that has it is
 * added up; anything else (addresses, statuses, nested objects) is left out, except `network`, which all share.
 */
export function sumPaymentViews(views: readonly Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = { proxies: views.length };
  if (views[0]?.network !== undefined) out.network = views[0].network;
  const keys = new Set(views.flatMap((v) => Object.keys(v)));
  for (const k of keys) {
    const values = views.map((v) => v[k]).filter((x) => x !== undefined);
    if (values.length > 0 && values.every((x) => typeof x === "string" && DECIMAL.test(x))) {
      out[k] = values.reduce((s: bigint, x) => s + BigInt(x as string), 0n).toString();
    }
  }
  return out;
}
