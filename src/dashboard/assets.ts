// Style and scripts shared by the dashboards, inlined into each page: the node serves everything itself (no CDN,
// nothing fetched at build or run time). Scripts are plain browser JavaScript kept as strings (String.raw, no
// template placeholders inside), charts are hand-drawn SVG.

export const STYLE = String.raw`
:root { --bg: #f6f7f9; --card: #ffffff; --ink: #111827; --muted: #4b5563; --line: #d1d5db; --accent: #1d4ed8;
  --ok: #166534; --okbg: #dcfce7; --bad: #991b1b; --badbg: #fee2e2; --warn: #92400e; --warnbg: #fef3c7; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #0b1120; --card: #111827; --ink: #f3f4f6; --muted: #cbd5e1; --line: #374151; --accent: #93c5fd;
    --ok: #bbf7d0; --okbg: #14532d; --bad: #fecaca; --badbg: #7f1d1d; --warn: #fde68a; --warnbg: #78350f; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink); }
header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: baseline; justify-content: space-between; padding: .8rem 1rem; border-bottom: 1px solid var(--line); background: var(--card); }
h1 { font-size: 1.25rem; margin: 0; } h2 { font-size: 1.05rem; margin: 0 0 .6rem; } h3 { font-size: .95rem; margin: .8rem 0 .4rem; }
main { padding: 1rem; display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(min(100%, 22rem), 1fr)); max-width: 90rem; margin: 0 auto; }
section { background: var(--card); border: 1px solid var(--line); border-radius: .5rem; padding: .9rem 1rem; min-width: 0; }
section.wide { grid-column: 1 / -1; }
.cards { display: grid; gap: .6rem; grid-template-columns: repeat(auto-fit, minmax(9.5rem, 1fr)); }
.card { border: 1px solid var(--line); border-radius: .4rem; padding: .5rem .6rem; }
.card .k { color: var(--muted); font-size: .8rem; } .card .v { font-size: 1.2rem; font-weight: 600; overflow-wrap: anywhere; }
.card .s { color: var(--muted); font-size: .8rem; }
.badge { display: inline-block; padding: .05rem .45rem; border-radius: 1rem; font-size: .8rem; font-weight: 600; }
.ok { background: var(--okbg); color: var(--ok); } .bad { background: var(--badbg); color: var(--bad); } .warn { background: var(--warnbg); color: var(--warn); }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .88rem; }
caption { text-align: left; color: var(--muted); font-size: .8rem; padding-bottom: .3rem; }
th, td { text-align: left; padding: .3rem .45rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; } td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem .8rem; margin: 0; font-size: .9rem; }
dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85em; }
svg.chart { width: 100%; height: 9rem; display: block; }
svg.chart .grid { stroke: var(--line); stroke-width: 1; } svg.chart .line { fill: none; stroke: var(--accent); stroke-width: 2; }
svg.chart .area { fill: var(--accent); opacity: .12; } svg.chart text { fill: var(--muted); font-size: 11px; }
.charts { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(min(100%, 16rem), 1fr)); }
figure { margin: 0; } figcaption { font-size: .85rem; color: var(--muted); margin-bottom: .2rem; }
a { color: var(--accent); }
button, input, textarea, select { font: inherit; color: inherit; }
button { background: var(--accent); color: var(--card); border: 0; border-radius: .35rem; padding: .4rem .8rem; cursor: pointer; font-weight: 600; }
button.secondary { background: transparent; color: var(--accent); border: 1px solid var(--accent); }
button:disabled { opacity: .55; cursor: not-allowed; }
input, textarea { background: var(--bg); border: 1px solid var(--line); border-radius: .35rem; padding: .4rem .5rem; width: 100%; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
label { display: block; font-size: .85rem; color: var(--muted); margin-bottom: .2rem; }
.row { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
.muted { color: var(--muted); } .small { font-size: .82rem; }
#answer { white-space: pre-wrap; min-height: 4rem; border: 1px solid var(--line); border-radius: .35rem; padding: .5rem; background: var(--bg); }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;

/** Formatting, tables and SVG charts, shared by the node dashboards and the devnet page. */
export const COMMON_JS = String.raw`
"use strict";
var $ = function (id) { return document.getElementById(id); };
function esc(s) { return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]; }); }
function num(v) { var n = Number(v); return isFinite(n) ? n : 0; }
function fmtInt(v) { return num(v).toLocaleString("en-US"); }
function fmtRate(v) { var n = num(v); return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2); }
/** nanoTON (a decimal string or number) as TON, exact to 9 places, trailing zeros dropped. */
function fmtTon(nano) {
  if (nano === undefined || nano === null || nano === "") return "–";
  var s = String(nano), neg = s[0] === "-"; if (neg) s = s.slice(1);
  if (!/^[0-9]+$/.test(s)) s = String(Math.round(num(nano)));
  s = s.padStart(10, "0");
  var whole = s.slice(0, -9).replace(/^0+(?=\d)/, ""), frac = s.slice(-9).replace(/0+$/, "");
  return (neg ? "-" : "") + whole + (frac ? "." + frac : "") + " TON";
}
function fmtMs(v) { return v === undefined || v === null ? "–" : num(v) >= 1000 ? (num(v) / 1000).toFixed(2) + " s" : Math.round(num(v)) + " ms"; }
function fmtAge(sec) { sec = num(sec); if (sec < 90) return Math.round(sec) + " s"; if (sec < 5400) return Math.round(sec / 60) + " min"; return (sec / 3600).toFixed(1) + " h"; }
function badge(text, kind) { return '<span class="badge ' + kind + '">' + esc(text) + "</span>"; }
function card(k, v, s) { return '<div class="card"><div class="k">' + esc(k) + '</div><div class="v">' + v + "</div>" + (s ? '<div class="s">' + s + "</div>" : "") + "</div>"; }
function dl(pairs) { return "<dl>" + pairs.filter(function (p) { return p[1] !== undefined && p[1] !== null && p[1] !== ""; }).map(function (p) { return "<dt>" + esc(p[0]) + "</dt><dd>" + p[1] + "</dd>"; }).join("") + "</dl>"; }
/** cols: [title, key or function(row), "n" for numbers]; cells from functions are trusted HTML, others escaped. */
function table(caption, cols, rows, empty) {
  if (!rows || !rows.length) return '<p class="muted small">' + esc(empty || "none") + "</p>";
  var head = "<tr>" + cols.map(function (c) { return '<th scope="col"' + (c[2] === "n" ? ' class="n"' : "") + ">" + esc(c[0]) + "</th>"; }).join("") + "</tr>";
  var body = rows.map(function (r) {
    return "<tr>" + cols.map(function (c) { var v = typeof c[1] === "function" ? c[1](r) : esc(r[c[1]]); return "<td" + (c[2] === "n" ? ' class="n"' : "") + ">" + v + "</td>"; }).join("") + "</tr>";
  }).join("");
  return '<div class="scroll"><table><caption>' + esc(caption) + "</caption><thead>" + head + "</thead><tbody>" + body + "</tbody></table></div>";
}
function attestationBadge(platform, insecure) {
  if (insecure) return badge((platform || "sim") + " · INSECURE", "bad");
  if (!platform || platform === "unknown" || platform === "unattested") return badge("unattested", "warn");
  return badge(platform + " · verified", "ok");
}
/** Draws a line chart of points [{t, v}] (v null = gap) into an <svg>, with its min/max and a text summary. */
function lineChart(svg, points, unitFmt, label) {
  // Drawn at the element's own pixel size, so that text is never stretched; redrawn with every update.
  var W = Math.max(120, Math.round(svg.clientWidth || 320)), H = Math.max(60, Math.round(svg.clientHeight || 120)), L = 4, R = 4, T = 14, B = 16;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  var pts = points.filter(function (p) { return p.v !== null && isFinite(p.v); });
  var last = pts.length ? pts[pts.length - 1].v : null;
  svg.setAttribute("aria-label", label + ": " + (last === null ? "no data yet" : "latest " + unitFmt(last) + ", " + pts.length + " points"));
  svg.dataset.points = String(pts.length);
  if (pts.length < 1) { svg.innerHTML = '<text x="8" y="' + Math.round(H / 2) + '">no data yet</text>'; return; }
  var t0 = points[0].t, t1 = points[points.length - 1].t; if (t1 === t0) t1 = t0 + 1;
  var max = Math.max.apply(null, pts.map(function (p) { return p.v; })), min = Math.min(0, Math.min.apply(null, pts.map(function (p) { return p.v; })));
  if (max === min) max = min + 1;
  var x = function (t) { return L + ((t - t0) / (t1 - t0)) * (W - L - R); };
  var y = function (v) { return T + (1 - (v - min) / (max - min)) * (H - T - B); };
  var d = "", seg = false, area = "";
  points.forEach(function (p) {
    if (p.v === null || !isFinite(p.v)) { seg = false; return; }
    d += (seg ? " L" : " M") + x(p.t).toFixed(1) + " " + y(p.v).toFixed(1); seg = true;
  });
  if (pts.length === 1) d += " L" + (x(pts[0].t) + 2).toFixed(1) + " " + y(pts[0].v).toFixed(1);
  area = "M" + x(pts[0].t).toFixed(1) + " " + y(min).toFixed(1) + pts.map(function (p) { return " L" + x(p.t).toFixed(1) + " " + y(p.v).toFixed(1); }).join("") + " L" + x(pts[pts.length - 1].t).toFixed(1) + " " + y(min).toFixed(1) + " Z";
  var span = Math.round((t1 - t0) / 1000);
  svg.innerHTML = '<line class="grid" x1="0" x2="' + W + '" y1="' + y(min) + '" y2="' + y(min) + '"/>' +
    '<line class="grid" x1="0" x2="' + W + '" y1="' + T + '" y2="' + T + '" stroke-dasharray="3 3"/>' +
    '<path class="area" d="' + area + '"/><path class="line" d="' + d + '"/>' +
    '<text x="' + (W - R) + '" y="11" text-anchor="end">max ' + esc(unitFmt(max)) + "</text>" +
    '<text x="' + L + '" y="' + (H - 3) + '">' + esc(fmtAge(span)) + " ago</text>" +
    '<text x="' + (W - R) + '" y="' + (H - 3) + '" text-anchor="end">now ' + esc(last === null ? "–" : unitFmt(last)) + "</text>";
}
/** Per-interval rates between consecutive cumulative samples. */
function deltas(samples, key, perSecond) {
  var out = [];
  for (var i = 1; i < samples.length; i++) {
    var a = samples[i - 1], b = samples[i], dt = (b.t - a.t) / 1000;
    out.push({ t: b.t, v: dt > 0 ? (perSecond ? (b[key] - a[key]) / dt : b[key] - a[key]) : null });
  }
  return out;
}
function latencySeries(samples) {
  var out = [];
  for (var i = 1; i < samples.length; i++) {
    var a = samples[i - 1], b = samples[i], n = b.totalCount - a.totalCount;
    out.push({ t: b.t, v: n > 0 ? (b.totalMsSum - a.totalMsSum) / n : null });
  }
  return out;
}
`;

/** The node dashboard: renders a role's /status and history, live from /events. */
export const NODE_JS = String.raw`
var ROLE = document.body.dataset.role;
var samples = [], nodeStatus = {};
var MONEY_LABEL = { client: "spent", worker: "earned", proxy: "fees" };

