/**
 * Which TON network a command talks to (`--network devnet|testnet|mainnet`) and the rules that come with it:
 * endpoint, API key, wallet id, whether `sim` attestation is allowed, and confirmation before moving real funds.
 */
import { TonClient } from "@ton/ton";
import { isInteractive, promptLine, PromptIO } from "./prompt.js";
import { DEFAULT_CHAIN_HOST, DEFAULT_CHAIN_PORT } from "./defaults.js";
import { tonHttpAdapter } from "./tonHttp.js";

export type NetworkName = "devnet" | "testnet" | "mainnet";
export const NETWORK_NAMES: readonly NetworkName[] = ["devnet", "testnet", "mainnet"];

export const ENDPOINT_ENV = "COCOON_TON_ENDPOINT";
export const API_KEY_ENV = "COCOON_TON_API_KEY";

/**
 * TON global ids (config param 19). WalletV5R1 folds the network's id into its wallet id, and every Cocoon contract
 * and voucher names it (vouchers signed for one network are refused on another). The local devnet chain runs a
 * mainnet config in the emulator, but it is not mainnet: it has its own id, so nothing signed for it is valid
 * on mainnet (or testnet) and the other way round.
 */
export const MAINNET_GLOBAL_ID = -239;
export const TESTNET_GLOBAL_ID = -3;
export const DEVNET_GLOBAL_ID = -42;

export interface NetworkConfig {
  name: NetworkName;
  /** Default TON Center v2 JSON-RPC endpoint. */
  endpoint: string;
  /** TON global id: wallet ids, contract configs and vouchers. */
  networkGlobalId: number;
  /** Addresses are printed in the testnet-only form (kQ/0Q...). */
  testOnly: boolean;
  /** Real value moves on this network. */
  realFunds: boolean;
}

export const NETWORKS: Readonly<Record<NetworkName, NetworkConfig>> = {
  devnet: {
    name: "devnet", endpoint: `http://${DEFAULT_CHAIN_HOST}:${DEFAULT_CHAIN_PORT}/jsonRPC`,
    networkGlobalId: DEVNET_GLOBAL_ID, testOnly: false, realFunds: false,
  },
  testnet: {
    name: "testnet", endpoint: "https://testnet.toncenter.com/api/v2/jsonRPC",
    networkGlobalId: TESTNET_GLOBAL_ID, testOnly: true, realFunds: false,
  },
  mainnet: {
    name: "mainnet", endpoint: "https://toncenter.com/api/v2/jsonRPC",
    networkGlobalId: MAINNET_GLOBAL_ID, testOnly: false, realFunds: true,
  },
};

export function parseNetwork(s: string | undefined): NetworkName {
  const v = (s ?? "devnet").trim().toLowerCase();
  if ((NETWORK_NAMES as readonly string[]).includes(v)) return v as NetworkName;
  throw new Error(`unknown network "${s}"; use one of: ${NETWORK_NAMES.join(", ")}`);
}

/** Endpoint precedence: explicit `--endpoint`, then $COCOON_TON_ENDPOINT, then the network default. */
export function resolveEndpoint(network: NetworkName, endpoint?: string, env: NodeJS.ProcessEnv = process.env): string {
  const e = endpoint ?? env[ENDPOINT_ENV] ?? NETWORKS[network].endpoint;
  let u: URL;
  try {
    u = new URL(e);
  } catch {
    throw new Error(`TON endpoint "${e}" is not a URL; expected something like ${NETWORKS[network].endpoint}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`TON endpoint "${e}" must be http(s)`);
  return e;
}

/** What to do when `network`'s endpoint does not answer. */
function unreachableHint(network: NetworkName): string {
  return network === "devnet"
    ? `Start the local chain with "cocoon chain" (or point --endpoint / ${ENDPOINT_ENV} at a running one).`
    : `Check the network connection, or pass --endpoint / set ${ENDPOINT_ENV} to a TON Center v2 endpoint that answers.`;
}

/**
 * A TonClient for `network` (API key from $COCOON_TON_API_KEY). Its transport reports the server's error message on a
 * refused call and says what to start when nothing answers (see tonHttp.ts).
 */
export function makeTonClient(network: NetworkName, endpoint?: string, env: NodeJS.ProcessEnv = process.env): TonClient {
  const apiKey = env[API_KEY_ENV] || undefined;
  return new TonClient({
    endpoint: resolveEndpoint(network, endpoint, env), apiKey, httpAdapter: tonHttpAdapter(unreachableHint(network)),
  });
}

/** The TON global id of `network`, bound into every contract config and voucher. */
export function globalIdFor(network: NetworkName): number {
  return NETWORKS[network].networkGlobalId;
}

/** The WalletV5R1 wallet id parameters for `network`. */
export function walletIdFor(network: NetworkName): { networkGlobalId: number } {
  return { networkGlobalId: NETWORKS[network].networkGlobalId };
}

/** Mainnet refuses the development `sim` attestation platform. */
export function assertNetworkAllowsSim(network: NetworkName, platform: string): void {
  if (network === "mainnet" && platform.trim().toLowerCase() === "sim") {
    throw new Error("mainnet refuses the \"sim\" attestation platform: it proves nothing about the hardware. " +
      "Run on a TEE (tdx or sev-snp with an NVIDIA CC GPU), or use --network devnet / testnet for development.");
  }
}

/**
 * Asks before moving funds on mainnet. Devnet and testnet pass silently; `yes` skips the question; without a
 * terminal and without `yes`, mainnet refuses.
 */
export async function confirmFundsMovement(network: NetworkName, description: string,
  opts: { yes?: boolean; io?: PromptIO } = {}): Promise<void> {
  if (!NETWORKS[network].realFunds || opts.yes) return;
  if (!isInteractive(opts.io)) {
    throw new Error(`refusing to ${description} on mainnet without confirmation: pass --yes to confirm (no terminal to ask on)`);
  }
  const answer = await promptLine(`About to ${description} on MAINNET (real TON). Type "yes" to continue: `, opts.io);
  if (answer.trim().toLowerCase() !== "yes") throw new Error("cancelled: nothing was sent");
}
