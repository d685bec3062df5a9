// Intel's TCB-level matching for TDX (after Intel's QVL TcbLevelCheck / TdxModuleCheck / TDRelaunchCheck), as
// described in notes/attestation.md 1.6. Input: the signed TCB info, PCK certificate TCB, TEE_TCB_SVN(_2) from
// the TD report and the QE's TCB status. Output: one status from the vocabulary below with advisory IDs.
import type { ModuleLevel, TcbInfo, TcbLevel, QeIdentity } from "./collateral.js";

export const TCB_STATUSES = [
  "UpToDate",
  "SWHardeningNeeded",
  "ConfigurationNeeded",
  "ConfigurationAndSWHardeningNeeded",
  "TDRelaunchAdvised",
  "TDRelaunchAdvisedConfigurationNeeded",
  "OutOfDate",
  "OutOfDateConfigurationNeeded",
  "Revoked",
  "TCB_NOT_SUPPORTED",
  "TDX_MODULE_MISMATCH",
] as const;
export type TcbStatus = (typeof TCB_STATUSES)[number];

/** Statuses that can never be accepted, whatever the policy says. */
export const REJECTED_TCB_STATUSES: ReadonlySet<string> = new Set(["Revoked", "TCB_NOT_SUPPORTED", "TDX_MODULE_MISMATCH"]);

/** Rank for "minimum TCB status" policies: lower is better. Statuses that are always refused rank highest. */
export function tcbRank(status: string): number {
  const i = (TCB_STATUSES as readonly string[]).indexOf(status);
  return i < 0 ? TCB_STATUSES.length : i;
}

/** TEE_TCB_SVN[1] is the TDX module major version; when it is non-zero, indices 0 and 1 are matched through
 * tdxModuleIdentities instead of the TCB level components. */
const MODULE_VERSION_INDEX = 1;
const MODULE_SVN_INDEX = 0;

export interface PckTcb {
  tcbComponents: number[];
  pceSvn: number;
}

export interface TcbEvaluation {
  status: TcbStatus;
  advisoryIds: string[];
  /** Status of the matched TCB level before module/QE convergence. */
  levelStatus?: string;
  moduleStatus?: string;
  qeStatus: string;
  /** Human explanation when no level matched. */
  reason?: string;
  tcbDate?: string;
}

function sgxMatches(level: TcbLevel, pck: PckTcb): boolean {
  return level.tcb.sgxtcbcomponents.every((c, i) => pck.tcbComponents[i] >= c.svn) && pck.pceSvn >= level.tcb.pcesvn;
}

function tdxMatches(level: TcbLevel, teeTcbSvn: Buffer): boolean {
  const skip = teeTcbSvn[MODULE_VERSION_INDEX] > 0;
  return level.tcb.tdxtcbcomponents.every((c, i) => (skip && i <= MODULE_VERSION_INDEX) || teeTcbSvn[i] >= c.svn);
}

export function moduleIdentityId(teeTcbSvn: Buffer): string {
  return `TDX_${teeTcbSvn[MODULE_VERSION_INDEX].toString(16).toUpperCase().padStart(2, "0")}`;
}

/** QE TCB: first level whose isvsvn <= the QE's ISVSVN. */
export function qeTcbStatus(qe: QeIdentity, isvSvn: number): { status: string; advisoryIds: string[] } {
  const level = qe.tcbLevels.find((l) => l.tcb.isvsvn <= isvSvn);
  if (!level) return { status: "OutOfDate", advisoryIds: [] };
  return { status: level.tcbStatus, advisoryIds: level.advisoryIDs ?? [] };
}

function isConfigNeeded(s: string): boolean {
  return s === "ConfigurationNeeded" || s === "ConfigurationAndSWHardeningNeeded";
}

