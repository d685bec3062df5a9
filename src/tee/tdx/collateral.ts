// Intel DCAP collateral in the QuoteCollateralV3 JSON shape (dcap-qvl / dstack):
//   { tcb_info_issuer_chain: PEM, tcb_info: "<raw signed JSON>", tcb_info_signature: hex r||s,
//     qe_identity_issuer_chain: PEM, qe_identity: "<raw signed JSON>", qe_identity_signature: hex r||s,
//     pck_crl_issuer_chain: PEM, root_ca_crl: hex DER, pck_crl: hex DER }
// Byte arrays may also be given as arrays of numbers (dcap-qvl accepts both). The signatures cover the exact
// bytes of tcb_info / qe_identity; they are never re-serialized.
import { z } from "zod";
import { EvidenceFormatError } from "../errors.js";

const bytesField = z.union([z.string(), z.array(z.number().int().min(0).max(255))]);

export const CollateralSchema = z.object({
  pck_crl_issuer_chain: z.string(),
  root_ca_crl: bytesField,
  pck_crl: bytesField,
  tcb_info_issuer_chain: z.string(),
  tcb_info: z.string(),
  tcb_info_signature: bytesField,
  qe_identity_issuer_chain: z.string(),
  qe_identity: z.string(),
  qe_identity_signature: bytesField,
  pck_certificate_chain: z.string().optional().nullable(),
});
export type QuoteCollateralV3 = z.infer<typeof CollateralSchema>;

const TcbComp = z.object({ svn: z.number().int().min(0).max(255) });
const Status = z.string();
export const TcbLevelSchema = z.object({
  tcb: z.object({
    sgxtcbcomponents: z.array(TcbComp).length(16),
    pcesvn: z.number().int().min(0),
    tdxtcbcomponents: z.array(TcbComp).length(16),
  }),
  tcbDate: z.string(),
  tcbStatus: Status,
  advisoryIDs: z.array(z.string()).optional(),
});
const ModuleLevel = z.object({
  tcb: z.object({ isvsvn: z.number().int().min(0) }),
  tcbDate: z.string().optional(),
  tcbStatus: Status,
  advisoryIDs: z.array(z.string()).optional(),
});
export const TcbInfoSchema = z.object({
  id: z.string(),
  version: z.number().int(),
  issueDate: z.string(),
  nextUpdate: z.string(),
  fmspc: z.string(),
  pceId: z.string(),
  tcbType: z.number().int(),
  tcbEvaluationDataNumber: z.number().int(),
  tdxModule: z.object({ mrsigner: z.string(), attributes: z.string(), attributesMask: z.string() }).optional(),
  tdxModuleIdentities: z
    .array(z.object({ id: z.string(), mrsigner: z.string(), attributes: z.string(), attributesMask: z.string(), tcbLevels: z.array(ModuleLevel) }))
    .optional(),
  tcbLevels: z.array(TcbLevelSchema).min(1),
});
export type TcbInfo = z.infer<typeof TcbInfoSchema>;
export type TcbLevel = z.infer<typeof TcbLevelSchema>;
export type ModuleLevel = z.infer<typeof ModuleLevel>;

export const QeIdentitySchema = z.object({
  id: z.string(),
  version: z.number().int(),
  issueDate: z.string(),
  nextUpdate: z.string(),
  tcbEvaluationDataNumber: z.number().int(),
  miscselect: z.string(),
  miscselectMask: z.string(),
  attributes: z.string(),
  attributesMask: z.string(),
  mrsigner: z.string(),
  isvprodid: z.number().int(),
  tcbLevels: z.array(ModuleLevel).min(1),
});
export type QeIdentity = z.infer<typeof QeIdentitySchema>;

function zodText(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
}

/** Validates collateral JSON (string, Buffer or parsed object). */
export function parseCollateral(input: string | Buffer | unknown): QuoteCollateralV3 {
  let obj: unknown = input;
  if (typeof input === "string" || Buffer.isBuffer(input)) {
    try {
      obj = JSON.parse(input.toString());
    } catch (e) {
      throw new EvidenceFormatError(`TDX collateral is not valid JSON: ${(e as Error).message}`);
    }
  }
  const r = CollateralSchema.safeParse(obj);
  if (!r.success) {
    throw new EvidenceFormatError(`TDX collateral is not in the QuoteCollateralV3 shape (${zodText(r.error)}); expected dcap-qvl's JSON fields`);
  }
  return r.data;
}

export function collateralBytes(v: string | number[], field: string): Buffer {
  if (Array.isArray(v)) return Buffer.from(v);
  const clean = v.trim();
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new EvidenceFormatError(`TDX collateral: ${field} is not hex`);
  return Buffer.from(clean, "hex");
}

export function parseSignedJson<T>(raw: string, schema: z.ZodType<T>, what: string): T {
  let obj: unknown;
  try {
    obj = JSON.parse(raw);
  } catch (e) {
    throw new EvidenceFormatError(`${what} is not valid JSON: ${(e as Error).message}`);
  }
  const r = schema.safeParse(obj);
  if (!r.success) throw new EvidenceFormatError(`${what} has an unexpected shape: ${zodText(r.error)}`);
  return r.data;
}
