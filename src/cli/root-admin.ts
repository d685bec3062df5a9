// `cocoon root ...`: the root contract owner's admin commands (until now only the devnet bootstrap could do this).
//   allow-image | remove-image   --root ADDR --digest HEX [--kind worker|proxy|both]    image allow-lists
//   set-model                    --root ADDR --digest HEX --prompt-price N --completion-price N   (nanoTON/token)
//   remove-model                 --root ADDR --digest HEX
//   show                         --root ADDR                                           allow-lists and prices
// Each change is one message from the owner's wallet (key file, as `cocoon wallet`); the command waits for it to
// apply and reads the root back, so it reports what the chain now says (a wallet that is not the owner is refused
// by the contract, and the read-back says the change did not happen).
import type { Command } from "commander";
import { Address, fromNano, type Cell } from "@ton/core";
import { ImageKind, ROOT_OP_VALUE, RootContract, removeModelBody, setImageBody, setModelBody, type ImageKindCode } from "../chain/contracts/RootContract.js";
import { confirmFundsMovement, makeTonClient, parseNetwork } from "../chain/network.js";
import { addCommon, openWallet, type CommonOpts, type WalletCliDeps } from "./wallet.js";

const HEX32 = /^[0-9a-fA-F]{64}$/;
const KINDS: Record<string, ImageKindCode[]> = { worker: [ImageKind.WORKER], proxy: [ImageKind.PROXY], both: [ImageKind.WORKER, ImageKind.PROXY] };
const KIND_NAME: Record<ImageKindCode, string> = { [ImageKind.WORKER]: "worker", [ImageKind.PROXY]: "proxy" };

export type RootAdminAction =
  | { op: "allow-image" | "remove-image"; kinds: ImageKindCode[]; digest: Buffer }
  | { op: "set-model"; digest: Buffer; promptPrice: bigint; completionPrice: bigint }
  | { op: "remove-model"; digest: Buffer };

export function parseDigest32(s: string, what = "--digest"): Buffer {
  if (typeof s !== "string" || !HEX32.test(s.trim())) {
    throw new Error(`${what} must be 64 hex characters (a SHA-256: an image digest from \`cocoon attest measure\`, a model digest from \`cocoon attest model-digest\`), got "${s}"`);
  }
  return Buffer.from(s.trim(), "hex");
}

export function parseImageKinds(s: string | undefined): ImageKindCode[] {
  const k = KINDS[(s ?? "worker").toLowerCase()];
  if (!k) throw new Error(`--kind must be worker, proxy or both, got "${s}"`);
  return k;
}

function parseNano(s: string, what: string): bigint {
  if (!/^\d{1,20}$/.test(String(s).trim())) throw new Error(`${what} must be a whole number of nanoTON per token, got "${s}"`);
  return BigInt(String(s).trim());
}

/** The messages (to the root) that carry out `a`, with a sentence saying what each does. */
export function rootAdminMessages(a: RootAdminAction): { body: Cell; what: string }[] {
  const hex = a.digest.toString("hex");
  switch (a.op) {
    case "allow-image":
    case "remove-image":
      return a.kinds.map((k) => ({ body: setImageBody(k, a.digest, a.op === "allow-image"), what: `${a.op === "allow-image" ? "allow" : "remove"} ${KIND_NAME[k]} image ${hex}` }));
    case "set-model":
      return [{ body: setModelBody(a.digest, { promptPrice: a.promptPrice, completionPrice: a.completionPrice }), what: `price model ${hex} at ${a.promptPrice} / ${a.completionPrice} nanoTON per prompt / completion token` }];
    case "remove-model":
      return [{ body: removeModelBody(a.digest), what: `remove model ${hex}` }];
  }
}

/** What the root says now about the subject of `a` (the read-back after a change). */
export async function rootAdminState(root: { getImageAllowed(kind: ImageKindCode, hash: Buffer): Promise<boolean>; getModelPrice(d: Buffer): Promise<{ promptPrice: bigint; completionPrice: bigint } | null> }, a: RootAdminAction): Promise<{ done: boolean; lines: string[] }> {
  if (a.op === "allow-image" || a.op === "remove-image") {
    const lines: string[] = [];
    let done = true;
    for (const k of a.kinds) {
      const allowed = await root.getImageAllowed(k, a.digest);
      lines.push(`${KIND_NAME[k]} image ${a.digest.toString("hex")}: ${allowed ? "allowed" : "not allowed"}`);
      if (allowed !== (a.op === "allow-image")) done = false;
    }
    return { done, lines };
  }
  const price = await root.getModelPrice(a.digest);
  const line = `model ${a.digest.toString("hex")}: ${price ? `${price.promptPrice} / ${price.completionPrice} nanoTON per prompt / completion token` : "not listed"}`;
  const done = a.op === "remove-model" ? price === null : a.op === "set-model" && price !== null && price.promptPrice === a.promptPrice && price.completionPrice === a.completionPrice;
  return { done, lines: [line] };
}

