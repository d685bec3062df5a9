#!/usr/bin/env node
// Mutation check of the checks that protect confidentiality, authenticity and money (docs/mutation.md).
//
// Each entry below breaks ONE check (an exact source snippet and its replacement) and names the test files that
// must then fail. The script copies the working tree (tracked and untracked-but-not-ignored files; node_modules
// linked) to a scratch folder, so the shared tree is never touched; in that copy it applies each mutation alone,
// recompiles the contracts when a .tolk file is mutated (scripts/compile-contracts.ts, as after any contract edit),
// runs the named test files (node scripts/run-tests.mjs <files>), and writes the original bytes back (the .tolk file
// AND contracts/build/*.json) in a finally block, and on SIGINT/SIGTERM, before the next mutation. A mutation is
// "caught" when the test run fails, "survived" when it passes. First, a baseline run of the same test files on the
// unmutated copy must pass (otherwise a "caught" would mean nothing).
//
// Usage: npm run mutate [-- [--list] [--no-baseline] [--keep] [id-or-module ...]]
//   id-or-module  run only the mutations whose id starts with it, or of that module (crypto, tee, payments, chain, contracts)
//   --list        print the mutations (and whether each snippet still matches exactly once) and exit
//   --no-baseline skip the baseline run;  --keep  keep the scratch copy (its path is printed)
// Exit status: 0 when every mutation was caught; 1 when one survived, a snippet no longer matches, or the baseline fails.
import { execFileSync, spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const root = new URL("..", import.meta.url).pathname;

/** @typedef {{ id: string, module: string, file: string, find: string, replace: string, tests: string[], what: string }} Mutation */
/** @type {Mutation[]} */
const MUTATIONS = [
  // ---- crypto: receipts, response stream ----
  { id: "receipts.judge-usage", module: "crypto", file: "src/crypto/receipts.ts", what: "judgeReceipt: usage reported vs the signed receipt",
    find: "  if (signed.receipt.promptTokens !== reported.prompt_tokens || signed.receipt.completionTokens !== reported.completion_tokens) {",
    replace: "  if (false) {", tests: ["test/crypto/receipts.test.ts"] },
  { id: "receipts.verify-signature", module: "crypto", file: "src/crypto/receipts.ts", what: "verifyReceipt: Ed25519 signature",
    find: "  return ed25519Verify(message, signature, key);", replace: "  return true;", tests: ["test/crypto/receipts.test.ts"] },
  { id: "receipts.bad-signature-rule", module: "crypto", file: "src/crypto/receipts.ts", what: "checkReceiptAgainst: a receipt whose signature fails is refused",
    find: "  if (!signatureOk && out.length === 0) {", replace: "  if (false) {", tests: ["test/crypto/receipts.test.ts"] },
  { id: "receipts.request-id", module: "crypto", file: "src/crypto/receipts.ts", what: "checkReceiptAgainst: receipt for another request id",
    find: "  if (r.requestId !== expect.requestId) {", replace: "  if (false) {", tests: ["test/crypto/receipts.test.ts"] },
  { id: "receipts.request-digest", module: "crypto", file: "src/crypto/receipts.ts", what: "checkReceiptAgainst: request digest",
    find: "  if (r.requestDigest !== expect.requestDigest) {", replace: "  if (false) {", tests: ["test/crypto/receipts.test.ts"] },
  { id: "receipts.response-digest", module: "crypto", file: "src/crypto/receipts.ts", what: "checkReceiptAgainst: response digest",
    find: "  if (r.responseDigest !== expect.responseDigest) {", replace: "  if (false) {", tests: ["test/crypto/receipts.test.ts"] },
  { id: "stream.replayed-seq", module: "crypto", file: "src/crypto/stream.ts", what: "response opener: a chunk seq already received",
    find: "    if (seq < this.seq) {", replace: "    if (false) {", tests: ["test/crypto/seal.test.ts"] },
  { id: "stream.dropped-seq", module: "crypto", file: "src/crypto/stream.ts", what: "response opener: a gap in the chunk seq (dropped chunk)",
    find: "    if (seq > this.seq) {", replace: "    if (false) {", tests: ["test/crypto/seal.test.ts"] },
  { id: "stream.after-final", module: "crypto", file: "src/crypto/stream.ts", what: "response opener: a chunk after the final one",
    find: "    if (this.done) {\n      throw new Error(`response chunk: chunk seq", replace: "    if (false) {\n      throw new Error(`response chunk: chunk seq", tests: ["test/crypto/seal.test.ts"] },
  { id: "stream.salt-flag", module: "crypto", file: "src/crypto/stream.ts", what: "response opener: salt flag only on chunk 0 (header in the AAD)",
    find: "    if (!first && salted) {", replace: "    if (false) {", tests: ["test/crypto/seal.test.ts"] },

  // ---- tee: chains, revocation, quote checks, policy ----
  { id: "x509.chain-signature", module: "tee", file: "src/tee/x509.ts", what: "verifyChainToRoot: each certificate's signature by its issuer",
    find: "    if (!c.verify(issuer.publicKey)) throw", replace: "    if (false) throw", tests: ["test/tee/chain-forgery.test.ts"] },
  { id: "x509.validity", module: "tee", file: "src/tee/x509.ts", what: "verifyChainToRoot: validity period at `now`",
    find: "    if (now < f.notBefore || now > f.notAfter) {", replace: "    if (false) {", tests: ["test/tee/chain-forgery.test.ts"] },
  { id: "x509.issuer-is-ca", module: "tee", file: "src/tee/x509.ts", what: "verifyChainToRoot: issuers must be CAs",
    find: "    if (i > 0 && !c.ca) throw", replace: "    if (false) throw", tests: ["test/tee/chain-forgery.test.ts"] },
  { id: "tdx.crl-revoked", module: "tee", file: "src/tee/tdx/verify.ts", what: "verifyTdxQuote: a certificate listed by a CRL fails",
    find: "        if (hit) throw new Error(hit);", replace: "        if (false) throw new Error(hit);", tests: ["test/tee/tdx-revocation.test.ts"] },
  { id: "tdx.quote-signature", module: "tee", file: "src/tee/tdx/verify.ts", what: "verifyTdxQuote: quote signature by the attestation key",
    find: "    if (!p1363(\"sha256\", q.signedRegion, key, q.signature)) {", replace: "    if (false) {", tests: ["test/tee/tdx.test.ts"] },
  { id: "tdx.debug", module: "tee", file: "src/tee/tdx/verify.ts", what: "verifyTdxQuote: debug TDs refused",
    find: "  if (flags.debug && !opts.allowDebug) {", replace: "  if (false) {", tests: ["test/tee/tdx.test.ts"] },
  { id: "policy.tcb", module: "tee", file: "src/tee/policy.ts", what: "policy: minimum TCB status",
    find: "  if (s.tcbStatus !== undefined && tcbRank(s.tcbStatus) > tcbRank(policy.minTcbStatus)) {", replace: "  if (false) {", tests: ["test/tee/policy.test.ts"] },
  { id: "policy.image", module: "tee", file: "src/tee/policy.ts", what: "policy: image digest allow list",
    find: "  if ((allowed.length > 0 || policy.mode === \"production\" || policy.strictAllowLists) && !allowed.includes(s.imageDigest.toLowerCase())) {",
    replace: "  if (false) {", tests: ["test/tee/policy.test.ts"] },
  { id: "policy.model", module: "tee", file: "src/tee/policy.ts", what: "policy: model digest allow list",
    find: "    if (mustCheck && (!model || digest === null || !policy.models.includes(digest))) {", replace: "    if (false) {", tests: ["test/tee/policy.test.ts"] },
  { id: "policy.gpu", module: "tee", file: "src/tee/policy.ts", what: "policy: verified GPU evidence required",
    find: "    if (policy.requireGpu && s.platform !== \"sim\" && !s.hasVerifiedGpu) {", replace: "    if (false) {", tests: ["test/tee/policy.test.ts"] },
  { id: "policy.sim", module: "tee", file: "src/tee/policy.ts", what: "policy: simulated attestation refused for attested roles",
    find: "    if (!policy.allowSim && policy.attestedRoles.includes(s.role)) {", replace: "    if (false) {", tests: ["test/tee/policy.test.ts"] },

  // ---- chain: vouchers ----
  { id: "vouchers.signature", module: "chain", file: "src/chain/vouchers.ts", what: "verifySignedVoucher: Ed25519 signature",
    find: "  if (!verifyVoucherSignature(sv.cell, sv.signature, expect.publicKey)) {", replace: "  if (false) {", tests: ["test/chain/vouchers.test.ts"] },
  { id: "vouchers.kind", module: "chain", file: "src/chain/vouchers.ts", what: "verifySignedVoucher: voucher kind",
    find: "  if (v.kind !== expect.kind) throw", replace: "  if (false) throw", tests: ["test/chain/vouchers.test.ts"] },
  { id: "vouchers.network", module: "chain", file: "src/chain/vouchers.ts", what: "verifySignedVoucher: network (global id)",
    find: "  if (v.globalId !== expect.globalId) {", replace: "  if (false) {", tests: ["test/chain/vouchers.test.ts"] },
  { id: "vouchers.contract", module: "chain", file: "src/chain/vouchers.ts", what: "verifySignedVoucher: channel / proxy contract",
    find: "  if (!target.equals(expect.contract)) {", replace: "  if (false) {", tests: ["test/chain/vouchers.test.ts"] },
  { id: "vouchers.worker", module: "chain", file: "src/chain/vouchers.ts", what: "verifySignedVoucher: payout voucher's worker",
    find: "  if (v.kind === \"payout\" && expect.worker && !v.worker.equals(expect.worker)) {", replace: "  if (false) {", tests: ["test/chain/vouchers.test.ts"] },

  // ---- payments: proxy meter, worker payee, client payer ----
  { id: "meter.older-voucher", module: "payments", file: "src/payments/proxy-meter.ts", what: "applyVoucher: an older client voucher is ignored",
    find: "    if (cumulative <= latest) return latest; // an older voucher: nothing new", replace: "    // mutated: older vouchers are stored", tests: ["test/payments/older-vouchers.test.ts"] },
  { id: "meter.voucher-over-deposit", module: "payments", file: "src/payments/proxy-meter.ts", what: "applyVoucher: a voucher above the channel's deposit",
    find: "      if (cumulative > e.capacity) {\n        throw new MeterRefusal", replace: "      if (false) {\n        throw new MeterRefusal", tests: ["test/payments/settlement.test.ts"] },
  { id: "meter.voucher-missing", module: "payments", file: "src/payments/proxy-meter.ts", what: "admitWith: the voucher_missing rule",
    find: "    if (owed > max + allowance) {", replace: "    if (false) {", tests: ["test/payments/settlement.test.ts", "test/payments/late-cancel.test.ts"] },
  { id: "meter.closing-channel", module: "payments", file: "src/payments/proxy-meter.ts", what: "admitWith: a closing channel is refused",
    find: "    if (e.status !== ChannelStatus.OPEN) {\n      throw new MeterRefusal(\"insufficient_funds\", `channel ${e.address.toString()} is closing or closed; open a new channel and deposit`);",
    replace: "    if (false) {\n      throw new MeterRefusal(\"insufficient_funds\", `channel ${e.address.toString()} is closing or closed; open a new channel and deposit`);",
    tests: ["test/payments/money-exposure.test.ts"] },
  { id: "meter.insufficient-funds", module: "payments", file: "src/payments/proxy-meter.ts", what: "admitWith: cost beyond what the channel can pay",
    find: "    if (owed + e.inflightTotal + max > e.capacity - signed) {", replace: "    if (false) {", tests: ["test/payments/settlement.test.ts"] },
  { id: "meter.exposure-bound", module: "payments", file: "src/payments/proxy-meter.ts", what: "admitWith: the unsigned exposure bound",
    find: "    if (owed + e.inflightTotal + max > bound) {", replace: "    if (false) {", tests: ["test/payments/money-exposure.test.ts"] },
  { id: "payee.lower-voucher", module: "payments", file: "src/payments/worker-payee.ts", what: "receiveVoucher: a lower payout voucher is ignored",
    find: "      if (v.cumulative <= latest) return true;", replace: "      // mutated: lower vouchers are stored", tests: ["test/payments/older-vouchers.test.ts"] },
  { id: "payer.untracked-dispute", module: "payments", file: "src/payments/client-payer.ts", what: "reconciliation: a charge for a request this client has no record of is disputed",
    find: "      const problem = t ? (t.refused ?? this.checkOwed(a, requestId, t)) : \"this client has no record",
    replace: "      const problem = t ? (t.refused ?? this.checkOwed(a, requestId, t)) : \"\" && \"this client has no record", tests: ["test/payments/reconcile-judgment.test.ts"] },
  { id: "payer.receipt-signature", module: "payments", file: "src/payments/client-payer.ts", what: "checkOwed: the receipt is signed by a worker the request was sealed to",
    find: "    if (!t.receiptKeys.some((k) => verifyReceipt(signed, k))) return", replace: "    if (false) return", tests: ["test/payments/reconcile-judgment.test.ts"] },
  { id: "payer.receipt-request", module: "payments", file: "src/payments/client-payer.ts", what: "checkOwed: the receipt is for this request (id, model, request digest)",
    find: "    if (r.requestId !== requestId || r.model !== t.model || r.requestDigest !== t.requestDigest) return", replace: "    if (false) return", tests: ["test/payments/reconcile-judgment.test.ts"] },
  { id: "payer.receipt-max-tokens", module: "payments", file: "src/payments/client-payer.ts", what: "checkOwed: completion tokens within max_tokens",
    find: "    if (r.completionTokens > t.maxTokens) return", replace: "    if (false) return", tests: ["test/payments/reconcile-judgment.test.ts"] },
  { id: "payer.receipt-usage", module: "payments", file: "src/payments/client-payer.ts", what: "checkOwed: the charged usage equals the receipt's",
    find: "    if (r.promptTokens !== a.promptTokens || r.completionTokens !== a.completionTokens) return", replace: "    if (false) return", tests: ["test/payments/reconcile-judgment.test.ts"] },
  { id: "payer.receipt-cost", module: "payments", file: "src/payments/client-payer.ts", what: "checkOwed: the charged cost equals the receipt's",
    find: "    if (r.costNano !== \"0\" && r.costNano !== a.cost) return", replace: "    if (false) return", tests: ["test/payments/reconcile-judgment.test.ts"] },

  // ---- contracts (Tolk; recompiled, then contracts/build/*.json restored byte for byte) ----
  { id: "channel.redeem-signature", module: "contracts", file: "contracts/client_channel.tolk", what: "client channel: the client's signature on a voucher",
    find: "    assert (isSignatureValid(voucher.hash(), signature as slice, clientKey)) throw ERR_BAD_SIGNATURE;",
    replace: "    assert (true) throw ERR_BAD_SIGNATURE;", tests: ["test/chain/contracts-channel.test.ts"] },
  { id: "channel.stale-redeem", module: "contracts", file: "contracts/client_channel.tolk", what: "client channel: redeem needs a higher cumulative",
    find: "            assert (v.cumulative > st.redeemed) throw ERR_STALE_VOUCHER;", replace: "            assert (true) throw ERR_STALE_VOUCHER;", tests: ["test/chain/contracts-channel.test.ts"] },
  { id: "channel.close-delay", module: "contracts", file: "contracts/client_channel.tolk", what: "client channel: finish-close only after the close delay",
    find: "            assert (blockchain.now() >= st.closeRequestedAt + cfg.closeDelay) throw ERR_CLOSE_TOO_EARLY;",
    replace: "            assert (true) throw ERR_CLOSE_TOO_EARLY;", tests: ["test/chain/contracts-channel.test.ts"] },
  { id: "proxy.claim-signature", module: "contracts", file: "contracts/proxy.tolk", what: "proxy contract: the proxy's signature on a payout voucher",
    find: "            assert (isSignatureValid(msg.voucher.hash(), msg.signature as slice, st.signingKey)) throw ERR_BAD_SIGNATURE;",
    replace: "            assert (true) throw ERR_BAD_SIGNATURE;", tests: ["test/chain/contracts-proxy.test.ts"] },
  { id: "proxy.claim-worker", module: "contracts", file: "contracts/proxy.tolk", what: "proxy contract: only the named worker claims",
    find: "            assert (v.worker == in.senderAddress) throw ERR_WRONG_WORKER;", replace: "            assert (true) throw ERR_WRONG_WORKER;", tests: ["test/chain/contracts-proxy.test.ts"] },
  { id: "proxy.claim-stale", module: "contracts", file: "contracts/proxy.tolk", what: "proxy contract: a claim needs a higher cumulative",
    find: "            assert (v.cumulative > already) throw ERR_STALE_VOUCHER;", replace: "            assert (true) throw ERR_STALE_VOUCHER;", tests: ["test/chain/contracts-proxy.test.ts"] },
];

const args = process.argv.slice(2);
const flags = new Set(args.filter((a) => a.startsWith("--")));
const picks = args.filter((a) => !a.startsWith("--"));
const selected = MUTATIONS.filter((m) => picks.length === 0 || picks.some((p) => m.module === p || m.id.startsWith(p)));

if (flags.has("--list")) {
  // Read-only: also says whether each snippet still occurs exactly once in the tree.
  let stale = 0;
  for (const m of selected) {
    const n = readFileSync(join(root, m.file), "utf8").split(m.find).length - 1;
    if (n !== 1) stale++;
    console.log(`${n === 1 ? "ok   " : "STALE"} ${m.module.padEnd(9)} ${m.id.padEnd(28)} ${m.file}  (${m.tests.join(", ")})  ${m.what}`);
  }
  process.exit(stale ? 1 : 0);
}
if (selected.length === 0) {
  console.error(`no mutation matches ${picks.join(" ")}; see --list`);
  process.exit(1);
}

// ---- the scratch copy ----
const work = mkdtempSync(join(tmpdir(), "cocoon-mutate-"));
/** Files currently mutated in the copy: path -> original bytes (written back in finally and on a signal). */
const pending = new Map();
let child;

function restoreAll() {
  for (const [path, original] of pending) {
    writeFileSync(path, original);
    pending.delete(path);
  }
}
function cleanup() {
  restoreAll();
  if (!flags.has("--keep")) rmSync(work, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    if (child && child.exitCode === null) {
      try { process.kill(-child.pid, "SIGKILL"); } catch { /* already gone */ }
    }
    cleanup();
    console.error(`\n${sig}: every mutated file was restored; stopped`);
    process.exit(130);
  });
}

