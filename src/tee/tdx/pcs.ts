// TDX collateral from a PCCS or Intel's PCS (API v4), cached on disk and verified on every load.
//
// Requests (Intel PCS v4 / PCCS v4 shapes):
//   GET {base}/tdx/certification/v4/tcb?fmspc=<hex>        body {"tcbInfo":{...},"signature":"<hex r||s>"},
//                                                          header TCB-Info-Issuer-Chain (URL-encoded PEM)
//   GET {base}/tdx/certification/v4/qe/identity            body {"enclaveIdentity":{...},"signature":"<hex>"},
//                                                          header SGX-Enclave-Identity-Issuer-Chain
//   GET {base}/sgx/certification/v4/pckcrl?ca=<platform|processor>&encoding=der
//                                                          body DER CRL, header SGX-PCK-CRL-Issuer-Chain
//   root CA CRL: {base}/sgx/certification/v4/rootcacrl (PCCS; DER or hex text), or for Intel's PCS the CRL
//                distribution point https://certificates.trustedservices.intel.com/IntelSGXRootCA.der
// The signed bytes of TCB info / QE identity are the exact `{...}` text inside the body: it is cut out, never
// re-serialized. The result is QuoteCollateralV3 (what verifyTdxQuote and the evidence bundle carry).
//
// Cache: one JSON file per (FMSPC, PCK CA) under the cache directory. A cached entry is trusted only after its
// signatures, chains and CRL signatures verify again at load time; it is refreshed before the earliest
// nextUpdate (REFRESH_MARGIN_MS), and kept in use while the service is unreachable as long as it is fresh.
import { X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkCrlFresh, parseCrl, verifyCrlSignature } from "../crl.js";
import { errorText } from "../errors.js";
import { trustedIntelRootFor } from "../roots/test-roots.js";
import { splitPem, subjectCN, verifyChainToRoot } from "../x509.js";
import { QeIdentitySchema, TcbInfoSchema, collateralBytes, parseCollateral, parseSignedJson, type QuoteCollateralV3 } from "./collateral.js";
import { parsePckExtension } from "./pck.js";
import { parseTdxQuote } from "./quote.js";
import { p1363 } from "./verify.js";

export const DEFAULT_PCCS_URL = "https://api.trustedservices.intel.com";
const INTEL_ROOT_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";
/** Refresh cached collateral this long before its earliest nextUpdate. */
export const REFRESH_MARGIN_MS = 24 * 60 * 60 * 1000;
const FETCH_TIMEOUT_MS = 15_000;

export type PckCa = "platform" | "processor";

export class CollateralUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CollateralUnavailableError";
  }
}

/** Cuts the raw text of a top-level object member out of JSON text (the exact bytes a signature covers). */
export function rawJsonMember(text: string, key: string): string {
  const at = text.indexOf(`"${key}"`);
  if (at < 0) throw new Error(`response has no "${key}"`);
  let i = text.indexOf("{", at + key.length + 2);
  if (i < 0 || text.slice(at + key.length + 2, i).trim() !== ":") throw new Error(`"${key}" is not an object`);
  const start = i;
  let depth = 0;
  let inString = false;
  for (; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return text.slice(start, i + 1);
  }
  throw new Error(`"${key}" is not a complete JSON object`);
}

/** Checks the collateral's own signatures, chains and CRL signatures (not the quote). Returns its earliest expiry. */
export function verifyCollateralSignatures(col: QuoteCollateralV3, now: Date, rootPem?: string): { nextUpdate: Date; tcbEvaluationDataNumber: number; fmspc: string } {
  const root = rootPem ?? trustedIntelRootFor(splitPem(col.tcb_info_issuer_chain));
  const tcbChain = verifyChainToRoot(splitPem(col.tcb_info_issuer_chain), root, now, "TCB info signing");
  if (!p1363("sha256", Buffer.from(col.tcb_info, "utf8"), tcbChain[0].publicKey, collateralBytes(col.tcb_info_signature, "tcb_info_signature"))) {
    throw new Error("TCB info signature does not verify (altered, or signed by someone else)");
  }
  const qeChain = verifyChainToRoot(splitPem(col.qe_identity_issuer_chain), root, now, "QE identity signing");
  if (!p1363("sha256", Buffer.from(col.qe_identity, "utf8"), qeChain[0].publicKey, collateralBytes(col.qe_identity_signature, "qe_identity_signature"))) {
    throw new Error("QE identity signature does not verify (altered, or signed by someone else)");
  }
  const crlChain = verifyChainToRoot(splitPem(col.pck_crl_issuer_chain), root, now, "PCK CRL issuer");
  const pckCrl = parseCrl(collateralBytes(col.pck_crl, "pck_crl"), "PCK CRL");
  verifyCrlSignature(pckCrl, crlChain[0], "PCK CRL");
  checkCrlFresh(pckCrl, now, "PCK CRL");
  const rootCrl = parseCrl(collateralBytes(col.root_ca_crl, "root_ca_crl"), "root CA CRL");
  verifyCrlSignature(rootCrl, crlChain[crlChain.length - 1], "root CA CRL");
  checkCrlFresh(rootCrl, now, "root CA CRL");
  const tcb = parseSignedJson(col.tcb_info, TcbInfoSchema, "TCB info");
  const qe = parseSignedJson(col.qe_identity, QeIdentitySchema, "QE identity");
  const expiries = [new Date(tcb.nextUpdate), new Date(qe.nextUpdate), pckCrl.nextUpdate!, rootCrl.nextUpdate!];
  for (const [what, issued, next] of [["TCB info", tcb.issueDate, tcb.nextUpdate], ["QE identity", qe.issueDate, qe.nextUpdate]] as const) {
    if (now < new Date(issued) || now > new Date(next)) throw new Error(`${what} is valid ${issued} .. ${next}, not at ${now.toISOString()}`);
  }
  return { nextUpdate: new Date(Math.min(...expiries.map((d) => d.getTime()))), tcbEvaluationDataNumber: tcb.tcbEvaluationDataNumber, fmspc: tcb.fmspc.toUpperCase() };
}

