// What a node's own attestation says, for its dashboard: the node verifies its current RA-TLS certificate as a peer
// would (same verifier, same policy) and shows the verdict — platform status (TDX: the TCB status), measurements,
// image digest, GPU evidence — next to the attestation summary its status already has. Verified once per identity
// (it changes on rotation), in the background: the status page never waits for it.
import type { NodeSecurity } from "../cli/security.js";
import type { Role } from "../tee/claims.js";
import { verifyPeerCertificate } from "../tee/ratls.js";

export interface OwnEvidence {
  verdict: string;
  verified: boolean;
  imageDigest?: string;
  tcbStatus?: string;
  measurements?: Record<string, string | string[]>;
  gpu?: string;
  problem?: string;
}

/** `sec.statusExtra` with the node's own verdict merged into its `attestation` object. */
export function withOwnEvidence(sec: NodeSecurity, role: Role): () => Record<string, unknown> {
  let judgedCert: Buffer | undefined;
  let own: OwnEvidence | undefined;
  const judge = (cert: Buffer) => {
    judgedCert = cert;
    verifyPeerCertificate(cert, sec.policy, { expectedRole: role }).then(
      (v) => {
        own = {
          verdict: v.verdict.status,
          verified: v.verdict.verified,
          imageDigest: v.imageDigest,
          ...(v.tcbStatus ? { tcbStatus: v.tcbStatus } : {}),
          measurements: v.measurements,
          ...(v.gpu ? { gpu: `${v.gpu.status}${v.gpu.verified ? " (verified)" : ""}` } : {}),
        };
      },
      (err: Error) => (own = { verdict: "refused by this node's own policy", verified: false, problem: err.message }),
    );
  };
  return () => {
    const extra = sec.statusExtra();
    const cert = sec.node.tls.certDer;
    if (cert !== judgedCert) judge(cert);
    if (!own) return extra;
    const attestation = (extra.attestation ?? {}) as Record<string, unknown>;
    return { ...extra, attestation: { ...attestation, evidence: own } };
  };
}
