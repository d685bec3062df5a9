// The devnet's own page: every node of the local network on one screen (links to each node's dashboard, balances,
// throughput and money over time) and a chat box that sends a request through the network and shows the answer as it
// streams in, with its cost and the serving worker's attestation. Served by `cocoon devnet` (devnet-server.ts).
import { COMMON_JS, STYLE } from "./assets.js";

const DEVNET_JS = String.raw`
var nodes = [], statuses = {}, series = [];

function nodeRow(n) {
  var s = statuses[n.name] || {}, req = s.requests || {}, tok = s.tokens || {}, p = s.payments || {}, a = s.attestation || {};
  var money = n.role === "client" ? "spent " + fmtTon(p.spent) : n.role === "worker" ? "earned " + fmtTon(p.earned) : "fees " + fmtTon(p.fees);
  var total = req.total !== undefined ? req.total : req.requests;
  return { name: n.name, role: n.role, dashboard: n.dashboard, requests: total, tokens: fmtInt(tok.prompt) + " / " + fmtInt(tok.completion), money: s.payments ? money : "unpaid", attestation: attestationBadge(a.platform, a.insecure), up: s.id ? badge("up", "ok") : badge("no answer", "bad") };
}

function render() {
  $("nodes").innerHTML = table("Nodes of this devnet", [
    ["node", function (r) { return '<a href="' + esc(r.dashboard) + '">' + esc(r.name) + "</a>"; }], ["role", "role"], ["state", function (r) { return r.up; }],
    ["requests", "requests", "n"], ["tokens in / out", "tokens", "n"], ["money", "money", "n"], ["attestation", function (r) { return r.attestation; }]], nodes.map(nodeRow), "starting…");
  var c = (statuses.client || {}).payments || {}, proxy = (statuses.proxy || {}).payments || {};
  var earned = nodes.filter(function (n) { return n.role === "worker"; }).reduce(function (sum, n) { return sum + BigInt(((statuses[n.name] || {}).payments || {}).earned || "0"); }, 0n);
  $("balances").innerHTML = card("Client deposit", fmtTon(c.deposited), "channel " + esc(c.channelStatus || "–")) + card("Client spent", fmtTon(c.spent), "signed " + fmtTon(c.signed)) +
    card("Client remaining", fmtTon(c.available)) + card("Workers earned", fmtTon(String(earned))) + card("Proxy fees", fmtTon(proxy.fees), "redeemed " + fmtTon(proxy.redeemed));
  lineChart($("chart-tokens"), deltas(series, "tokens", true), function (v) { return fmtRate(v) + " tok/s"; }, "Network throughput, completion tokens per second");
  lineChart($("chart-spent"), series.map(function (p) { return { t: p.t, v: p.spent / 1e9 }; }), function (v) { return v.toFixed(4) + " TON"; }, "TON spent by the client");
}

function poll() {
  return Promise.all(nodes.map(function (n) {
    return fetch("/api/status/" + encodeURIComponent(n.name)).then(function (r) { return r.ok ? r.json() : {}; }).catch(function () { return {}; }).then(function (s) { statuses[n.name] = s; });
  })).then(function () {
    var proxyTok = (statuses.proxy || {}).tokens || {}, spent = ((statuses.client || {}).payments || {}).spent;
    series.push({ t: Date.now(), tokens: num(proxyTok.completion), spent: num(spent) });
    if (series.length > 900) series.shift();
    render();
  });
}

function chat(ev) {
  ev.preventDefault();
  var prompt = $("prompt").value.trim(); if (!prompt) { $("prompt").focus(); return; }
  var btn = $("send"); btn.disabled = true;
  $("answer").textContent = ""; $("chat-meta").innerHTML = ""; $("chat-state").textContent = "sending…";
  var t0 = performance.now(), first = 0, usage = null, headers = null, text = "";
  // How the answer arrived (network reads that carried text, SSE deltas): the browser test checks it streamed.
  var stats = window.cocoonChat = { reads: 0, deltas: 0 };
  fetch("/api/chat", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: $("model").value, max_tokens: num($("max-tokens").value) || 60, stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: prompt }] }) })
    .then(function (res) {
      headers = res.headers;
      if (!res.ok) return res.text().then(function (t) { throw new Error(res.status + ": " + t); });
      $("chat-state").textContent = "streaming…";
      var reader = res.body.getReader(), dec = new TextDecoder(), buf = "";
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) return;
          buf += dec.decode(r.value, { stream: true });
          var parts = buf.split("\n\n"), before = stats.deltas; buf = parts.pop();
          parts.forEach(function (part) {
            var line = part.split("\n").filter(function (l) { return l.indexOf("data: ") === 0; }).map(function (l) { return l.slice(6); }).join("");
            if (!line || line === "[DONE]") return;
            var o = JSON.parse(line);
            if (o.error) throw new Error(o.error.message);
            if (o.usage) usage = o.usage;
            var d = o.choices && o.choices[0] && o.choices[0].delta && o.choices[0].delta.content;
            if (d) { if (!first) first = performance.now(); text += d; stats.deltas++; $("answer").textContent = text; }
          });
          if (stats.deltas > before) stats.reads++;
          return pump();
        });
      }
      return pump();
    })
    .then(function () {
      $("chat-state").textContent = "done in " + fmtMs(performance.now() - t0) + " (first token " + fmtMs(first ? first - t0 : null) + ")";
      var att = headers.get("x-cocoon-attestation") || "";
      $("chat-meta").innerHTML = dl([["Cost", usage && usage.total_cost !== undefined ? fmtTon(usage.total_cost) : "free (no payments)"], ["Tokens", usage ? fmtInt(usage.prompt_tokens) + " in / " + fmtInt(usage.completion_tokens) + " out" : "–"],
        ["Worker", esc(headers.get("x-cocoon-worker") || "–")], ["Attestation", (/INSECURE/.test(att) ? badge("INSECURE", "bad") + " " : "") + "<code>" + esc(att) + "</code>"],
        ["Sealed", esc(headers.get("x-cocoon-sealed") || "–")], ["Request id", "<code>" + esc(headers.get("x-request-id") || "–") + "</code>"]]);
      $("chat-meta").dataset.done = "1";
    })
    .catch(function (e) { $("chat-state").textContent = "failed: " + e.message; })
    .then(function () { btn.disabled = false; return poll(); });
}

fetch("/api/nodes").then(function (r) { return r.json(); }).then(function (d) {
  nodes = d.nodes;
  $("api").textContent = d.api;
  var sel = $("model"); sel.innerHTML = (d.models.length ? d.models : ["kjv-char-llama"]).map(function (m) { return "<option>" + esc(m) + "</option>"; }).join("");
  poll(); setInterval(poll, 2000);
});
$("chat-form").addEventListener("submit", chat);
`;

