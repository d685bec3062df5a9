// Public API of the attestation module (see docs/attestation.md).
export { AttestationError, EvidenceFormatError } from "./errors.js";
export type { Verdict, Platform } from "./verdict.js";
export { verifyTdxQuote, type TdxVerdict, type TdxVerifyOptions } from "./tdx/verify.js";
export { parseTdxQuote, type TdxQuote } from "./tdx/quote.js";
export { parseCollateral, type QuoteCollateralV3 } from "./tdx/collateral.js";
export { TCB_STATUSES, type TcbStatus } from "./tdx/tcb.js";
export { verifySnpReport, parseSnpReport, type SnpVerdict, type SnpProduct } from "./sevsnp.js";
export { verifyNvidiaEvidence, parseNvidiaEvidence, loadReferenceMeasurements, type NvidiaVerdict } from "./nvidia.js";
export { createSimEvidence, verifySimEvidence, ATTESTATION_HEADER, attestationHeaderValue, SIM_WARNING, INSECURE_SIM_DEV_PUBLIC_KEY } from "./sim.js";
export { ROLES, encodeClaims, decodeClaims, claimsReportData, type Claims, type Role, type NodePlatform } from "./claims.js";
export { encodeGpuEvidence, decodeGpuEvidence, encodeEvidenceBundle, decodeEvidenceBundle } from "./evidence.js";
export { createNodeIdentity, type NodeIdentity, type NodeIdentityOptions } from "./identity.js";
export { verifyPeerCertificate, verifyBundleEvidence, EvidenceCache, defaultEvidenceCache, type VerifiedPeer, type VerifyPeerOptions } from "./ratls.js";
export { DEV_POLICY, PRODUCTION_POLICY, loadPolicy, parsePolicy, checkPolicy, checkPlatformPolicy, type Policy } from "./policy.js";
export { RATLS_EVIDENCE_OID, RATLS_CLAIMS_OID } from "./cert.js";
export { detectEvidence } from "./detect.js";
export { NoTeeError } from "./tsm.js";