function moneyCards(p, r1h) {
  if (!p) return card("Payments", "off", "no --payments config");
  var perHour = !r1h || !r1h.seconds ? "" : fmtTon(String(Math.round(r1h.nanoPerHour))) + "/h at the rate of the last " + fmtAge(r1h.seconds);
  if (ROLE === "client") return card("Spent", fmtTon(p.spent), perHour || "signed " + fmtTon(p.signed)) + card("Deposit", fmtTon(p.deposited), "channel " + esc(p.channelStatus || "?")) + card("Remaining", fmtTon(p.available), "redeemed by proxy " + fmtTon(p.redeemed));
  if (ROLE === "worker") return card("Earned", fmtTon(p.earned), perHour || "this run " + fmtTon(p.accruedThisRun)) + card("Paid out", fmtTon(p.paid), "claims on chain " + fmtInt(p.claims)) + card("Unclaimed", fmtTon(p.unclaimed), p.walletBalance ? "wallet " + fmtTon(p.walletBalance) : "");
  return card("Charged clients", fmtTon(p.charged), "signed " + fmtTon(p.signed)) + card("Redeemed", fmtTon(p.redeemed), "batches " + fmtInt((p.transactions || {}).redeemBatches)) + card("Fees", fmtTon(p.fees), perHour || "workers earned " + fmtTon(p.workersEarned));
}

