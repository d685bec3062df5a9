// The parties of a settlement benchmark on a fresh TVM emulator: root owner, proxy operator, client and worker
// wallets (sandbox treasuries), the client's and the proxy's signing keys, and the root's parameters.
import { createHash } from "node:crypto";
import { Blockchain } from "@ton/sandbox";
import { ed25519Signer } from "../../src/chain/vouchers.js";
import type { RootParams } from "../../src/chain/contracts/RootContract.js";

export const TON = 1_000_000_000n;
/** Deterministic 32-byte values from labels (keys, digests) so runs are comparable. */
export const seed = (s: string) => createHash("sha256").update(s).digest();
/** A fixed emulator clock: fees do not depend on when the bench runs. */
export const BENCH_NOW = 1_800_000_000;

export const BENCH_ROOT_PARAMS: RootParams = { proxyFeeBps: 500, clientCloseDelay: 3600, proxyUnstakeDelay: 86400, minProxyStake: 10n * TON, minClientDeposit: TON };

export async function sandboxParties(label: string) {
  const bc = await Blockchain.create();
  bc.now = BENCH_NOW;
  return {
    bc,
    owner: await bc.treasury("owner"),
    operator: await bc.treasury("operator"),
    client: await bc.treasury("client"),
    worker: await bc.treasury("worker"),
    clientKey: ed25519Signer(seed(`${label} client`)),
    proxyKey: ed25519Signer(seed(`${label} proxy`)),
  };
}
