// A hand-written grouped bar chart in SVG (no chart dependency): groups of bars, one colour per series,
// linear or log10 scale, value labels on the bars, missing values drawn as "n/a" / "fails".
export interface BarGroup {
  label: string;
  /** One value per series; undefined = not measured, null = failed. */
  values: (number | undefined | null)[];
}

export interface BarChart {
  title: string;
  unit: string;
  series: { name: string; color: string }[];
  groups: BarGroup[];
  log?: boolean;
  /** Digits of the value labels. */
  digits?: number;
}

const W = 860;
const PANEL_H = 300;
const MARGIN = { left: 70, right: 20, top: 40, bottom: 60 };

export const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

/** One chart panel as an SVG <g> translated to y = `top`. */
export function panel(c: BarChart, top: number): string {
  const plotW = W - MARGIN.left - MARGIN.right;
  const plotH = PANEL_H - MARGIN.top - MARGIN.bottom;
  const finite = c.groups.flatMap((g) => g.values).filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  const positive = finite.filter((v) => v > 0);
  const maxV = niceMax(Math.max(1e-9, ...finite));
  const minLog = c.log ? Math.floor(Math.log10(Math.min(...(positive.length ? positive : [1])))) : 0;
  const maxLog = c.log ? Math.ceil(Math.log10(Math.max(...(positive.length ? positive : [10])))) : 0;
  const y = (v: number): number => {
    if (c.log) {
      const lv = Math.log10(Math.max(v, 10 ** minLog));
      return plotH - ((lv - minLog) / Math.max(1, maxLog - minLog)) * plotH;
    }
    return plotH - (Math.max(0, v) / maxV) * plotH;
  };
  const out: string[] = [`<g transform="translate(${MARGIN.left},${top + MARGIN.top})">`];
  out.push(`<text x="${plotW / 2}" y="-18" text-anchor="middle" font-size="15" font-weight="bold">${esc(c.title)}</text>`);
  const ticks = c.log ? Array.from({ length: maxLog - minLog + 1 }, (_, i) => 10 ** (minLog + i)) : [0, 0.25, 0.5, 0.75, 1].map((f) => f * maxV);
  for (const t of ticks) {
    const ty = y(t).toFixed(1);
    out.push(`<line x1="0" x2="${plotW}" y1="${ty}" y2="${ty}" stroke="#ddd"/>`);
    out.push(`<text x="-6" y="${ty}" dy="4" text-anchor="end" font-size="11">${t >= 1000 ? `${t / 1000}k` : +t.toFixed(2)}</text>`);
  }
  out.push(`<text transform="rotate(-90)" x="${-plotH / 2}" y="-52" text-anchor="middle" font-size="12">${esc(c.unit)}${c.log ? " (log scale)" : ""}</text>`);
  const groupW = plotW / Math.max(1, c.groups.length);
  const barW = (groupW * 0.8) / Math.max(1, c.series.length);
  c.groups.forEach((g, gi) => {
    const gx = gi * groupW + groupW * 0.1;
    g.values.forEach((v, si) => {
      const x = gx + si * barW;
      const s = c.series[si];
      if (typeof v === "number" && Number.isFinite(v)) {
        const top = y(v);
        out.push(`<rect x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(plotH - top).toFixed(1)}" fill="${s.color}"><title>${esc(`${s.name}, ${g.label}: ${v.toFixed(c.digits ?? 1)} ${c.unit}`)}</title></rect>`);
        out.push(`<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(top - 3).toFixed(1)}" text-anchor="middle" font-size="9">${v.toFixed(c.digits ?? 0)}</text>`);
      } else {
        out.push(`<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${plotH - 4}" text-anchor="middle" font-size="9" fill="#b00">${v === null ? "fails" : "n/a"}</text>`);
      }
    });
    out.push(`<text x="${(gx + groupW * 0.4).toFixed(1)}" y="${plotH + 16}" text-anchor="middle" font-size="12">${esc(g.label)}</text>`);
  });
  out.push(`<line x1="0" x2="${plotW}" y1="${plotH}" y2="${plotH}" stroke="#333"/>`);
  c.series.forEach((s, i) => {
    const lx = i * 190;
    out.push(`<rect x="${lx}" y="${plotH + 30}" width="12" height="12" fill="${s.color}"/><text x="${lx + 16}" y="${plotH + 40}" font-size="12">${esc(s.name)}</text>`);
  });
  out.push("</g>");
  return out.join("\n");
}

/** Stacks panels into one SVG document with a footnote line. */
export function chartSvg(panels: BarChart[], footnote: string): string {
  const h = panels.length * PANEL_H + 30;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif">`,
    `<rect width="${W}" height="${h}" fill="white"/>`,
    ...panels.map((p, i) => panel(p, i * PANEL_H)),
    `<text x="${W / 2}" y="${h - 10}" text-anchor="middle" font-size="11" fill="#555">${esc(footnote)}</text>`,
    "</svg>",
    "",
  ].join("\n");
}