/** FMSPC and PCK CA kind of a quote (from its PCK certificate), the key collateral is fetched for. */
export function collateralKeyOfQuote(quote: Buffer): { fmspc: string; ca: PckCa } {
  const q = parseTdxQuote(quote);
  const [leaf, intermediate] = splitPem(q.pckChainPem);
  if (!leaf || !intermediate) throw new Error("TDX quote carries no PCK certificate chain, so its FMSPC is unknown");
  const fmspc = parsePckExtension(leaf).fmspc;
  const cn = subjectCN(new X509Certificate(intermediate));
  return { fmspc, ca: /Processor/i.test(cn) ? "processor" : "platform" };
}

export interface PcsClientOptions {
  /** PCCS or PCS base URL (default Intel's PCS). */
  baseUrl?: string;
  /** Where the root CA CRL comes from (default: the PCCS's rootcacrl, or Intel's distribution point for PCS). */
  rootCrlUrl?: string;
  fetchImpl?: typeof fetch;
  timeoutMs?: number;
}

async function get(url: string, o: PcsClientOptions): Promise<Response> {
  const f = o.fetchImpl ?? fetch;
  let res: Response;
  try {
    res = await f(url, { signal: AbortSignal.timeout(o.timeoutMs ?? FETCH_TIMEOUT_MS) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new CollateralUnavailableError(`collateral service unreachable at ${url} (${cause?.code ?? cause?.message ?? errorText(e)}); check --pccs and the network, or run a PCCS next to the node`);
  }
  if (!res.ok) throw new CollateralUnavailableError(`collateral service answered ${res.status} ${res.statusText} for ${url}${res.status === 404 ? " (unknown FMSPC, or not a PCS/PCCS v4 endpoint)" : ""}`);
  return res;
}

function issuerChain(res: Response, names: string[], url: string): string {
  for (const n of names) {
    const v = res.headers.get(n);
    if (v) return decodeURIComponent(v);
  }
  throw new CollateralUnavailableError(`collateral service response for ${url} lacks the ${names[0]} header`);
}

async function crlBytes(res: Response): Promise<Buffer> {
  const body = Buffer.from(await res.arrayBuffer());
  const text = body.toString("latin1").trim();
  if (/^([0-9a-fA-F]{2})+$/.test(text)) return Buffer.from(text, "hex"); // PCCS may answer hex text
  if (text.startsWith("-----BEGIN X509 CRL-----")) return Buffer.from(text.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
  return body;
}

/** Fetches TDX collateral for one FMSPC from a PCS/PCCS (no verification here; see verifyCollateralSignatures). */
export async function fetchTdxCollateral(fmspc: string, ca: PckCa, o: PcsClientOptions = {}): Promise<QuoteCollateralV3> {
  const base = (o.baseUrl ?? DEFAULT_PCCS_URL).replace(/\/+$/, "");
  if (!/^[0-9a-fA-F]{12}$/.test(fmspc)) throw new Error(`FMSPC must be 12 hex characters, got "${fmspc}"`);
  const tcbUrl = `${base}/tdx/certification/v4/tcb?fmspc=${fmspc.toUpperCase()}`;
  const qeUrl = `${base}/tdx/certification/v4/qe/identity`;
  const crlUrl = `${base}/sgx/certification/v4/pckcrl?ca=${ca}&encoding=der`;
  const rootUrl = o.rootCrlUrl ?? (base === DEFAULT_PCCS_URL ? INTEL_ROOT_CRL_URL : `${base}/sgx/certification/v4/rootcacrl`);
  const [tcbRes, qeRes, crlRes, rootRes] = await Promise.all([get(tcbUrl, o), get(qeUrl, o), get(crlUrl, o), get(rootUrl, o)]);
  const tcbText = await tcbRes.text();
  const qeText = await qeRes.text();
  const sig = (text: string, url: string): string => {
    const m = /"signature"\s*:\s*"([0-9a-fA-F]+)"/.exec(text);
    if (!m) throw new CollateralUnavailableError(`collateral service response for ${url} has no signature`);
    return m[1].toLowerCase();
  };
  let tcbInfo: string;
  let qeIdentity: string;
  try {
    tcbInfo = rawJsonMember(tcbText, "tcbInfo");
    qeIdentity = rawJsonMember(qeText, "enclaveIdentity");
  } catch (e) {
    throw new CollateralUnavailableError(`collateral service answered something that is not PCS v4 JSON: ${errorText(e)}`);
  }
  return parseCollateral({
    tcb_info_issuer_chain: issuerChain(tcbRes, ["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"], tcbUrl),
    tcb_info: tcbInfo,
    tcb_info_signature: sig(tcbText, tcbUrl),
    qe_identity_issuer_chain: issuerChain(qeRes, ["SGX-Enclave-Identity-Issuer-Chain"], qeUrl),
    qe_identity: qeIdentity,
    qe_identity_signature: sig(qeText, qeUrl),
    pck_crl_issuer_chain: issuerChain(crlRes, ["SGX-PCK-CRL-Issuer-Chain"], crlUrl),
    pck_crl: (await crlBytes(crlRes)).toString("hex"),
    root_ca_crl: (await crlBytes(rootRes)).toString("hex"),
  });
}

export interface CollateralStoreOptions extends PcsClientOptions {
  /** Cache directory (created on demand). */
  cacheDir: string;
  now?: () => Date;
  log?: (line: string) => void;
}

/** Collateral for this node's quotes: cached on disk, verified on every load, refreshed before nextUpdate. */
export class TdxCollateralStore {
  private readonly memory = new Map<string, { col: QuoteCollateralV3; nextUpdate: Date }>();
  constructor(private readonly o: CollateralStoreOptions) {}

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  private file(fmspc: string, ca: PckCa): string {
    return join(this.o.cacheDir, `tdx-collateral-${fmspc.toUpperCase()}-${ca}.json`);
  }

  /** The cached collateral, if it still verifies and is fresh; a forged or stale file is reported and ignored. */
  loadCached(fmspc: string, ca: PckCa): { col: QuoteCollateralV3; nextUpdate: Date } | undefined {
    const path = this.file(fmspc, ca);
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch {
      return undefined;
    }
    try {
      const col = parseCollateral(text);
      const v = verifyCollateralSignatures(col, this.now());
      if (v.fmspc !== fmspc.toUpperCase()) throw new Error(`it is for FMSPC ${v.fmspc}`);
      return { col, nextUpdate: v.nextUpdate };
    } catch (e) {
      this.o.log?.(`cached TDX collateral ${path} is not usable (${errorText(e)}); fetching it again`);
      return undefined;
    }
  }

  /** Collateral for the FMSPC/CA of `quote`. Throws CollateralUnavailableError when neither cache nor service has it. */
  async forQuote(quote: Buffer): Promise<QuoteCollateralV3> {
    const { fmspc, ca } = collateralKeyOfQuote(quote);
    return this.get(fmspc, ca);
  }

  async get(fmspc: string, ca: PckCa): Promise<QuoteCollateralV3> {
    const key = `${fmspc.toUpperCase()}-${ca}`;
    const now = this.now();
    const fresh = (e: { nextUpdate: Date } | undefined) => e !== undefined && e.nextUpdate.getTime() - REFRESH_MARGIN_MS > now.getTime();
    let cached = this.memory.get(key);
    if (cached && cached.nextUpdate.getTime() < now.getTime()) cached = undefined;
    cached ??= this.loadCached(fmspc, ca);
    if (cached && fresh(cached)) {
      this.memory.set(key, cached);
      return cached.col;
    }
    try {
      const col = await fetchTdxCollateral(fmspc, ca, this.o);
      let v: ReturnType<typeof verifyCollateralSignatures>;
      try {
        v = verifyCollateralSignatures(col, now);
      } catch (e) {
        throw new CollateralUnavailableError(`collateral from ${this.o.baseUrl ?? DEFAULT_PCCS_URL} does not verify: ${errorText(e)}`);
      }
      mkdirSync(this.o.cacheDir, { recursive: true });
      const path = this.file(fmspc, ca);
      writeFileSync(`${path}.tmp`, JSON.stringify(col));
      renameSync(`${path}.tmp`, path);
      const entry = { col, nextUpdate: v.nextUpdate };
      this.memory.set(key, entry);
      return col;
    } catch (e) {
      // Still valid (only inside the refresh margin): keep serving it and say so.
      if (cached) {
        this.o.log?.(`could not refresh TDX collateral for FMSPC ${fmspc} (${errorText(e)}); using the cached copy valid until ${cached.nextUpdate.toISOString()}`);
        this.memory.set(key, cached);
        return cached.col;
      }
      throw e;
    }
  }
}
