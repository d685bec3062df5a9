/**
 * Prices of requests in nanoTON, from the root contract's per-model prices (nanoTON per token, prompt and completion
 * apart), the serving worker's price coefficient, and the root's proxy fee. Everything is bigint: no float ever
 * touches money.
 *
 *   cost          = prompt_tokens x prompt_price x k / 1000 + completion_tokens x completion_price x k / 1000
 *                   (each part rounded down; k = the worker's price coefficient, 1000 = the root's base price)
 *   worker share  = cost x (10000 - proxyFeeBps) / 10000   (rounded down; the remainder is the proxy's fee)
 *   maximum cost  = (prompt_bytes x prompt_price + max_tokens x completion_price) x k_max / 1000
 *                   (a prompt never has more tokens than its request body has bytes, so this bounds the real cost)
 *
 * The price market (as in the original Cocoon): a worker announces its coefficient (`--price-coefficient`, in
 * thousandths: 1500 = 1.5 x the base price); a client caps it per request (`max_coefficient`) or in its config; the
 * proxy routes only to workers at or under the cap.
 */
import type { ModelPrice } from "../chain/contracts/RootContract.js";
import { BPS_DENOMINATOR } from "../chain/contracts/RootContract.js";

export type { ModelPrice };

/** Cost of one request, split as the original reports it in `usage` (nanoTON). */
export interface RequestCost {
  prompt: bigint;
  completion: bigint;
  total: bigint;
}

/** The `usage` field names for costs (nanoTON integers), as the original Cocoon reports them. */
export const COST_FIELDS = { prompt: "prompt_total_cost", completion: "completion_total_cost", total: "total_cost" } as const;

function tokens(n: number, what: string): bigint {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
  return BigInt(n);
}

function checkBps(bps: number): bigint {
  if (!Number.isInteger(bps) || bps < 0 || bps > BPS_DENOMINATOR) {
    throw new RangeError(`proxyFeeBps must be an integer in 0..${BPS_DENOMINATOR}, got ${bps}`);
  }
  return BigInt(bps);
}

/** A price coefficient of 1000 is the root's base price. */
export const COEFFICIENT_BASE = 1000;
/** What a client accepts when it says nothing (the original's default max_coefficient). */
export const DEFAULT_MAX_COEFFICIENT = 4000;
/** Largest coefficient a worker may announce or a client may allow (100 x the base price). */
export const MAX_COEFFICIENT = 100_000;

/** Throws unless `k` is a coefficient in 1..MAX_COEFFICIENT. */
export function checkCoefficient(k: number, what = "price coefficient"): number {
  if (!Number.isInteger(k) || k < 1 || k > MAX_COEFFICIENT) throw new RangeError(`${what} must be an integer from 1 to ${MAX_COEFFICIENT} (thousandths of the base price: 1000 = 1x), got ${k}`);
  return k;
}

export function costOf(price: ModelPrice, promptTokens: number, completionTokens: number, coefficient = COEFFICIENT_BASE): RequestCost {
  const k = BigInt(checkCoefficient(coefficient));
  const base = BigInt(COEFFICIENT_BASE);
  const prompt = (tokens(promptTokens, "prompt_tokens") * price.promptPrice * k) / base;
  const completion = (tokens(completionTokens, "completion_tokens") * price.completionPrice * k) / base;
  return { prompt, completion, total: prompt + completion };
}

/** What the worker earns of a cost; the rest (rounded up) is the proxy's fee. */
export function workerShare(cost: bigint, proxyFeeBps: number): bigint {
  if (cost < 0n) throw new RangeError("cost must not be negative");
  const denom = BigInt(BPS_DENOMINATOR);
  return (cost * (denom - checkBps(proxyFeeBps))) / denom;
}

/** The most a request may cost: admission reserves this much of the client's deposit. */
export function maxCostOf(price: ModelPrice, maxTokens: number, promptBytes: number, maxCoefficient = COEFFICIENT_BASE): bigint {
  const base = tokens(promptBytes, "prompt bytes") * price.promptPrice + tokens(maxTokens, "max_tokens") * price.completionPrice;
  const k = BigInt(Math.max(COEFFICIENT_BASE, checkCoefficient(maxCoefficient, "max coefficient")));
  return (base * k + BigInt(COEFFICIENT_BASE) - 1n) / BigInt(COEFFICIENT_BASE);
}

/** Cost as decimal strings under the `usage` field names (what the proxy puts in the trailer). */
export function costFields(c: RequestCost): Record<string, string> {
  return { [COST_FIELDS.prompt]: c.prompt.toString(), [COST_FIELDS.completion]: c.completion.toString(), [COST_FIELDS.total]: c.total.toString() };
}

const DECIMAL = /^(0|[1-9][0-9]{0,38})$/;

/** Parses cost fields received from a peer (untrusted): decimal strings, total = prompt + completion. */
export function parseCostFields(fields: Record<string, unknown> | undefined): RequestCost {
  if (!fields || typeof fields !== "object") throw new Error("the answer carries no cost; the proxy has no payments configured or is misbehaving");
  const get = (k: string): bigint => {
    const v = fields[k];
    if (typeof v !== "string" || !DECIMAL.test(v)) throw new Error(`cost field ${k} must be a decimal string of nanoTON, got ${JSON.stringify(v)}`);
    return BigInt(v);
  };
  const c = { prompt: get(COST_FIELDS.prompt), completion: get(COST_FIELDS.completion), total: get(COST_FIELDS.total) };
  if (c.prompt + c.completion !== c.total) throw new Error(`cost fields do not add up: ${c.prompt} + ${c.completion} != ${c.total}`);
  return c;
}

/** Per-model prices (by model name, as clients ask for them) plus the proxy fee: what pricing needs. */
export class PriceBook {
  constructor(readonly proxyFeeBps: number, private readonly prices: ReadonlyMap<string, ModelPrice>) {
    checkBps(proxyFeeBps);
  }

  /**
   * Builds the book from the root's prices (keyed by weights digest, lowercase hex) and the names models are served
   * under. A name whose digest the root does not price is left out (requests for it are refused).
   */
  static fromRoot(proxyFeeBps: number, rootPrices: ReadonlyMap<string, ModelPrice>, modelDigests: Record<string, string>): PriceBook {
    const m = new Map<string, ModelPrice>();
    for (const [name, digest] of Object.entries(modelDigests)) {
      const p = rootPrices.get(digest.toLowerCase());
      if (p) m.set(name, p);
    }
    return new PriceBook(proxyFeeBps, m);
  }

  has(model: string): boolean {
    return this.prices.has(model);
  }

  models(): string[] {
    return [...this.prices.keys()];
  }

  /** The price of a model, or an Error saying it has no price on chain. */
  price(model: string): ModelPrice {
    const p = this.prices.get(model);
    if (!p) {
      const known = this.models().join(", ") || "none";
      throw new Error(`model '${model}' has no price in the root contract (priced models: ${known}); the network owner must add its weights digest with a price`);
    }
    return p;
  }

  cost(model: string, promptTokens: number, completionTokens: number, coefficient = COEFFICIENT_BASE): RequestCost {
    return costOf(this.price(model), promptTokens, completionTokens, coefficient);
  }

  maxCost(model: string, maxTokens: number, promptBytes: number, maxCoefficient = COEFFICIENT_BASE): bigint {
    return maxCostOf(this.price(model), maxTokens, promptBytes, maxCoefficient);
  }

  workerShare(cost: bigint): bigint {
    return workerShare(cost, this.proxyFeeBps);
  }
}
