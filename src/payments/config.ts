/**
 * A role's payment settings, as one JSON file (`--payments FILE`; `cocoon devnet` writes one per role):
 *
 *   {
 *     "network": "devnet" | "testnet" | "mainnet",
 *     "endpoint": "http://127.0.0.1:8081/jsonRPC",          // TON Center v2 JSON-RPC (optional: network default)
 *     "root": "<root contract address>",
 *     "proxyContract": "<the proxy's contract (vault) address>",
 *     "wallet": { "seed": "<64 hex>" } | { "keyFile": "wallet.json", "passwordFile": "pw.txt" },
 *     "ledger": "payments.sqlite",                           // relative paths are relative to this file
 *     "channel": "<client channel address>",                 // client only: the channel payments use now
 *     "channels": ["<address>", ...],                        // client only: every channel it opened, oldest
 *                                                            //   first (closing ones still hold money)
 *     "models": { "<model name>": "<weights sha256 hex>" },  // names to price (proxy, worker, client)
 *     "batch": { ... },                                      // thresholds and timers, see BatchSettings
 *     "maxUnsignedNano": "2000000000"                        // proxy only: the most it serves any channel on
 *                                                            //   credit (unsigned answers + requests in flight)
 *   }
 *
 * `wallet.seed` is for development networks only (the seed sits in the file in clear); real networks use an
 * encrypted key file from `cocoon wallet new`.
 */
import { readFileSync } from "node:fs";
import { writeFileAtomic } from "../chain/keyfile.js";
import { dirname, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import type { KeyPair } from "@ton/crypto";
import { NETWORK_NAMES, makeTonClient, type NetworkName } from "../chain/network.js";
import { readKeyFile, resolvePassword } from "../chain/keyfile.js";
import { keyPairFromSeedHex, parseAddress, TonAccess } from "./ton.js";
import { WalletService } from "../chain/wallet.js";
import type { Address } from "@ton/core";

const nano = z.string().regex(/^(0|[1-9][0-9]{0,38})$/, "a decimal amount of nanoTON");

export const batchSettingsSchema = z.object({
  /** Proxy: redeem a channel once its unredeemed signed amount reaches this (nanoTON). */
  redeemThreshold: nano.optional(),
  /** Proxy: redeem everything unredeemed at least this often (ms). */
  redeemIntervalMs: z.number().int().min(100).optional(),
  /** Proxy: sign a new payout voucher once a worker's unpaid earnings reach this (nanoTON). */
  payoutThreshold: nano.optional(),
  payoutIntervalMs: z.number().int().min(100).optional(),
  /** Worker: claim on chain once the voucher exceeds what was paid by this much (nanoTON). */
  claimThreshold: nano.optional(),
  claimIntervalMs: z.number().int().min(100).optional(),
});
export type BatchSettingsJson = z.infer<typeof batchSettingsSchema>;

export const paymentsConfigSchema = z.object({
  network: z.enum(NETWORK_NAMES as [NetworkName, ...NetworkName[]]),
  endpoint: z.string().max(512).optional(),
  root: z.string().min(1).max(128),
  proxyContract: z.string().min(1).max(128),
  wallet: z.union([
    z.object({ seed: z.string().regex(/^[0-9a-fA-F]{64}$/, "64 hex characters") }),
    z.object({ keyFile: z.string().min(1), passwordFile: z.string().optional() }),
  ]),
  ledger: z.string().min(1),
  channel: z.string().max(128).optional(),
  channels: z.array(z.string().max(128)).max(10_000).optional(),
  models: z.record(z.string(), z.string().regex(/^[0-9a-fA-F]{64}$/, "a sha256 hex digest")).optional(),
  batch: batchSettingsSchema.optional(),
  maxUnsignedNano: z.string().regex(/^[1-9][0-9]{0,38}$/, "a positive decimal amount of nanoTON").optional(),
});
export type PaymentsConfigJson = z.infer<typeof paymentsConfigSchema>;

/** The config with paths made absolute and addresses parsed. */
export interface PaymentsConfig {
  file?: string;
  network: NetworkName;
  endpoint?: string;
  root: Address;
  proxyContract: Address;
  wallet: PaymentsConfigJson["wallet"];
  ledger: string;
  /** The channel payments use now (the client role pays from it). */
  channel?: Address;
  /**
   * Every channel this client opened, oldest first, the current one included: a channel that is closing or
   * waiting for its withdrawal still holds money. A file written before this list existed gives [channel].
   */
  channels: Address[];
  models: Record<string, string>;
  batch: BatchSettingsJson;
  /** Proxy: bound on unsigned exposure per channel (default DEFAULT_MAX_UNSIGNED_NANO in proxy-meter.ts). */
  maxUnsignedNano?: bigint;
}

export function parsePaymentsConfig(json: unknown, baseDir = process.cwd(), file?: string): PaymentsConfig {
  const r = paymentsConfigSchema.safeParse(json);
  const where = file ? ` in ${file}` : "";
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`payments config${where}: ${i.path.join(".") || "(root)"}: ${i.message}`);
  }
  const c = r.data;
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  if (c.network === "mainnet" && "seed" in c.wallet) {
    throw new Error(`payments config${where}: a clear-text wallet seed is for development networks; on mainnet use {"keyFile": ..., "passwordFile": ...}`);
  }
  return {
    file,
    network: c.network,
    endpoint: c.endpoint,
    root: parseAddress(c.root, "root"),
    proxyContract: parseAddress(c.proxyContract, "proxyContract"),
    wallet: "keyFile" in c.wallet ? { keyFile: abs(c.wallet.keyFile), ...(c.wallet.passwordFile ? { passwordFile: abs(c.wallet.passwordFile) } : {}) } : c.wallet,
    ledger: c.ledger === ":memory:" ? c.ledger : abs(c.ledger),
    ...(c.channel ? { channel: parseAddress(c.channel, "channel") } : {}),
    channels: knownChannels(c.channels ?? [], c.channel),
    models: Object.fromEntries(Object.entries(c.models ?? {}).map(([k, v]) => [k, v.toLowerCase()])),
    batch: c.batch ?? {},
    ...(c.maxUnsignedNano ? { maxUnsignedNano: BigInt(c.maxUnsignedNano) } : {}),
  };
}