function renderSummary() {
  var s = nodeStatus, r = (s.rates || {})["1m"] || {}, r5 = (s.rates || {})["5m"] || {}, req = s.requests || {}, tok = s.tokens || {};
  var total = req.total !== undefined ? req.total : req.requests;
  $("node-id").textContent = (s.id || "") + " · v" + (s.version || "?") + " · up " + fmtAge(s.uptimeSeconds);
  $("summary").innerHTML =
    card("Requests", fmtInt(total), fmtInt(req.completed) + " done · " + fmtInt(req.failed) + " failed") +
    card("Requests/s (1 min)", fmtRate(r.requestsPerSecond), "5 min: " + fmtRate(r5.requestsPerSecond)) +
    card("Tokens in / out", fmtInt(tok.prompt) + " / " + fmtInt(tok.completion), fmtRate(r.completionTokensPerSecond) + " out/s (1 min)") +
    card("Latency (1 min)", fmtMs(r.meanLatencyMs), "first token " + fmtMs(r.meanTtftMs)) +
    moneyCards(s.payments, (s.rates || {})["1h"]);
}

function renderCharts() {
  lineChart($("chart-requests"), deltas(samples, "requests", true), function (v) { return fmtRate(v) + " req/s"; }, "Requests per second");
  lineChart($("chart-throughput"), deltas(samples, "completionTokens", true), function (v) { return fmtRate(v) + " tok/s"; }, "Throughput, completion tokens per second");
  lineChart($("chart-latency"), latencySeries(samples), fmtMs, "Mean request latency");
  lineChart($("chart-money"), samples.map(function (p) { return { t: p.t, v: p.nano / 1e9 }; }), function (v) { return v.toFixed(4) + " TON"; }, "TON " + MONEY_LABEL[ROLE] + " over time");
}

