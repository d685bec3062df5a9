// CPU time of processes (and their direct children, e.g. nginx's worker) from /proc, in ms. Linux only;
// returns NaN where /proc is unavailable, so callers print n/a instead of a wrong number.
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux x86-64 and arm64). */
const USER_HZ = 100;
/** Fields of /proc/<pid>/stat after the ")" that ends the command name: state is [0], ppid [1], utime [11], stime [12]. */
const PPID_FIELD = 1;
const UTIME_FIELD = 11;
const STIME_FIELD = 12;

function statFields(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

function childPids(pid: number): number[] {
  try {
    return readdirSync("/proc")
      .filter((d) => /^\d+$/.test(d))
      .map(Number)
      .filter((p) => Number(statFields(p)?.[PPID_FIELD]) === pid);
  } catch {
    return [];
  }
}

/** Total user+system CPU ms of the processes and their direct children; NaN if none could be read. */
export function cpuMs(pids: number[]): number {
  let ticks = 0;
  let read = 0;
  for (const pid of [...pids, ...pids.flatMap(childPids)]) {
    const f = statFields(pid);
    if (!f) continue;
    ticks += Number(f[UTIME_FIELD]) + Number(f[STIME_FIELD]);
    read++;
  }
  return read ? (ticks * 1000) / USER_HZ : Number.NaN;
}
