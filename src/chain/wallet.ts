/**
 * A WalletV5R1 wallet on any network, through TonClient: address, balance, seqno, sends (TON with an optional body
 * and state init, e.g. to deploy a contract) and waiting until the wallet's seqno moves (the send was applied).
 */
import { Address, Cell, comment, internal, OpenedContract, SendMode, StateInit, TonClient, WalletContractV5R1 } from "@ton/ton";
import type { KeyPair } from "@ton/crypto";
import { NETWORKS, NetworkName, walletIdFor } from "./network.js";

/** Default time to wait for a send to be applied: 60 s (mainnet blocks take ~5 s, the devnet is immediate). */
export const DEFAULT_SEQNO_TIMEOUT_MS = 60_000;
const DEFAULT_POLL_MS = 1_000;

export interface SendRequest {
  to: Address;
  /** nanoTON */
  amount: bigint;
  /** A text comment or a body cell. */
  body?: Cell | string;
  init?: StateInit;
  /** Default: bounce when the destination is deployed-style (true), except with an init (false). */
  bounce?: boolean;
  sendMode?: SendMode;
}

export interface SendResult {
  /** The seqno the transfer was signed with; the wallet's seqno becomes seqno + 1 once applied. */
  seqno: number;
}

/** Wallet v5 carries at most 255 out-messages per transfer. */
export const MAX_MESSAGES_PER_TRANSFER = 255;
/** Batched settlement transfers poll faster: a node waits on them before it records the settlement. */
const BATCH_POLL_MS = 200;

/** One message of a batched transfer. */
export interface BatchMessage {
  to: Address;
  value: bigint;
  body?: Cell;
  init?: StateInit;
  bounce?: boolean;
}

export class WalletService {
  readonly contract: WalletContractV5R1;
  private readonly opened: OpenedContract<WalletContractV5R1>;
  private lock: Promise<unknown> = Promise.resolve();
  /** Wallet transactions this process made through sendBatch (tests use it to prove batching). */
  transfers = 0;

  constructor(readonly client: TonClient, private readonly keyPair: KeyPair, readonly network: NetworkName) {
    this.contract = WalletContractV5R1.create({ workchain: 0, publicKey: keyPair.publicKey, walletId: walletIdFor(network) });
    this.opened = client.open(this.contract);
  }

  get address(): Address {
    return this.contract.address;
  }

  /** The address as users share it for this network: non-bounceable (UQ.../0Q...), testnet form on testnet. */
  get friendlyAddress(): string {
    return this.address.toString({ urlSafe: true, bounceable: false, testOnly: NETWORKS[this.network].testOnly });
  }

  get publicKey(): Buffer {
    return this.keyPair.publicKey;
  }

  async balance(): Promise<bigint> {
    return this.client.getBalance(this.address);
  }

  async isDeployed(): Promise<boolean> {
    return this.client.isContractDeployed(this.address);
  }

  /** The wallet's current seqno (0 before deployment). */
  async seqno(): Promise<number> {
    if (!(await this.isDeployed())) return 0;
    return this.opened.getSeqno();
  }

  /** Signs and sends one transfer. The first send also deploys the wallet (state init attached automatically). */
  async send(req: SendRequest): Promise<SendResult> {
    if (req.amount < 0n) throw new Error("amount must not be negative");
    const balance = await this.balance();
    if (balance <= req.amount) {
      throw new Error(`wallet ${this.friendlyAddress} holds ${balance} nanoTON, not enough to send ${req.amount} nanoTON plus fees`);
    }
    const seqno = await this.seqno();
    const body = typeof req.body === "string" ? comment(req.body) : req.body;
    await this.opened.sendTransfer({
      seqno,
      secretKey: this.keyPair.secretKey,
      sendMode: req.sendMode ?? SendMode.PAY_GAS_SEPARATELY + SendMode.IGNORE_ERRORS,
      messages: [internal({ to: req.to, value: req.amount, body, init: req.init, bounce: req.bounce ?? !req.init })],
    });
    return { seqno };
  }