function attestationBlock(a) {
  if (!a) return '<p class="muted small">no attestation reported</p>';
  var pairs = [["Verdict", attestationBadge(a.platform, a.insecure)], ["Platform", esc(a.platform)], ["Policy", esc(a.policy)], ["Model (bound)", a.model ? "<code>" + esc(typeof a.model === "object" ? JSON.stringify(a.model) : a.model) + "</code>" : ""], ["Claims expire", esc(a.claimsExpire)]];
  var ev = a.evidence;
  if (ev) {
    pairs.push(["Own evidence", (a.insecure ? badge("insecure", "bad") : ev.verified ? badge("verified", "ok") : badge("not verified", "bad")) + " " + esc(ev.verdict) + (ev.problem ? ' <span class="small">' + esc(ev.problem) + "</span>" : "")]);
    pairs.push(["TCB status", esc(ev.tcbStatus || (a.insecure ? "none (sim: no hardware)" : "–"))]);
    pairs.push(["Image digest", "<code>" + esc(ev.imageDigest || "–") + "</code>"]);
    Object.keys(ev.measurements || {}).forEach(function (m) { var v = ev.measurements[m]; pairs.push([m, "<code>" + esc(Array.isArray(v) ? v.join(" ") : v) + "</code>"]); });
    if (ev.gpu) pairs.push(["GPU", esc(ev.gpu)]);
  }
  Object.keys(a).forEach(function (k) {
    if (["platform", "insecure", "policy", "model", "claimsExpire", "warning", "evidence"].indexOf(k) >= 0) return;
    var v = a[k]; pairs.push([k, "<code>" + esc(typeof v === "object" ? JSON.stringify(v) : v) + "</code>"]);
  });
  return dl(pairs) + (a.warning ? '<p class="small"><span class="badge bad">warning</span> ' + esc(a.warning) + "</p>" : "");
}

