// The dashboard page each node serves at `/` on its status port: a static shell filled by the inlined script from
// the node's live feed (/events). Same page for every role; the role decides the sections.
import { COMMON_JS, NODE_JS, STYLE } from "./assets.js";
import type { NodeRole } from "../observability/metrics.js";

const TITLES: Record<NodeRole, string> = { client: "Cocoon client", proxy: "Cocoon proxy", worker: "Cocoon worker" };
const MONEY_CHART: Record<NodeRole, string> = { client: "TON spent", proxy: "Fees earned (TON)", worker: "TON earned" };

const cache = new Map<NodeRole, string>();

export function dashboardHtml(role: NodeRole): string {
  let html = cache.get(role);
  if (html) return html;
  html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${TITLES[role]}</title>
<style>${STYLE}</style>
</head>
<body data-role="${role}">
<header>
  <h1>${TITLES[role]} <span id="node-id" class="muted small"></span></h1>
  <div class="row small"><a href="/status">status JSON</a> <a href="/metrics">metrics</a> <span id="live" class="badge warn" role="status" aria-live="polite">connecting…</span></div>
</header>
<main>
  <section class="wide" aria-labelledby="h-summary">
    <h2 id="h-summary">Summary</h2>
    <div id="summary" class="cards"></div>
  </section>
  <section class="wide" aria-labelledby="h-charts">
    <h2 id="h-charts">Over time</h2>
    <div class="charts">
      <figure><figcaption id="c0">Requests per second</figcaption><svg id="chart-requests" class="chart" role="img" aria-labelledby="c0"></svg></figure>
      <figure><figcaption id="c1">Throughput (completion tokens/s)</figcaption><svg id="chart-throughput" class="chart" role="img" aria-labelledby="c1"></svg></figure>
      <figure><figcaption id="c2">Mean latency per interval</figcaption><svg id="chart-latency" class="chart" role="img" aria-labelledby="c2"></svg></figure>
      <figure><figcaption id="c3">${MONEY_CHART[role]}</figcaption><svg id="chart-money" class="chart" role="img" aria-labelledby="c3"></svg></figure>
    </div>
  </section>
  <section id="details" class="wide" aria-live="off"></section>
  <section class="wide" aria-labelledby="h-admin">
    <h2 id="h-admin">Operator controls <span class="badge warn" id="admin-state">serving</span></h2>
    <p id="admin-off" class="small muted" hidden>Controls are off on this node: start it with <code>--admin-token-file FILE</code>.</p>
    <div class="row">
      <div style="flex: 1 1 16rem"><label for="admin-token">Admin token (from the node's --admin-token-file)</label><input id="admin-token" type="password" autocomplete="off"></div>
      <div id="admin-actions" class="row" role="group" aria-label="Operator actions"></div>
    </div>
    <p id="admin-result" class="small" role="status" aria-live="polite"></p>
    <div id="admin-recent"></div>
  </section>
</main>
<script>${COMMON_JS}${NODE_JS}</script>
</body>
</html>
`;
  cache.set(role, html);
  return html;
}
