// `cocoon admin <action>`: a node's operator controls from the command line (the same as the dashboard's buttons):
// POST /admin/<action> on the node's status port with the token from its --admin-token-file.
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { ADMIN_ACTIONS, ADMIN_HELP } from "../observability/admin.js";

export interface AdminCliOptions {
  status: string;
  tokenFile: string;
}

/** Runs one action; resolves with the node's answer, rejects with a sentence saying what went wrong. */
export async function runAdminAction(action: string, o: AdminCliOptions): Promise<string> {
  if (!(ADMIN_ACTIONS as readonly string[]).includes(action)) throw new Error(`unknown action '${action}'; use one of: ${ADMIN_ACTIONS.join(", ")}`);
  let token: string;
  try {
    token = readFileSync(o.tokenFile, "utf8").trim();
  } catch (err) {
    throw new Error(`cannot read the admin token file ${o.tokenFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); pass the file the node was started with (--admin-token-file)`);
  }
  // The node's status page URL, its /status, or just HOST:PORT.
  const base = (/^https?:\/\//.test(o.status) ? o.status : `http://${o.status}`).replace(/\/(status|metrics)?\/?$/, "");
  let res: Response;
  try {
    res = await fetch(`${base}/admin/${action}`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
  } catch (err) {
    throw new Error(`cannot reach ${base} (${(err as Error).cause ? String((err as { cause?: { code?: string } }).cause?.code) : (err as Error).message}); is the node running, and is this its status port?`);
  }
  const text = await res.text();
  let body: { ok?: boolean; message?: string };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new Error(`${base} answered ${res.status} without JSON; is this a cocoon status port?`);
  }
  if (!res.ok || !body.ok) throw new Error(`${action} refused (${res.status}): ${body.message ?? text}`);
  return body.message ?? "done";
}

export function registerAdminCommand(program: Command): void {
  program
    .command("admin")
    .description("operator controls of a running node, with the token from its --admin-token-file")
    .addHelpText("after", `\nActions:\n${ADMIN_ACTIONS.map((a) => `  ${a.padEnd(9)}${ADMIN_HELP[a]}`).join("\n")}\n\nExample: cocoon admin drain --status http://127.0.0.1:12000 --token-file ~/.cocoon/admin-token`)
    .argument("<action>", ADMIN_ACTIONS.join("|"))
    .requiredOption("--status <url>", "the node's status port, e.g. http://127.0.0.1:12000 (the client's: its API port)")
    .requiredOption("--token-file <file>", "the node's --admin-token-file")
    .action(async (action: string, o: AdminCliOptions) => {
      console.log(await runAdminAction(action, o));
    });
}