const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: root, encoding: "buffer" })
  .toString("utf8").split("\0").filter(Boolean);
for (const f of files) {
  mkdirSync(dirname(join(work, f)), { recursive: true });
  try {
    cpSync(join(root, f), join(work, f));
  } catch (e) {
    if (e.code !== "ENOENT") throw e; // a file deleted in the tree but still in the index
  }
}
symlinkSync(join(root, "node_modules"), join(work, "node_modules"), "dir");

/** Runs the given test files in the copy; resolves with the exit code and the output's last lines. */
function runTests(tests) {
  return new Promise((resolve) => {
    child = spawn(process.execPath, ["scripts/run-tests.mjs", ...tests], {
      cwd: work, detached: true, stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, COCOON_TEST_FILE_TIMEOUT_MS: process.env.COCOON_TEST_FILE_TIMEOUT_MS ?? "120000" },
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("close", (code) => resolve({ code: code ?? 1, out }));
  });
}

function compileContracts() {
  execFileSync(process.execPath, ["--import", "tsx", "scripts/compile-contracts.ts"], { cwd: work, stdio: "pipe" });
}

const results = [];
let failed = false;
try {
  const allTests = [...new Set(selected.flatMap((m) => m.tests))];
  if (!flags.has("--no-baseline")) {
    process.stdout.write(`baseline: ${allTests.length} test file(s) on the unmutated copy ... `);
    const base = await runTests(allTests);
    if (base.code !== 0) {
      console.log("FAILED\n" + base.out.split("\n").filter((l) => /^not ok|^# (pass|fail)/.test(l)).join("\n"));
      console.error("the baseline fails: fix the tests first, a mutation score on a failing suite means nothing");
      failed = true;
      throw new Error("baseline failed");
    }
    console.log("passes");
  }
  for (const m of selected) {
    const path = join(work, m.file);
    const original = readFileSync(path);
    const text = original.toString("utf8");
    const count = text.split(m.find).length - 1;
    if (count !== 1) {
      results.push({ m, outcome: "stale", note: `snippet found ${count} times (must be exactly once): update the entry` });
      console.log(`STALE     ${m.id}: snippet found ${count} times in ${m.file}`);
      continue;
    }
    const started = Date.now();
    const isContract = m.file.endsWith(".tolk");
    const builds = isContract ? ["client_channel", "proxy", "root"].map((n) => join(work, "contracts", "build", `${n}.json`)) : [];
    try {
      for (const b of builds) pending.set(b, readFileSync(b));
      pending.set(path, original);
      writeFileSync(path, text.replace(m.find, () => m.replace));
      if (isContract) {
        try {
          compileContracts();
        } catch (e) {
          results.push({ m, outcome: "invalid", note: `does not compile: ${String(e.stderr ?? e.message).split("\n").slice(0, 3).join(" ")}` });
          console.log(`INVALID   ${m.id}: the mutated contract does not compile`);
          continue;
        }
      }
      const r = await runTests(m.tests);
      const secs = ((Date.now() - started) / 1000).toFixed(0);
      const caught = r.code !== 0;
      const firstFailure = r.out.split("\n").find((l) => /^\s*not ok \d+ - /.test(l) && !/\.test\.ts$/.test(l))?.trim();
      results.push({ m, outcome: caught ? "caught" : "survived", note: caught ? firstFailure ?? "test run failed" : "all named tests pass", secs });
      console.log(`${caught ? "caught  " : "SURVIVED"}  ${m.id.padEnd(28)} ${secs.padStart(3)} s  ${caught ? firstFailure ?? "" : m.what}`);
    } finally {
      restoreAll();
    }
    if (!readFileSync(path).equals(original)) throw new Error(`${m.file} was not restored`);
  }
} catch (e) {
  if (!failed) console.error(`mutation run stopped: ${e.message}`);
  failed = true;
} finally {
  cleanup();
}

// ---- report ----
const modules = [...new Set(results.map((r) => r.m.module))];
console.log("\n| module | mutations | caught | survived | score |\n|---|---|---|---|---|");
let caughtAll = 0;
for (const mod of modules) {
  const rs = results.filter((r) => r.m.module === mod);
  const caught = rs.filter((r) => r.outcome === "caught").length;
  caughtAll += caught;
  console.log(`| ${mod} | ${rs.length} | ${caught} | ${rs.length - caught} | ${Math.round((100 * caught) / rs.length)}% |`);
}
console.log(`| all | ${results.length} | ${caughtAll} | ${results.length - caughtAll} | ${results.length ? Math.round((100 * caughtAll) / results.length) : 0}% |`);
const bad = results.filter((r) => r.outcome !== "caught");
for (const r of bad) console.log(`${r.outcome.toUpperCase()}: ${r.m.id} (${r.m.file}): ${r.m.what}; ${r.note}`);
process.exit(failed || bad.length > 0 || results.length < selected.length ? 1 : 0);