/** The listed channels plus the current one (if the list misses it), without duplicates, oldest first. */
function knownChannels(listed: string[], current: string | undefined): Address[] {
  const out: Address[] = [];
  const add = (a: Address) => {
    if (!out.some((x) => x.equals(a))) out.push(a);
  };
  listed.forEach((s, i) => add(parseAddress(s, `channels[${i}]`)));
  if (current) add(parseAddress(current, "channel"));
  return out;
}

export function loadPaymentsConfig(path: string): PaymentsConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`cannot read the payments config ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`payments config ${path} is not valid JSON: ${(e as Error).message}`);
  }
  return parsePaymentsConfig(json, dirname(resolve(path)), path);
}

/**
 * Records a channel in the payments file (atomically, read afresh so that another writer's channels are kept): it
 * joins `channels` (oldest first), and with `current` it also becomes `channel`, the one payments use now. The file
 * is the client's durable list of channels: `cocoon client channels|withdraw` and a restarted client read it.
 */
export function recordChannelInFile(file: string, channel: Address, o: { current?: boolean } = {}): void {
  const json = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  const cfg = parsePaymentsConfig(json, dirname(resolve(file)), file);
  const all = [...cfg.channels.filter((a) => !a.equals(channel)), channel];
  // Without `current`, the new one goes last but the current channel keeps its place and its role.
  if (o.current) json.channel = channel.toString();
  json.channels = (o.current || !cfg.channels.some((a) => a.equals(channel)) ? all : cfg.channels).map((a) => a.toString());
  writeFileAtomic(file, JSON.stringify(json, null, 2) + "\n");
}

export async function loadKeyPair(c: PaymentsConfig): Promise<KeyPair> {
  if ("seed" in c.wallet) return keyPairFromSeedHex(c.wallet.seed);
  const pw = await resolvePassword({ passwordFile: c.wallet.passwordFile });
  return (await readKeyFile(c.wallet.keyFile, pw)).keyPair;
}

/** TonClient access, the role's wallet, from a config. */
export async function connectChain(c: PaymentsConfig): Promise<{ ton: TonAccess; wallet: WalletService }> {
  const client = makeTonClient(c.network, c.endpoint);
  return { ton: new TonAccess(client, c.network), wallet: new WalletService(client, await loadKeyPair(c), c.network) };
}

/** nanoTON from an optional decimal string. */
export function nanoOr(v: string | undefined, fallback: bigint): bigint {
  return v === undefined ? fallback : BigInt(v);
}
