/**
 * `cocoon wallet new|show|balance|send`: a WalletV5R1 wallet whose mnemonic lives in an encrypted key file.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { fromNano, toNano } from "@ton/core";
import { createMnemonic, keyPairFromMnemonic, readKeyFile, readKeyFileJson, resolvePassword, writeKeyFile } from "../chain/keyfile.js";
import { confirmFundsMovement, makeTonClient, NetworkName, NETWORKS, parseNetwork, resolveEndpoint } from "../chain/network.js";
import { requestFaucet, WalletService } from "../chain/wallet.js";
import type { PromptIO } from "../chain/prompt.js";
import { parseAddressForm } from "../payments/ton.js";

export const DEFAULT_KEY_FILE = join(homedir(), ".cocoon", "wallet.json");
/** Default devnet funding for `wallet new --fund`: 100 TON. */
const DEFAULT_FUND_TON = "100";
/** How long `wallet send` waits for the transfer to apply: 90 s. */
const SEND_WAIT_MS = 90_000;

export interface WalletCliDeps {
  print?: (s: string) => void;
  /** Where secrets (the new mnemonic) are shown; stderr by default so that stdout stays scriptable. */
  printSecret?: (s: string) => void;
  env?: NodeJS.ProcessEnv;
  io?: PromptIO;
}

export interface CommonOpts {
  network?: string;
  endpoint?: string;
  keyFile: string;
  passwordFile?: string;
  yes?: boolean;
}

/** Parses a TON amount like "1.5" into nanoTON with a clear error. */
export function parseTon(s: string, what = "--amount"): bigint {
  if (typeof s !== "string" || !/^\d{1,12}(\.\d{1,9})?$/.test(s.trim())) {
    throw new Error(`${what} must be an amount of TON like 1.5 (at most 9 decimals), got "${s}"`);
  }
  return toNano(s.trim());
}

/** The wallet options every command that signs with the key file takes (network, endpoint, key file, password). */
export function addCommon(c: Command): Command {
  return c
    .option("--network <name>", "devnet | testnet | mainnet", "devnet")
    .option("--endpoint <url>", "TON Center v2 JSON-RPC endpoint (default: the network's; env COCOON_TON_ENDPOINT)")
    .option("--key-file <path>", "encrypted key file", DEFAULT_KEY_FILE)
    .option("--password-file <path>", "file holding the key file password (else env COCOON_WALLET_PASSWORD, else a prompt)");
}

export async function openWallet(o: CommonOpts, deps: WalletCliDeps): Promise<{ wallet: WalletService; network: NetworkName; endpoint: string }> {
  const network = parseNetwork(o.network);
  const env = deps.env ?? process.env;
  const endpoint = resolveEndpoint(network, o.endpoint, env);
  const password = await resolvePassword({ passwordFile: o.passwordFile, env, io: deps.io });
  const { keyPair } = await readKeyFile(o.keyFile, password);
  return { wallet: new WalletService(makeTonClient(network, endpoint, env), keyPair, network), network, endpoint };
}

