/**
 * The payer of one proxy whose channel may not exist yet: the client links to a proxy as soon as it is registered,
 * and this payer stands for the channel from the start. Until the channel is open (client-channels.ts opens it on
 * demand) it says why it cannot pay (`unavailable`), and the client sends requests through other proxies; once the
 * channel's ClientPayer runs, every call goes to it, and the channel is registered on the link's current connection.
 */
import type { AnswerCost, Payer, PaymentsCall, SentRequest } from "../client/payer.js";
import type { ClientPayer } from "./client-payer.js";
import type { FundingStatus } from "./client-channels.js";

export class ChannelPayer implements Payer {
  private inner?: ClientPayer;
  /** The link's current connection, to register the channel on when it opens after the link connected. */
  private conn?: { request: PaymentsCall; session: string };

  /** `why`: why there is no channel yet (asked each time: the opening moves on). */
  constructor(readonly proxy: string, private readonly why: () => string, private readonly funding?: () => FundingStatus, private readonly onClose?: () => void) {}

  get payer(): ClientPayer | undefined {
    return this.inner;
  }

  /** The channel is open and its payer runs: from now on every call goes to it. */
  async attach(payer: ClientPayer): Promise<void> {
    this.inner = payer;
    const c = this.conn;
    if (c) await payer.onConnected(c.request, c.session).catch(() => undefined); // the next connection registers again
  }

  unavailable(): string | undefined {
    return this.inner ? undefined : this.why();
  }

  private need(): ClientPayer {
    if (!this.inner) throw new Error(`no payment channel with proxy ${this.proxy} yet: ${this.why()}`);
    return this.inner;
  }

  async onConnected(request: PaymentsCall, session: string): Promise<void> {
    this.conn = { request, session };
    if (this.inner) await this.inner.onConnected(request, session);
  }

  track(requestId: string, sent: SentRequest): void {
    this.inner?.track(requestId, sent);
  }

  abandon(requestId: string): void {
    this.inner?.abandon(requestId);
  }

  async reconcile(): Promise<void> {
    await this.inner?.reconcile();
  }

  beforeRequest(model: string, maxTokens: number, promptBytes?: number): Promise<Record<string, unknown> | undefined> {
    return this.need().beforeRequest(model, maxTokens, promptBytes);
  }

  afterAnswer(answer: AnswerCost): Promise<void> {
    return this.need().afterAnswer(answer);
  }

  status(): Record<string, unknown> {
    if (this.inner) return this.inner.status();
    return { channel: null, unavailable: this.why(), ...(this.funding ? { funding: this.funding() } : {}) };
  }

  async close(): Promise<void> {
    this.onClose?.(); // no channel opened or topped up for a client that stopped
    await this.inner?.close();
  }
}