export function evaluateTdxTcb(args: {
  tcbInfo: TcbInfo;
  pck: PckTcb;
  teeTcbSvn: Buffer;
  teeTcbSvn2?: Buffer;
  qe: { status: string; advisoryIds: string[] };
}): TcbEvaluation {
  const { tcbInfo, pck, teeTcbSvn, teeTcbSvn2, qe } = args;
  const sgxLevel = tcbInfo.tcbLevels.find((l) => sgxMatches(l, pck));
  const level = tcbInfo.tcbLevels.find((l) => sgxMatches(l, pck) && tdxMatches(l, teeTcbSvn));
  if (!sgxLevel || !level) {
    const reason = !sgxLevel
      ? `no TCB level matches the platform's SGX components [${pck.tcbComponents.join(",")}] and PCESVN ${pck.pceSvn}`
      : `no TCB level matches TEE_TCB_SVN ${teeTcbSvn.toString("hex")}`;
    return { status: "TCB_NOT_SUPPORTED", advisoryIds: [], qeStatus: qe.status, reason };
  }
  let status: string = level.tcbStatus;
  const advisories = new Set<string>(level.advisoryIDs ?? []);
  let moduleStatus: string | undefined;
  let moduleLevels: ModuleLevel[] | undefined;
  if (teeTcbSvn[MODULE_VERSION_INDEX] > 0) {
    const id = moduleIdentityId(teeTcbSvn);
    const identity = tcbInfo.tdxModuleIdentities?.find((m) => m.id.toUpperCase() === id);
    if (!identity) {
      return { status: "TDX_MODULE_MISMATCH", advisoryIds: [], qeStatus: qe.status, levelStatus: level.tcbStatus, reason: `TCB info has no TDX module identity ${id}` };
    }
    moduleLevels = identity.tcbLevels;
    const ml = identity.tcbLevels.find((l) => l.tcb.isvsvn <= teeTcbSvn[MODULE_SVN_INDEX]);
    if (!ml) {
      return {
        status: "TCB_NOT_SUPPORTED",
        advisoryIds: [],
        qeStatus: qe.status,
        levelStatus: level.tcbStatus,
        reason: `TDX module ${id} SVN ${teeTcbSvn[MODULE_SVN_INDEX]} matches no module TCB level`,
      };
    }
    moduleStatus = ml.tcbStatus;
    for (const a of ml.advisoryIDs ?? []) advisories.add(a);
    if (moduleStatus === "Revoked") status = "Revoked";
    else if (moduleStatus === "OutOfDate") {
      if (status === "UpToDate" || status === "SWHardeningNeeded") status = "OutOfDate";
      else if (isConfigNeeded(status)) status = "OutOfDateConfigurationNeeded";
    }
  }
  // TD relaunch (TDX 1.5 bodies only): the platform was updated after the TD launched; relaunching would
  // give an up-to-date TD.
  if (
    teeTcbSvn2 &&
    qe.status !== "OutOfDate" &&
    qe.status !== "Revoked" &&
    ["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"].includes(sgxLevel.tcbStatus) &&
    (status === "OutOfDate" || status === "OutOfDateConfigurationNeeded") &&
    moduleStatus === "OutOfDate"
  ) {
    const newest = tcbInfo.tcbLevels[0];
    const newestModule = moduleLevels?.[0];
    const svn2OkForLevel = tdxMatches(newest, teeTcbSvn2);
    const svn2OkForModule = !newestModule || teeTcbSvn2[MODULE_SVN_INDEX] >= newestModule.tcb.isvsvn;
    if (svn2OkForLevel && svn2OkForModule) {
      status = status === "OutOfDateConfigurationNeeded" || isConfigNeeded(sgxLevel.tcbStatus) ? "TDRelaunchAdvisedConfigurationNeeded" : "TDRelaunchAdvised";
    }
  }
  // Converge with the QE's own TCB status.
  if (qe.status === "Revoked") status = "Revoked";
  else if (qe.status === "OutOfDate") {
    if (status === "UpToDate" || status === "SWHardeningNeeded") status = "OutOfDate";
    else if (isConfigNeeded(status)) status = "OutOfDateConfigurationNeeded";
  }
  for (const a of qe.advisoryIds) advisories.add(a);
  const known = (TCB_STATUSES as readonly string[]).includes(status);
  return {
    status: known ? (status as TcbStatus) : "TCB_NOT_SUPPORTED",
    advisoryIds: [...advisories].sort(),
    levelStatus: level.tcbStatus,
    moduleStatus,
    qeStatus: qe.status,
    tcbDate: level.tcbDate,
    reason: known ? undefined : `unknown TCB status ${JSON.stringify(status)} in TCB info`,
  };
}