export function registerWalletCommand(program: Command, deps: WalletCliDeps = {}): void {
  const print = deps.print ?? ((s: string) => console.log(s));
  const printSecret = deps.printSecret ?? ((s: string) => console.error(s));
  const wallet = program.command("wallet").description("keys, balances and transfers (WalletV5R1, encrypted key file)");

  addCommon(wallet.command("new").description("create a new key (24-word mnemonic) in an encrypted key file"))
    .option("--fund [ton]", `devnet only: fund the new wallet from the local faucet (default ${DEFAULT_FUND_TON} TON)`)
    .option("--no-show-mnemonic", "do not print the mnemonic (back up the key file instead)")
    .action(async (o: CommonOpts & { fund?: string | boolean; showMnemonic: boolean }) => {
      const network = parseNetwork(o.network);
      const env = deps.env ?? process.env;
      if (o.fund !== undefined && network !== "devnet") throw new Error("--fund works only on --network devnet (testnet: use a testnet faucet; mainnet: buy TON)");
      const fundNano = o.fund === undefined ? undefined : parseTon(o.fund === true ? DEFAULT_FUND_TON : String(o.fund), "--fund");
      const password = await resolvePassword({ passwordFile: o.passwordFile, env, confirm: true, io: deps.io });
      const words = await createMnemonic();
      await writeKeyFile(o.keyFile, words, password);
      const w = new WalletService(makeTonClient(network, o.endpoint, env), await keyPairFromMnemonic(words), network);
      print(`key file: ${o.keyFile}`);
      print(`address (${network}): ${w.friendlyAddress}`);
      if (o.showMnemonic) {
        printSecret("Mnemonic (write these 24 words down and keep them secret; they ARE the wallet):");
        printSecret(words.join(" "));
      }
      if (fundNano !== undefined) {
        const endpoint = resolveEndpoint(network, o.endpoint, env);
        await requestFaucet(endpoint, w.address, fundNano);
        print(`funded with ${fromNano(fundNano)} TON from the devnet faucet`);
      }
    });

  addCommon(wallet.command("show").description("print the wallet address and public key (no password needed)"))
    .action(async (o: CommonOpts) => {
      const network = parseNetwork(o.network);
      const pub = Buffer.from(readKeyFileJson(o.keyFile).publicKey, "hex");
      const w = new WalletService(makeTonClient(network, o.endpoint, deps.env ?? process.env), { publicKey: pub, secretKey: Buffer.alloc(0) }, network);
      print(`address (${network}): ${w.friendlyAddress}`);
      print(`raw address: ${w.address.toRawString()}`);
      print(`public key: ${pub.toString("hex")}`);
    });

  addCommon(wallet.command("balance").description("print the wallet balance and seqno"))
    .action(async (o: CommonOpts) => {
      const network = parseNetwork(o.network);
      const env = deps.env ?? process.env;
      const pub = Buffer.from(readKeyFileJson(o.keyFile).publicKey, "hex");
      const w = new WalletService(makeTonClient(network, o.endpoint, env), { publicKey: pub, secretKey: Buffer.alloc(0) }, network);
      const [balance, deployed] = [await w.balance(), await w.isDeployed()];
      print(`address (${network}): ${w.friendlyAddress}`);
      print(`balance: ${fromNano(balance)} TON`);
      print(`state: ${deployed ? `active, seqno ${await w.seqno()}` : "not deployed yet (the first send deploys it)"}`);
    });

  addCommon(wallet.command("send").description("send TON to an address and wait until it is applied"))
    .requiredOption("--to <address>", "destination address")
    .requiredOption("--amount <ton>", "amount in TON, e.g. 1.5")
    .option("--comment <text>", "text comment to attach")
    .option("--yes", "confirm without asking (required on mainnet when there is no terminal)")
    .option("--no-wait", "do not wait for the transfer to be applied")
    .action(async (o: CommonOpts & { to: string; amount: string; comment?: string; wait: boolean }) => {
      const amount = parseTon(o.amount);
      const to = parseAddressForm(o.to, "--to");
      const network = parseNetwork(o.network);
      await confirmFundsMovement(network, `send ${fromNano(amount)} TON to ${o.to}`, { yes: o.yes, io: deps.io });
      const { wallet: w } = await openWallet(o, deps);
      const req = { to: to.address, amount, body: o.comment, bounce: to.bounceable };
      if (!o.wait) {
        const r = await w.send(req);
        print(`sent with seqno ${r.seqno} (not waiting for it to apply)`);
        return;
      }
      const r = await w.sendAndWait(req, SEND_WAIT_MS);
      print(`sent ${fromNano(amount)} TON to ${to.address.toString({ bounceable: to.bounceable, testOnly: NETWORKS[network].testOnly })}; wallet seqno ${r.seqno} -> ${r.newSeqno}`);
      print(`balance now: ${fromNano(await w.balance())} TON`);
    });
}
