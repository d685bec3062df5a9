// NVIDIA RIMs for a GPU, from NVIDIA's RIM service, cached on disk and verified (XML signature + chain to the pinned
// RIM root, rim.ts verifyRim) on every load: a cache is never trusted unsigned.
//   GET {base}/v1/rim/{id}  ->  JSON { "id": ..., "rim": base64 of the SWID XML, ... }  (nvtrust's fetch_rim_file
//   reads the `rim` field and base64-decodes it)
// The ids come from the GPU's SPDM opaque data, as nvtrust's verifier builds them:
//   driver: NV_GPU_DRIVER_GH100_{driver version}            e.g. NV_GPU_DRIVER_GH100_550.90.07
//   VBIOS:  NV_GPU_VBIOS_{project}_{project SKU}_{chip SKU}_{VBIOS version without dots, upper case}
//           e.g. NV_GPU_VBIOS_1010_0200_882_96009F0001 (VBIOS 96.00.9F.00.01)
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { errorText } from "./errors.js";
import { decodeGpuEvidence, encodeGpuEvidence } from "./evidence.js";
import { NV_OPAQUE, parseNvidiaEvidence, type NvidiaEvidence } from "./nvidia.js";
import { RIM_MAX_BYTES, verifyRim, type Rim } from "./rim.js";
import { CollateralUnavailableError } from "./tdx/pcs.js";

export const DEFAULT_RIM_SERVICE_URL = "https://rim.attestation.nvidia.com";
const FETCH_TIMEOUT_MS = 15_000;
const RIM_ID = /^NV_GPU_(DRIVER|VBIOS)_[A-Za-z0-9._-]{1,80}$/;
const ServiceAnswer = z.object({ rim: z.string().max(Math.ceil(RIM_MAX_BYTES / 3) * 4) }).passthrough();

const ascii = (b: Buffer | undefined): string => (b ? b.toString("latin1").replace(/\0+$/, "").trim() : "");

/** "96.00.9F.00.01" from the 8-byte little-endian VBIOS version opaque field (bytes 3, 2, 1, 0, 4). */
export function vbiosVersionText(b: Buffer): string {
  if (b.length < 5) throw new Error(`the GPU's VBIOS version field is ${b.length} bytes`);
  return [b[3], b[2], b[1], b[0], b[4]].map((x) => x.toString(16).padStart(2, "0").toUpperCase()).join(".");
}

/** The RIM service ids of the driver and VBIOS this GPU evidence reports. Throws when the opaque data lacks them. */
export function rimIdsFor(ev: NvidiaEvidence): { driver: string; vbios: string } {
  const driver = ascii(ev.opaque.get(NV_OPAQUE.DRIVER_VERSION));
  const project = ascii(ev.opaque.get(NV_OPAQUE.PROJECT));
  const projectSku = ascii(ev.opaque.get(NV_OPAQUE.PROJECT_SKU));
  const chipSku = ascii(ev.opaque.get(NV_OPAQUE.CHIP_SKU));
  const vbios = ev.opaque.get(NV_OPAQUE.VBIOS_VERSION);
  if (!driver || !project || !projectSku || !chipSku || !vbios) throw new Error("the GPU evidence does not report its driver version, VBIOS version, project and SKUs, so its RIMs cannot be named");
  const ids = { driver: `NV_GPU_DRIVER_GH100_${driver}`, vbios: `NV_GPU_VBIOS_${project}_${projectSku}_${chipSku}_${vbiosVersionText(vbios).replace(/\./g, "")}` };
  for (const id of Object.values(ids)) if (!RIM_ID.test(id)) throw new Error(`the GPU evidence names RIM id ${JSON.stringify(id)}, which is not a RIM id`);
  return ids;
}

export interface RimStoreOptions {
  /** RIM service base URL (default NVIDIA's). */
  baseUrl?: string;
  cacheDir: string;
  fetchImpl?: typeof fetch;
  now?: () => Date;
  log?: (line: string) => void;
}

/** RIMs by id: from the disk cache while they verify, else from the RIM service (verified before they are cached). */
export class RimStore {
  constructor(private readonly o: RimStoreOptions) {}

  /** The RIM's XML and what it says, verified at `now`. */
  async get(id: string): Promise<{ xml: string; rim: Rim }> {
    if (!RIM_ID.test(id)) throw new Error(`${JSON.stringify(id)} is not a RIM id (NV_GPU_DRIVER_... or NV_GPU_VBIOS_...)`);
    const path = join(this.o.cacheDir, `rim-${id}.swidtag`);
    const now = this.o.now?.() ?? new Date();
    let cached: string | undefined;
    try {
      cached = readFileSync(path, "utf8");
    } catch {
      /* not cached yet */
    }
    if (cached !== undefined) {
      try {
        return { xml: cached, rim: verifyRim(cached, { now, what: `cached RIM ${id}` }) };
      } catch (e) {
        this.o.log?.(`cached RIM ${path} is not usable (${errorText(e)}); fetching it again`);
      }
    }
    const xml = await this.fetchRim(id);
    let rim: Rim;
    try {
      rim = verifyRim(xml, { now, what: `RIM ${id}` });
    } catch (e) {
      throw new CollateralUnavailableError(`the RIM service's ${id} does not verify: ${errorText(e)}`);
    }
    mkdirSync(this.o.cacheDir, { recursive: true });
    writeFileSync(`${path}.tmp`, xml);
    renameSync(`${path}.tmp`, path);
    return { xml, rim };
  }

  private async fetchRim(id: string): Promise<string> {
    const url = `${(this.o.baseUrl ?? DEFAULT_RIM_SERVICE_URL).replace(/\/+$/, "")}/v1/rim/${encodeURIComponent(id)}`;
    let res: Response;
    try {
      res = await (this.o.fetchImpl ?? fetch)(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause;
      throw new CollateralUnavailableError(`NVIDIA RIM service unreachable at ${url} (${cause?.code ?? errorText(e)}); check --rim-service and the network`);
    }
    const body = await res.text();
    if (!res.ok) throw new CollateralUnavailableError(`NVIDIA RIM service answered ${res.status} ${res.statusText} for ${url}${res.status === 404 ? " (no RIM for this driver/VBIOS version)" : ""}`);
    let answer: z.infer<typeof ServiceAnswer>;
    try {
      answer = ServiceAnswer.parse(JSON.parse(body));
    } catch {
      throw new CollateralUnavailableError(`NVIDIA RIM service's answer for ${id} is not {"rim": base64}`);
    }
    return Buffer.from(answer.rim, "base64").toString("utf8");
  }
}

/**
 * Attaches the driver and VBIOS RIMs of the GPU that produced `gpuBundle` (evidence.ts encodeGpuEvidence), from
 * `store`, so that peers compare its measurements offline. Throws (naming the RIM) when one cannot be had.
 */
export async function attachRims(gpuBundle: Buffer, store: RimStore): Promise<Buffer> {
  const g = decodeGpuEvidence(gpuBundle);
  const ids = rimIdsFor(parseNvidiaEvidence(g.evidence));
  const rims = [(await store.get(ids.driver)).xml, (await store.get(ids.vbios)).xml];
  return encodeGpuEvidence({ ...g, rims });
}