function peerCell(p) { return attestationBadge((/on ([\w-]+)/.exec(p.peer || "") || [])[1], p.insecure) + ' <span class="small muted">' + esc(p.peer || "") + "</span>"; }

function renderDetails() {
  var s = nodeStatus, html = "";
  if (ROLE === "worker") {
    html += "<h2>Attestation</h2>" + attestationBlock(s.attestation);
    html += "<h3>Model</h3>" + table("Models served", [["model", "id"], ["digest", function (m) { return "<code>" + esc(m.digest || "–") + "</code>"; }], ["context", "contextLength", "n"]], s.models, "no model");
    html += dl([["Backend", esc(s.backend)], ["Load", fmtInt(s.activeRequests) + " / " + fmtInt(s.capacity) + " running"]]);
    html += "<h3>Linked proxies</h3>" + table("Proxies this worker dials", [["address", "address"], ["connected", function (p) { return p.connected ? badge("connected", "ok") : badge("down", "bad"); }], ["attestation", peerCell], ["rtt", function (p) { return fmtMs(p.rttMs); }, "n"], ["last error", "lastError"]], s.peers, "no proxy configured");
    var p = s.payments;
    if (p) html += "<h3>Payouts</h3>" + dl([["Payout address", "<code>" + esc(p.payoutAddress) + "</code>"], ["Proxy contract", "<code>" + esc(p.proxyContract) + "</code>"], ["Network", esc(p.network)], ["Earned", fmtTon(p.earned)], ["Paid", fmtTon(p.paid)], ["Unclaimed", fmtTon(p.unclaimed)], ["Last error", esc(p.lastError || "")]]);
  } else if (ROLE === "proxy") {
    var ws = (s.peers || {}).workers || [], cs = (s.peers || {}).clients || [];
    html += "<h2>Workers</h2>" + table("Workers connected to this proxy", [
      ["worker", function (w) { return w.statusUrl ? '<a href="' + esc(String(w.statusUrl).replace(/\/status$/, "/")) + '">' + esc(w.id) + "</a>" : esc(w.id); }],
      ["models", function (w) { return esc((w.models || []).join(", ")); }],
      ["health", function (w) { return w.enabled ? badge("enabled", "ok") : badge("disabled", "warn") + ' <span class="small">' + esc(w.reason || "") + "</span>"; }],
      ["load", function (w) { return fmtInt(w.active) + " / " + fmtInt(w.capacity); }, "n"],
      ["latency", function (w) { return fmtMs(w.latencyMs); }, "n"],
      ["served", "served", "n"], ["failures", "failures", "n"],
      ["attestation", peerCell]], ws, "no worker connected");
    html += "<h3>Clients</h3>" + table("Clients connected", [["client", "id"], ["requests", "requests", "n"], ["attestation", peerCell], ["since", "connectedSince"]], cs, "no client connected");
    var q = s.queue || {};
    html += "<h3>Queue</h3>" + dl([["Waiting", esc(JSON.stringify(q.waiting || {}))], ["Served after a wait", fmtInt(q.servedAfterWait)], ["Timed out", fmtInt(q.timedOut)], ["Refused (full)", fmtInt(q.refusedFull)], ["Mean wait", fmtMs((q.waitMs || {}).mean)]]);
    var p = s.payments;
    if (p) {
      var chans = p.channels || [];
      html += "<h3>Settlement</h3>" + dl([["Proxy contract", "<code>" + esc(p.proxyContract) + "</code>"], ["Contract balance", fmtTon((p.contract || {}).balance)], ["Paid out to workers", fmtTon((p.contract || {}).paidOut)], ["Signed, not yet redeemed", fmtTon(String(BigInt(p.signed || "0") - BigInt(p.redeemed || "0") > 0n ? BigInt(p.signed || "0") - BigInt(p.redeemed || "0") : 0n))], ["Redeem batches", fmtInt((p.transactions || {}).redeemBatches)], ["Payout vouchers", fmtInt((p.transactions || {}).payoutVouchers)], ["Written off", fmtTon(p.writtenOff)]]);
      if (p.workers) html += table("Worker earnings", [["worker", "id"], ["earned", function (w) { return fmtTon(w.earned); }, "n"], ["voucher", function (w) { return fmtTon(w.voucher); }, "n"]], p.workers, "no worker earned yet");
      if (chans.length) html += table("Client channels", [["channel", function (c) { return "<code>" + esc(String(c.channel).slice(0, 16)) + "…</code>"; }], ["deposit", function (c) { return fmtTon(c.capacity); }, "n"], ["charged", function (c) { return fmtTon(c.charged); }, "n"], ["signed", function (c) { return fmtTon(c.signed); }, "n"], ["owed", function (c) { return fmtTon(c.owed); }, "n"], ["redeemed", function (c) { return fmtTon(c.redeemed); }, "n"]], chans);
    }
  } else {
    var link = (s.peers || [])[0] || {};
    html += "<h2>Proxy and sealing</h2>" + dl([["Proxy", esc(link.address) + " " + (link.connected ? badge("connected", "ok") : badge("down", "bad"))], ["Proxy attestation", link.peer ? peerCell(link) : "–"], ["Sealing", (s.sealing || {}).enabled ? badge("on: only the attested worker reads prompts", "ok") : badge("OFF: the proxy reads prompts", "bad")], ["Receipts verified", fmtInt(((s.sealing || {}).receipts || {}).verified)], ["API", esc(s.api)]]);
    var p = s.payments;
    if (p) html += "<h3>Channel</h3>" + dl([["Channel", "<code>" + esc(p.channel) + "</code>"], ["Network", esc(p.network)], ["Deposit", fmtTon(p.deposited)], ["Spent", fmtTon(p.spent)], ["Remaining", fmtTon(p.available)], ["Disputed", p.disputes ? fmtTon(p.disputes.nano) : "none"]]);
    // A channel per proxy (discovery): each one's funding, opened and topped up on demand within the budget.
    var byProxy = Object.keys(s.paymentsByProxy || {}).map(function (k) { return Object.assign({ proxy: k }, s.paymentsByProxy[k]); });
    var budget = (byProxy.map(function (r) { return (r.funding || {}).budget; }).filter(Boolean)[0]);
    if (byProxy.length) html += "<h3>Channels per proxy</h3>" + (budget ? '<p class="small">Deposit budget: ' + fmtTon(budget.used) + " of " + fmtTon(budget.max) + " used, " + fmtTon(budget.left) + " left</p>" : "") + table("Channel with each proxy", [
      ["proxy", function (r) { return "<code>" + esc(String(r.proxy).slice(0, 16)) + "…</code>"; }],
      ["channel", function (r) { return r.channel ? "<code>" + esc(String(r.channel).slice(0, 16)) + "…</code>" : esc(r.unavailable || "none"); }],
      ["funding", function (r) { var f = r.funding || {}; return f.state ? badge(f.state, f.state === "open" ? "ok" : "warn") + (f.lastError ? '<div class="small muted">' + esc(f.lastError) + "</div>" : "") : "–"; }],
      ["deposit", function (r) { return fmtTon(r.deposited); }, "n"], ["spent", function (r) { return fmtTon(r.spent); }, "n"],
      ["remaining", function (r) { return fmtTon(r.available); }, "n"], ["top-ups", function (r) { return fmtInt((r.funding || {}).topUps); }, "n"]], byProxy);
    html += "<h3>Recent requests</h3>" + table("Latest requests, newest first", [
      ["request", function (r) { return "<code>" + esc(String(r.requestId || "").slice(0, 20)) + "</code>"; }],
      ["model", "model"], ["outcome", function (r) { return r.outcome === "completed" ? badge("ok", "ok") : badge(r.outcome + (r.code ? " " + r.code : ""), "warn"); }],
      ["tokens", function (r) { return fmtInt(r.promptTokens) + " / " + fmtInt(r.completionTokens); }, "n"],
      ["cost", function (r) { return fmtTon(r.costNano); }, "n"],
      ["worker and evidence", function (r) { return esc(r.worker || "–") + (r.evidence ? '<div class="small muted">' + esc(r.evidence) + "</div>" : ""); }]], s.recentRequests, "no request yet");
  }
  $("details").innerHTML = html;
}

