// SEV-SNP VCEK and AMD's CRL from AMD's Key Distribution Service, cached on disk and verified on every load.
//   GET {base}/vcek/v1/{Milan|Genoa|Turin}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..[&fmcSPL=..]  -> DER VCEK
//   GET {base}/vcek/v1/{Milan|Genoa|Turin}/crl  -> DER CRL issued and signed (RSASSA-PSS) by the product's ARK; it
//   lists revoked ASK (and, in principle, VCEK) serials.
// hwid is the report's CHIP_ID as hex (64 bytes; Turin uses its first 8 bytes); the SPLs are the report's
// REPORTED_TCB. A host that installed a certificate table hands the VCEK over in configfs-tsm's auxblob instead
// (tsm.ts vcekFromCertTable), and then nothing is fetched.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { toHex } from "../crypto/bytes.js";
import { errorText } from "./errors.js";
import { testAmdRootsFor } from "./roots/test-roots.js";
import { AMD_ROOTS, decodeTcb, parseSnpReport, parseVcek, verifyAmdCrl, type SnpProduct, type SnpReport } from "./sevsnp.js";
import { CollateralUnavailableError } from "./tdx/pcs.js";
import { splitPem, verifyChainToRoot } from "./x509.js";

export const DEFAULT_KDS_URL = "https://kdsintf.amd.com";
const FETCH_TIMEOUT_MS = 15_000;
const TURIN_HWID_LEN = 8;
const HOUR_MS = 3_600_000;

/** The product family of a report: from CPUID (report v3+), else Milan (v2 reports carry no CPUID). */
export function snpProductOf(rep: SnpReport): SnpProduct {
  const c = rep.cpuid;
  if (!c) return "Milan";
  if (c.family === 0x1a) return "Turin";
  if (c.family === 0x19 && c.model >= 0x10) return "Genoa";
  return "Milan";
}

/** The KDS URL of the VCEK that signed `report`. */
export function vcekUrl(report: Buffer, base = DEFAULT_KDS_URL): string {
  const rep = parseSnpReport(report);
  const product = snpProductOf(rep);
  const t = decodeTcb(rep.reportedTcb, product);
  const hwid = toHex(product === "Turin" ? rep.chipId.subarray(0, TURIN_HWID_LEN) : rep.chipId);
  const q = new URLSearchParams({ blSPL: String(t.bootloader), teeSPL: String(t.tee), snpSPL: String(t.snp), ucodeSPL: String(t.microcode) });
  if (product === "Turin") q.set("fmcSPL", String(t.fmc ?? 0));
  return `${base.replace(/\/+$/, "")}/vcek/v1/${product}/${hwid}?${q.toString()}`;
}

/** The product and ARK/ASK (pinned, or test-installed) that `vcek` belongs to. */
export function amdRootsForVcek(vcek: Buffer): { product: SnpProduct; ark: string; ask: string } {
  const info = parseVcek(vcek);
  const roots = testAmdRootsFor(vcek) ?? (info.product ? AMD_ROOTS[info.product] : undefined);
  if (!roots || !info.product) throw new Error(`VCEK product "${info.productName}" is not Milan, Genoa or Turin`);
  return { product: info.product, ...roots };
}

/** The KDS URL of AMD's CRL for a product. */
export function amdCrlUrl(product: SnpProduct, base = DEFAULT_KDS_URL): string {
  return `${base.replace(/\/+$/, "")}/vcek/v1/${product}/crl`;
}

/** Checks that `vcek` chains to the pinned (or test-installed) ASK/ARK of its product; returns its expiry. */
export function verifyVcekChain(vcek: Buffer, now: Date): Date {
  const roots = amdRootsForVcek(vcek);
  const chain = verifyChainToRoot([vcek, ...splitPem(roots.ask)], roots.ark, now, "VCEK");
  return new Date(chain[0].validTo);
}

export interface VcekStoreOptions {
  baseUrl?: string;
  cacheDir: string;
  fetchImpl?: typeof fetch;
  now?: () => Date;
  log?: (line: string) => void;
}