function parseRoot(s: string): Address {
  try {
    return Address.parse(s);
  } catch {
    throw new Error(`--root "${s}" is not a TON address (the root contract's address, as \`cocoon devnet\` or your deployment printed it)`);
  }
}

export function registerRootCommand(program: Command, deps: WalletCliDeps = {}): void {
  const print = deps.print ?? ((s: string) => console.log(s));
  const root = program.command("root").description("root contract owner: image allow-lists and model prices (signed with the owner's key file)");
  const change = (name: string, description: string, build: (o: Record<string, string>) => RootAdminAction) => {
    const c = addCommon(root.command(name).description(description))
      .requiredOption("--root <address>", "the root contract")
      .requiredOption("--digest <hex>", "SHA-256 (64 hex characters)")
      .option("--yes", "confirm without asking (required on mainnet when there is no terminal)");
    if (name.endsWith("-image")) c.option("--kind <kind>", "worker, proxy or both", "worker");
    if (name === "set-model") c.requiredOption("--prompt-price <nanoton>", "nanoTON per prompt token").requiredOption("--completion-price <nanoton>", "nanoTON per completion token");
    c.action(async (o: CommonOpts & Record<string, string> & { yes?: boolean }) => {
      const action = build(o);
      const rootAddr = parseRoot(o.root);
      const network = parseNetwork(o.network);
      const msgs = rootAdminMessages(action);
      await confirmFundsMovement(network, `${msgs.map((m) => m.what).join(", ")} on root ${o.root} (${fromNano(ROOT_OP_VALUE * BigInt(msgs.length))} TON for gas)`, { yes: o.yes, io: deps.io });
      const { wallet } = await openWallet(o, deps);
      for (const m of msgs) {
        await wallet.sendAndWait({ to: rootAddr, amount: ROOT_OP_VALUE, body: m.body, bounce: true });
        print(`sent: ${m.what}`);
      }
      const reader = makeTonClient(network, o.endpoint, deps.env ?? process.env).open(new RootContract(rootAddr));
      const state = await rootAdminState(reader, action);
      for (const l of state.lines) print(l);
      if (!state.done) throw new Error(`the root did not apply the change: is ${wallet.friendlyAddress} the root's owner? (cocoon root show --root ${o.root})`);
    });
  };
  change("allow-image", "allow an image digest (from `cocoon attest measure`) for workers and/or proxies", (o) => ({ op: "allow-image", kinds: parseImageKinds(o.kind), digest: parseDigest32(o.digest) }));
  change("remove-image", "remove an image digest from the allow-list", (o) => ({ op: "remove-image", kinds: parseImageKinds(o.kind), digest: parseDigest32(o.digest) }));
  change("set-model", "allow a model's weights digest and set its price", (o) => ({ op: "set-model", digest: parseDigest32(o.digest), promptPrice: parseNano(o.promptPrice, "--prompt-price"), completionPrice: parseNano(o.completionPrice, "--completion-price") }));
  change("remove-model", "remove a model's weights digest (workers serving it are refused)", (o) => ({ op: "remove-model", digest: parseDigest32(o.digest) }));

  root
    .command("show")
    .description("print the root's owner, image allow-lists and model prices")
    .requiredOption("--root <address>", "the root contract")
    .option("--network <name>", "devnet | testnet | mainnet", "devnet")
    .option("--endpoint <url>", "TON Center v2 JSON-RPC endpoint")
    .action(async (o: { root: string; network?: string; endpoint?: string }) => {
      const network = parseNetwork(o.network);
      const r = makeTonClient(network, o.endpoint, deps.env ?? process.env).open(new RootContract(parseRoot(o.root)));
      const [info, snap] = [await r.getInfo(), await r.getSnapshot()];
      print(`root ${o.root} (version ${info.version}), owner ${info.owner.toString()}`);
      print(`worker images (${snap.workerImages.size}):`);
      for (const h of snap.workerImages.keys()) print(`  ${h}`);
      print(`proxy images (${snap.proxyImages.size}):`);
      for (const h of snap.proxyImages.keys()) print(`  ${h}`);
      print(`models (${snap.models.size}):`);
      for (const [d, p] of snap.models) print(`  ${d}  ${p.promptPrice} / ${p.completionPrice} nanoTON per prompt / completion token`);
    });
}
