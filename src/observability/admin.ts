// Operator controls on a node's status port (drain, enable, disable, payout, redeem), behind a local admin token:
// `POST /admin/<action>` with `Authorization: Bearer <token>`. The token lives in a file only the operator can read
// (--admin-token-file; made with 32 random bytes and mode 0600 when missing). Without a token file the controls are
// off. The token travels in a header, never in a URL or a cookie, so another web page cannot make a browser use it
// (a cross-origin request with an Authorization header needs a CORS preflight, which this server never grants).
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

export const ADMIN_ACTIONS = ["drain", "enable", "disable", "payout", "redeem"] as const;
export type AdminAction = (typeof ADMIN_ACTIONS)[number];

export const ADMIN_HELP: Record<AdminAction, string> = {
  drain: "take no new requests, let running ones finish (undo with enable)",
  enable: "take requests again (after drain or disable)",
  disable: "take no new requests at once (announced to proxies as disabled)",
  payout: "worker: claim its payouts on chain now; proxy: send workers their payout vouchers now",
  redeem: "proxy: redeem the clients' vouchers on chain now",
};

export interface AdminResult {
  status: number;
  body: { ok: boolean; action?: string; message: string };
}

/** Reads the token from `file`, or makes one there (mode 0600) when the file does not exist. */
export function loadOrCreateAdminToken(file: string): string {
  if (existsSync(file)) {
    const token = readFileSync(file, "utf8").trim();
    if (token.length < 16) throw new Error(`the admin token in ${file} is shorter than 16 characters; delete the file to get a new random one`);
    return token;
  }
  mkdirSync(dirname(file), { recursive: true });
  const token = randomBytes(32).toString("hex");
  writeFileSync(file, token + "\n", { mode: 0o600 });
  return token;
}

const digest = (s: string) => createHash("sha256").update(s).digest();

export class AdminControls {
  private tokenDigest?: Buffer;
  private readonly actions = new Map<AdminAction, () => Promise<string>>();
  /** The last actions run, newest first (shown on the dashboard). */
  readonly recent: { at: string; action: AdminAction; ok: boolean; message: string }[] = [];
  /** What the node's operator state is now (e.g. "draining"), shown on the dashboard. */
  state = "serving";

  /** Turns the controls on with this token. */
  setToken(token: string): void {
    this.tokenDigest = digest(token);
  }

  get enabled(): boolean {
    return this.tokenDigest !== undefined;
  }

  /** Offers an action; `run` says what it did, in a sentence. */
  register(action: AdminAction, run: () => Promise<string>): void {
    this.actions.set(action, run);
  }

  summary(): { enabled: boolean; actions: AdminAction[]; state: string; recent: AdminControls["recent"] } {
    return { enabled: this.enabled, actions: [...this.actions.keys()], state: this.state, recent: this.recent.slice(0, 10) };
  }

  /** Checks the bearer token (in constant time) and runs the action. */
  async run(action: string, authorization: string | undefined): Promise<AdminResult> {
    if (!this.tokenDigest) {
      return { status: 403, body: { ok: false, message: "operator controls are off on this node: start it with --admin-token-file FILE (cocoon devnet does), then send that file's token" } };
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
    if (!m || !timingSafeEqual(digest(m[1]!), this.tokenDigest)) {
      return { status: 401, body: { ok: false, message: "missing or wrong admin token: send 'Authorization: Bearer <token>' with the token from this node's --admin-token-file" } };
    }
    const run = (ADMIN_ACTIONS as readonly string[]).includes(action) ? this.actions.get(action as AdminAction) : undefined;
    if (!run) {
      const offered = [...this.actions.keys()].join(", ") || "none";
      return { status: 404, body: { ok: false, action, message: `this node has no '${action}' control; it offers: ${offered}` } };
    }
    try {
      const message = await run();
      this.note(action as AdminAction, true, message);
      return { status: 200, body: { ok: true, action, message } };
    } catch (err) {
      const message = (err as Error).message;
      this.note(action as AdminAction, false, message);
      return { status: 409, body: { ok: false, action, message } };
    }
  }

  private note(action: AdminAction, ok: boolean, message: string): void {
    this.recent.unshift({ at: new Date().toISOString(), action, ok, message });
    this.recent.length = Math.min(this.recent.length, 20);
  }
}