/** VCEKs by chip and TCB: from the disk cache when it still verifies, else from the KDS. */
export class VcekStore {
  constructor(private readonly o: VcekStoreOptions) {}

  async forReport(report: Buffer): Promise<Buffer> {
    const url = vcekUrl(report, this.o.baseUrl ?? DEFAULT_KDS_URL);
    const name = url.slice(url.indexOf("/vcek/v1/") + 9).replace(/[^A-Za-z0-9]+/g, "-").slice(0, 200);
    const path = join(this.o.cacheDir, `vcek-${name}.der`);
    const now = this.o.now?.() ?? new Date();
    try {
      const cached = readFileSync(path);
      try {
        verifyVcekChain(cached, now);
        return cached;
      } catch (e) {
        this.o.log?.(`cached VCEK ${path} is not usable (${errorText(e)}); fetching it again`);
      }
    } catch {
      /* not cached yet */
    }
    const der = await this.fetchDer(url, "or have the host install the certificate table (snphost import)");
    try {
      verifyVcekChain(der, now);
    } catch (e) {
      throw new CollateralUnavailableError(`VCEK from ${url} does not verify: ${errorText(e)}`);
    }
    this.store(path, der);
    return der;
  }

  /**
   * AMD's CRL for `vcek`'s product, signed by that product's ARK: from the disk cache while it verifies (signature,
   * dates), refreshed from the KDS when it is within a day (or half its lifetime) of its nextUpdate; while the KDS is
   * unreachable a cached CRL that is still valid is used with a warning.
   */
  async crlFor(vcek: Buffer): Promise<Buffer> {
    const { product, ark } = amdRootsForVcek(vcek);
    const url = amdCrlUrl(product, this.o.baseUrl ?? DEFAULT_KDS_URL);
    const path = join(this.o.cacheDir, `amd-crl-${product}.der`);
    const now = this.o.now?.() ?? new Date();
    let cached: Buffer | undefined;
    try {
      const bytes = readFileSync(path);
      try {
        const crl = verifyAmdCrl(bytes, ark, now, product);
        const next = crl.nextUpdate?.getTime() ?? 0;
        const margin = Math.min(24 * HOUR_MS, (next - crl.thisUpdate.getTime()) / 2);
        if (now.getTime() < next - margin) return bytes;
        cached = bytes;
      } catch (e) {
        this.o.log?.(`cached AMD CRL ${path} is not usable (${errorText(e)}); fetching it again`);
      }
    } catch {
      /* not cached yet */
    }
    let der: Buffer;
    try {
      der = await this.fetchDer(url, "so that AMD's CRL can be attached (peers check the ASK and VCEK against it)");
      verifyAmdCrl(der, ark, now, product);
    } catch (e) {
      const err = e instanceof CollateralUnavailableError ? e : new CollateralUnavailableError(`AMD CRL from ${url} does not verify: ${errorText(e)}`);
      if (cached) {
        this.o.log?.(`could not refresh AMD CRL (${err.message}); using the cached copy while it is valid`);
        return cached;
      }
      throw err;
    }
    this.store(path, der);
    return der;
  }

  private async fetchDer(url: string, hint: string): Promise<Buffer> {
    let res: Response;
    try {
      res = await (this.o.fetchImpl ?? fetch)(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause;
      throw new CollateralUnavailableError(`AMD KDS unreachable at ${url} (${cause?.code ?? errorText(e)}); check --kds and the network, ${hint}`);
    }
    if (!res.ok) {
      await res.arrayBuffer().catch(() => undefined);
      throw new CollateralUnavailableError(`AMD KDS answered ${res.status} ${res.statusText} for ${url}${res.status === 429 ? " (rate limited: retry later)" : ""}`);
    }
    return Buffer.from(await res.arrayBuffer());
  }

  private store(path: string, der: Buffer): void {
    mkdirSync(this.o.cacheDir, { recursive: true });
    writeFileSync(`${path}.tmp`, der);
    renameSync(`${path}.tmp`, path);
  }
}
