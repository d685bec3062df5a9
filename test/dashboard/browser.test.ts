// The dashboards in a real browser (headless Chromium from the system, driven by playwright-core; no browser is ever
// downloaded): one paid devnet, the devnet page sends a chat, the answer streams in, its cost and the worker's
// attestation show, balances and charts move; then each node's own dashboard renders live, shows what its role must
// show, and an operator control works from the page. Screenshots go to a temporary folder, or to
// COCOON_SCREENSHOTS=docs/screenshots to refresh the ones the README shows.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { startDevnet, type Devnet } from "../cli/devnet-process.js";
import { runAdminAction } from "../../src/cli/admin.js";

const CHROMIUM = process.env.COCOON_CHROMIUM ?? "/usr/bin/chromium";
const shots = process.env.COCOON_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), "cocoon-shots-"));
const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium; .ci/run does)`;

let dn: Devnet;
let browser: Browser;
let devnetPage = "";
const dashboards: Record<string, string> = {};
let tokenFile = "";

before(async () => {
  if (skip) return;
  mkdirSync(shots, { recursive: true });
  dn = await startDevnet();
  devnetPage = (await dn.waitForOutput(/Dashboard \(every node[^)]*\): (http:\/\/127\.0\.0\.1:\d+)\//))[1]!;
  for (const m of dn.output().matchAll(/^\s+(client|proxy|worker-\d+)\s+(http:\/\/127\.0\.0\.1:\d+)\/$/gm)) dashboards[m[1]!] = m[2]!;
  tokenFile = /--token-file (\S+)/.exec(dn.output())![1]!;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
});

after(async () => {
  await browser?.close();
  if (dn) {
    dn.proc.kill("SIGINT");
    assert.equal((await dn.exit).code, 0, `the devnet (and its page server) stops cleanly on Ctrl-C:\n${dn.output().slice(-2000)}`);
  }
});

async function open(url: string, width = 1280): Promise<Page> {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.goto(url);
  (page as unknown as { errors: string[] }).errors = errors;
  return page;
}
const errorsOf = (p: Page) => (p as unknown as { errors: string[] }).errors;

/** Every form control has a label a screen reader reads. */
async function unlabelled(page: Page): Promise<string[]> {
  return page.$$eval("input, textarea, select", (els) =>
    els.filter((e) => !(e as HTMLInputElement).labels?.length && !e.getAttribute("aria-label") && !(e as HTMLInputElement).hidden).map((e) => e.id || e.outerHTML.slice(0, 60)),
  );
}

test("devnet page: a chat streams in, shows its cost and the worker's attestation, balances and charts update", { skip }, async () => {
  const page = await open(devnetPage);
  await page.waitForSelector("#nodes table");
  assert.equal(await page.locator("#nodes tbody tr").count(), 5, "client, two proxies and two workers are listed");
  const spentBefore = await page.locator("#balances .card:nth-child(2) .v").textContent();
  // Keyboard only: focus the prompt, type, submit with the button reached by Tab.
  await page.focus("#prompt");
  await page.keyboard.press("Control+A");
  await page.keyboard.type("In the beginning");
  await page.fill("#max-tokens", "40");
  await page.focus("#send");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#chat-meta[data-done='1']", { timeout: 30_000 });
  const answer = (await page.locator("#answer").textContent()) ?? "";
  assert.ok(answer.length > 0, "an answer was shown");
  // It streamed in: the text arrived over several network reads, each shown as it came.
  const how = (await page.evaluate(() => (window as unknown as { cocoonChat: { reads: number; deltas: number } }).cocoonChat));
  assert.ok(how.reads >= 2 && how.deltas >= how.reads, `the answer streamed in (${JSON.stringify(how)})`);
  const meta = (await page.locator("#chat-meta").textContent()) ?? "";
  assert.match(meta, /Cost\s*0\.\d+ TON/, meta);
  assert.match(meta, /Worker\s*worker-\d/, meta);
  assert.match(meta, /worker=insecure-sim/, meta);
  assert.match(meta, /INSECURE/, meta);
  assert.match(meta, /Request id\s*chatcmpl-/, meta);
  // Balances: the client's spend moves past what it was before the chat; the throughput chart has points.
  await page.waitForFunction((before) => document.querySelector("#balances .card:nth-child(2) .v")?.textContent !== before, spentBefore, { timeout: 10_000 });
  await page.waitForFunction(() => Number((document.getElementById("chart-spent") as unknown as SVGElement).dataset.points) >= 2, undefined, { timeout: 10_000 });
  assert.deepEqual(await unlabelled(page), []);
  await page.screenshot({ path: join(shots, "devnet.png"), fullPage: true });
  const phone = await open(devnetPage, 390);
  await phone.waitForSelector("#nodes table");
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the page fits a phone's width (overflow ${overflow}px)`);
  await phone.screenshot({ path: join(shots, "devnet-phone.png"), fullPage: true });
  assert.deepEqual([...errorsOf(page), ...errorsOf(phone)], []);
  await phone.close();
  await page.close();
});

