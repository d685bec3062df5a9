// Summarises a V8 CPU profile (.cpuprofile, as written by `node --cpu-prof`): the frames with the most self
// time, and the share of the whole sampled time each takes. Used for the profile notes in docs/.
import { readFileSync, writeFileSync } from "node:fs";

interface CpuNode {
  parent?: number;
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Frame {
  name: string;
  where: string;
  selfMs: number;
  share: number;
}

/**
 * Keeps only the samples of a time window, given as ms before the profile's end (a process profiled from its start
 * until it exits: the window of a load run, without start-up and shutdown), and the call-tree nodes they use.
 * Rewrites the file; returns the sampled ms kept.
 */
export function trimProfile(file: string, fromMsBeforeEnd: number, toMsBeforeEnd: number): number {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const from = p.endTime - fromMsBeforeEnd * 1000;
  const to = p.endTime - toMsBeforeEnd * 1000;
  const samples: number[] = [];
  const deltas: number[] = [];
  let t = p.startTime;
  let last = from;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < from || t > to) continue;
    samples.push(p.samples[i]!);
    deltas.push(t - last);
    last = t;
  }
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keep = new Set<number>();
  for (const id of new Set(samples)) for (let x: number | undefined = id; x !== undefined && !keep.has(x); x = parent.get(x)) keep.add(x);
  const nodes = p.nodes.filter((n) => keep.has(n.id)).map((n) => ({ ...n, children: (n.children ?? []).filter((c) => keep.has(c)) }));
  writeFileSync(file, JSON.stringify({ ...p, nodes, samples, timeDeltas: deltas, startTime: from, endTime: Math.min(to, p.endTime) }));
  return (Math.min(to, p.endTime) - from) / 1000;
}

/** The frames with the most self time (idle and GC are kept: they say how busy the process was). */
export function topFrames(file: string, n = 15): { totalMs: number; idleShare: number; frames: Frame[] } {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const self = new Map<string, { name: string; where: string; us: number }>();
  let total = 0;
  let idle = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i]);
    const dt = p.timeDeltas[i] ?? 0;
    if (!node) continue;
    total += dt;
    const f = node.callFrame;
    if (f.functionName === "(idle)") idle += dt;
    const where = f.url ? `${f.url.replace(/^.*\/(node_modules|dist|src)\//, "$1/").replace(/^node:/, "node:")}:${f.lineNumber + 1}` : "";
    const key = `${f.functionName}|${where}`;
    const e = self.get(key) ?? { name: f.functionName || "(anonymous)", where, us: 0 };
    e.us += dt;
    self.set(key, e);
  }
  const frames = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, n)
    .map((e) => ({ name: e.name, where: e.where, selfMs: e.us / 1000, share: total ? e.us / total : 0 }));
  return { totalMs: total / 1000, idleShare: total ? idle / total : 0, frames };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const f of process.argv.slice(2)) {
    const t = topFrames(f, 25);
    console.log(`\n${f}: ${t.totalMs.toFixed(0)} ms sampled, idle ${(t.idleShare * 100).toFixed(0)}%`);
    for (const x of t.frames) console.log(`  ${(x.share * 100).toFixed(1).padStart(5)}%  ${x.selfMs.toFixed(0).padStart(6)} ms  ${x.name}  ${x.where}`);
  }
}
