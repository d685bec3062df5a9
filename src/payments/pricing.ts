/**
 * Prices of requests in nanoTON, from the root contract's per-model prices (nanoTON per token, prompt and completion
 * apart) and its proxy fee. Everything is bigint: no float ever touches money.
 *
 *   cost          = prompt_tokens x prompt_price + completion_tokens x completion_price
 *   worker share  = cost x (10000 - proxyFeeBps) / 10000   (rounded down; the remainder is the proxy's fee)
 *   maximum cost  = prompt_bytes x prompt_price + max_tokens x completion_price
 *                   (a prompt never has more tokens than its request body has bytes, so this bounds the real cost)
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

export function costOf(price: ModelPrice, promptTokens: number, completionTokens: number): RequestCost {
  const prompt = tokens(promptTokens, "prompt_tokens") * price.promptPrice;
  const completion = tokens(completionTokens, "completion_tokens") * price.completionPrice;
  return { prompt, completion, total: prompt + completion };
}

/** What the worker earns of a cost; the rest (rounded up) is the proxy's fee. */
export function workerShare(cost: bigint, proxyFeeBps: number): bigint {
  if (cost < 0n) throw new RangeError("cost must not be negative");
  const denom = BigInt(BPS_DENOMINATOR);
  return (cost * (denom - checkBps(proxyFeeBps))) / denom;
}

/** The most a request may cost: admission reserves this much of the client's deposit. */
export function maxCostOf(price: ModelPrice, maxTokens: number, promptBytes: number): bigint {
  return tokens(promptBytes, "prompt bytes") * price.promptPrice + tokens(maxTokens, "max_tokens") * price.completionPrice;
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

  cost(model: string, promptTokens: number, completionTokens: number): RequestCost {
    return costOf(this.price(model), promptTokens, completionTokens);
  }

  maxCost(model: string, maxTokens: number, promptBytes: number): bigint {
    return maxCostOf(this.price(model), maxTokens, promptBytes);
  }

  workerShare(cost: bigint): bigint {
    return workerShare(cost, this.proxyFeeBps);
  }
}