  /** Polls until the seqno differs from `previous`; throws after `timeoutMs` with a clear message. */
  async waitForSeqnoChange(previous: number, timeoutMs = DEFAULT_SEQNO_TIMEOUT_MS, pollMs = DEFAULT_POLL_MS): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const s = await this.seqno();
        if (s !== previous) return s;
      } catch {
        // transient endpoint errors: keep polling until the deadline
      }
      if (Date.now() >= deadline) {
        throw new Error(`the wallet seqno stayed ${previous} for ${Math.round(timeoutMs / 1000)} s: the transfer was not applied ` +
          `(expired, rejected, or the network is slow); check the balance and try again`);
      }
      await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(1, deadline - Date.now()))));
    }
  }

  /** The first 32 bytes of the secret key: the Ed25519 seed (for node:crypto signers). */
  get seed(): Buffer {
    return Buffer.from(this.keyPair.secretKey.subarray(0, 32));
  }

  /**
   * Sends up to 255 messages in ONE wallet transaction and waits until it is applied. Calls are serialized, so
   * concurrent callers never reuse a seqno. This is how settlement batches many vouchers into one transaction.
   */
  sendBatch(messages: BatchMessage[], timeoutMs = DEFAULT_SEQNO_TIMEOUT_MS): Promise<{ seqno: number }> {
    const run = this.lock.then(() => this.sendBatchNow(messages, timeoutMs));
    this.lock = run.catch(() => undefined);
    return run;
  }

  private async sendBatchNow(messages: BatchMessage[], timeoutMs: number): Promise<{ seqno: number }> {
    if (messages.length === 0) throw new Error("nothing to send");
    if (messages.length > MAX_MESSAGES_PER_TRANSFER) throw new Error(`a wallet transfer carries at most ${MAX_MESSAGES_PER_TRANSFER} messages, got ${messages.length}`);
    const need = messages.reduce((s, m) => s + m.value, 0n);
    const balance = await this.balance();
    if (balance <= need) {
      throw new Error(`wallet ${this.friendlyAddress} holds ${balance} nanoTON, not enough to send ${need} nanoTON plus fees; top it up`);
    }
    const seqno = await this.seqno();
    await this.opened.sendTransfer({
      seqno,
      secretKey: this.keyPair.secretKey,
      sendMode: SendMode.PAY_GAS_SEPARATELY + SendMode.IGNORE_ERRORS,
      messages: messages.map((m) => internal({ to: m.to, value: m.value, body: m.body, init: m.init, bounce: m.bounce ?? !m.init })),
    });
    this.transfers++;
    await this.waitForSeqnoChange(seqno, timeoutMs, BATCH_POLL_MS);
    return { seqno };
  }

  /** send() then waitForSeqnoChange(). */
  async sendAndWait(req: SendRequest, timeoutMs = DEFAULT_SEQNO_TIMEOUT_MS): Promise<SendResult & { newSeqno: number }> {
    const r = await this.send(req);
    const newSeqno = await this.waitForSeqnoChange(r.seqno, timeoutMs, Math.min(DEFAULT_POLL_MS, timeoutMs / 10));
    return { ...r, newSeqno };
  }
}

/** Asks the devnet faucet (`POST <base>/faucet`) for `amount` nanoTON to `address`. */
export async function requestFaucet(endpoint: string, address: Address, amount: bigint): Promise<void> {
  const base = endpoint.replace(/\/jsonRPC\/?$/, "");
  let r: Response;
  try {
    r = await fetch(`${base}/faucet`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ address: address.toString(), amount: amount.toString() }),
    });
  } catch (e) {
    throw new Error(`cannot reach the devnet faucet at ${base}/faucet (${(e as Error).message}); is "cocoon chain" running?`);
  }
  const j = (await r.json().catch(() => ({}))) as { ok?: boolean; error?: string };
  if (!j.ok) throw new Error(`faucet refused: ${j.error ?? `HTTP ${r.status}`}`);
}