export function devnetHtml(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cocoon devnet</title>
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>Cocoon devnet <span class="muted small">a whole network on this machine</span></h1>
  <div class="small">API: <code id="api"></code> <span class="badge bad">sim attestation: INSECURE development stand-in</span></div>
</header>
<main>
  <section aria-labelledby="h-chat">
    <h2 id="h-chat">Chat through the network</h2>
    <form id="chat-form">
      <label for="prompt">Prompt</label>
      <textarea id="prompt" rows="3">And God said</textarea>
      <div class="row" style="margin-top:.5rem">
        <div><label for="model">Model</label><select id="model"></select></div>
        <div style="width:7rem"><label for="max-tokens">Max tokens</label><input id="max-tokens" type="number" min="1" max="512" value="60"></div>
        <button id="send" type="submit" style="align-self:flex-end">Send</button>
      </div>
    </form>
    <p id="chat-state" class="small muted" role="status" aria-live="polite"></p>
    <h3 id="h-answer">Answer</h3>
    <div id="answer" aria-labelledby="h-answer" aria-live="polite"></div>
    <div id="chat-meta" style="margin-top:.6rem"></div>
  </section>
  <section aria-labelledby="h-balances">
    <h2 id="h-balances">Balances</h2>
    <div id="balances" class="cards"></div>
    <div class="charts" style="margin-top:.8rem">
      <figure><figcaption id="d1">Network throughput (completion tokens/s)</figcaption><svg id="chart-tokens" class="chart" role="img" aria-labelledby="d1"></svg></figure>
      <figure><figcaption id="d2">TON spent by the client</figcaption><svg id="chart-spent" class="chart" role="img" aria-labelledby="d2"></svg></figure>
    </div>
  </section>
  <section class="wide" aria-labelledby="h-nodes">
    <h2 id="h-nodes">Nodes</h2>
    <div id="nodes"></div>
    <p class="small muted">Each node's own dashboard (linked) shows its details live; <code>/metrics</code> on each is for Prometheus.</p>
  </section>
</main>
<script>${COMMON_JS}${DEVNET_JS}</script>
</body>
</html>
`;
}