function renderAdmin() {
  var a = nodeStatus.admin || {};
  $("admin-state").textContent = a.state || "serving";
  var box = $("admin-actions");
  if (box.dataset.built !== "1") {
    box.innerHTML = !(a.actions || []).length ? '<span class="small muted">this node offers no operator controls</span>' : (a.actions || []).map(function (x) { return '<button type="button" class="secondary" data-action="' + esc(x) + '">' + esc(x) + "</button>"; }).join(" ");
    box.dataset.built = "1";
    box.querySelectorAll("button").forEach(function (b) { b.addEventListener("click", function () { runAdmin(b.dataset.action); }); });
  }
  $("admin-off").hidden = !!a.enabled;
  $("admin-recent").innerHTML = table("Recent operator actions", [["at", "at"], ["action", "action"], ["result", function (r) { return (r.ok ? badge("ok", "ok") : badge("failed", "bad")) + " " + esc(r.message); }]], a.recent, "none yet");
}

function runAdmin(action) {
  var token = $("admin-token").value.trim();
  try { sessionStorage.setItem("cocoon-admin-token", token); } catch (e) {}
  $("admin-result").textContent = action + "…";
  fetch("/admin/" + encodeURIComponent(action), { method: "POST", headers: { authorization: "Bearer " + token } })
    .then(function (r) { return r.json(); })
    .then(function (b) { $("admin-result").textContent = (b.ok ? "done: " : "refused: ") + b.message; return fetch("/status"); })
    .then(function (r) { return r.json(); }).then(function (s) { nodeStatus = s; render(); })
    .catch(function (e) { $("admin-result").textContent = "failed: " + e.message; });
}

function render() {
  document.title = "Cocoon " + ROLE + (nodeStatus.id ? " " + nodeStatus.id : "");
  renderSummary(); renderCharts(); renderDetails(); renderAdmin();
}

function connect() {
  var es = new EventSource("/events");
  es.addEventListener("history", function (e) { var d = JSON.parse(e.data); samples = d.samples; nodeStatus = d.status; $("live").textContent = "live"; $("live").className = "badge ok"; render(); });
  es.addEventListener("sample", function (e) { var d = JSON.parse(e.data); samples.push(d.sample); if (samples.length > 1900) samples.shift(); nodeStatus = d.status; $("live").textContent = "live"; $("live").className = "badge ok"; render(); });
  es.onerror = function () { $("live").textContent = "reconnecting…"; $("live").className = "badge warn"; };
}
try { $("admin-token").value = sessionStorage.getItem("cocoon-admin-token") || ""; } catch (e) {}
connect();
`;
