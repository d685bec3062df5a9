// Shared fixtures for the attestation tests. Vectors are copies of /work/shared/vectors (see its README).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const VECTORS = fileURLToPath(new URL("../fixtures/vectors/", import.meta.url));
export const vec = (p: string): Buffer => readFileSync(VECTORS + p);
export const vecText = (p: string): string => readFileSync(VECTORS + p, "utf8");

export const TDX_V4 = { quote: "tdx/dcap-qvl/tdx_quote", collateral: "tdx/dcap-qvl/tdx_quote_collateral.json", at: new Date("2025-07-19T10:00:00Z") };
export const TDX_V5_OUTDATED = {
  quote: "tdx/dcap-qvl/tdx_quote_outdated",
  collateral: "tdx/dcap-qvl/tdx_quote_outdated_collateral.json",
  at: new Date("2026-03-01T00:00:00Z"),
};
export const TDX_V5_GO = { quote: "tdx/go-tdx-guest/quote_v5_sample.dat", collateral: "tdx/dcap-qvl/tdx_quote_outdated_collateral.json", at: new Date("2026-03-01T00:00:00Z") };

export const snpReport = (): Buffer => Buffer.from(vecText("sev-snp/virtee/report_milan.hex").trim(), "hex");
export const snpVcek = (): Buffer => vec("sev-snp/virtee/vcek_milan.der");
export const SNP_AT = new Date("2025-06-01T00:00:00Z");

export const nvEvidence = (): Buffer => Buffer.from(vecText("nvidia/nvtrust/hopperAttestationReport.txt").trim(), "hex");
export const nvChain = (): string => vecText("nvidia/nvtrust/hopperCertChain.txt");
export const NV_NONCE = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";
export const NV_AT = new Date("2025-06-01T00:00:00Z");

export function flip(b: Buffer, offset: number, mask = 0x01): Buffer {
  const c = Buffer.from(b);
  c[offset] ^= mask;
  return c;
}