test("each node's dashboard renders live with what its role shows", { skip }, async () => {
  // The worker that served the chat (its dashboard has numbers to show).
  const proxy = (await (await fetch(`${dashboards.proxy}/status`)).json()) as { peers: { workers: { id: string; served: number }[] } };
  const served = proxy.peers.workers.find((w) => w.served > 0)?.id ?? "worker-1";
  const expect: Record<string, RegExp[]> = {
    client: [/Spent/, /Remaining/, /Recent requests/, /chatcmpl-/, /receipt verified/, /INSECURE/],
    proxy: [/Workers/, /worker-1/, /worker-2/, /Clients/, /Settlement/, /Fees/],
    [served]: [/Attestation/, /sim · INSECURE/, /Own evidence\s*insecure INSECURE-SIM/, /TCB status/, /mrtd\s*[0-9a-f]{96}/, /Image digest\s*[0-9a-f]{64}/, /Model/, /kjv-char-llama/, /Linked proxies/, /Earned/],
  };
  for (const [name, patterns] of Object.entries(expect)) {
    const page = await open(`${dashboards[name]}/`);
    await page.waitForSelector("#live.ok", { timeout: 10_000 });
    if (name === served) assert.match((await page.locator("#summary").textContent()) ?? "", /Requests[^0-9]*[1-9]/, "the serving worker counted the chat");
    const text = (await page.locator("main").textContent()) ?? "";
    for (const re of patterns) assert.match(text, re, `${name} dashboard shows ${re}`);
    assert.ok(Number(await page.locator("#chart-money").getAttribute("data-points")) >= 1, `${name}: the money chart has data`);
    assert.deepEqual(await unlabelled(page), [], name);
    await page.screenshot({ path: join(shots, `${name.replace(/-\d+$/, "")}.png`), fullPage: true });
    assert.deepEqual(errorsOf(page), [], name);
    await page.close();
  }
});

test("an operator drains a worker from its dashboard with the admin token (a wrong one is refused), and redeems and pays out from the CLI", { skip }, async () => {
  const page = await open(`${dashboards["worker-2"]}/`);
  await page.waitForSelector("#admin-actions button");
  await page.fill("#admin-token", "not-the-token-0000000000");
  await page.click("#admin-actions button[data-action='drain']");
  await page.waitForFunction(() => /refused/.test(document.getElementById("admin-result")?.textContent ?? ""));
  assert.match((await page.locator("#admin-result").textContent()) ?? "", /wrong admin token/);
  await page.fill("#admin-token", readFileSync(tokenFile, "utf8").trim());
  await page.click("#admin-actions button[data-action='drain']");
  await page.waitForFunction(() => /done/.test(document.getElementById("admin-result")?.textContent ?? ""));
  await page.waitForFunction(() => document.getElementById("admin-state")?.textContent === "draining");
  // The proxy sees worker-2 disabled, with the operator's reason.
  const proxy = (await (await fetch(`${dashboards.proxy}/status`)).json()) as { peers: { workers: { id: string; enabled: boolean; reason?: string }[] } };
  const w2 = proxy.peers.workers.find((w) => w.id === "worker-2");
  assert.equal(w2?.enabled, false);
  assert.match(w2?.reason ?? "", /operator/);
  await page.click("#admin-actions button[data-action='enable']");
  await page.waitForFunction(() => document.getElementById("admin-state")?.textContent === "serving");
  await page.close();
  // The money controls, from the command line: the proxy redeems its clients' vouchers on chain and sends payout
  // vouchers now; a worker claims what it holds.
  const proxyStatus = async () => ((await (await fetch(`${dashboards.proxy}/status`)).json()) as { payments: { redeemed: string; signed: string } }).payments;
  assert.match(await runAdminAction("redeem", { status: dashboards.proxy!, tokenFile }), /redeemed so far/);
  const after = await proxyStatus();
  assert.equal(after.redeemed, after.signed, "everything the client signed is redeemed on chain");
  assert.match(await runAdminAction("payout", { status: dashboards.proxy!, tokenFile }), /payout vouchers sent/);
  assert.match(await runAdminAction("payout", { status: dashboards["worker-1"]!, tokenFile }), /claimed on chain|nothing to claim/);
});
