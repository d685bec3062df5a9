// Each node's attested identity (RA-TLS certificate with evidence and claims) and how it judges peers,
// from command-line settings. `sim` evidence is a development stand-in: labelled INSECURE everywhere
// and refused by the production policy, which also refuses to start a sim node at all.
import type { PeerInfo, PeerVerifier, TlsIdentity } from "../protocol/transport.js";
import { homedir } from "node:os";
import { join } from "node:path";
import { createNodeIdentity, DEFAULT_VALIDITY_SECONDS, type NodeIdentity, type NodeIdentityOptions } from "../tee/identity.js";
import { DEFAULT_KDS_URL, VcekStore } from "../tee/kds.js";
import { collectGpuEvidence } from "../tee/gpu-collect.js";
import { DEFAULT_RIM_SERVICE_URL, RimStore, attachRims } from "../tee/rim-store.js";
import { DEFAULT_PCCS_URL, TdxCollateralStore } from "../tee/tdx/pcs.js";
import { verifyPeerCertificate } from "../tee/ratls.js";
import { CCEL_EVENT_LOG_PATH, readCcelEventLog } from "../tee/tdx/eventlog.js";
import { simWarning } from "../tee/sim.js";
import { errorText } from "../tee/errors.js";
import { resolvePolicySpec, type Policy } from "../tee/policy.js";
import { NODE_PLATFORMS, type Claims, type NodePlatform, type Role } from "../tee/claims.js";
import type { Logger } from "../util/log.js";
import type { WorkerCertVerifier } from "../client/client.js";
import type { SealingKeys } from "../worker/worker.js";

export interface SecurityOptions {
  /** sim | tdx | sev-snp */
  platform?: string;
  /** "dev", "production", or a policy JSON file. */
  policy?: string;
  /** The id this node announces (a worker's workerId): bound into its attested claims so peers can check it. */
  nodeId?: string;
  /** TDX: PCCS or Intel PCS base URL for collateral (default Intel's PCS). */
  pccs?: string;
  /** SEV-SNP: AMD KDS base URL for the VCEK when the host supplies no certificate table (default AMD's KDS). */
  kds?: string;
  /** configfs-tsm report directory (default /sys/kernel/config/tsm/report). */
  tsmRoot?: string;
  /** TDX: the CCEL boot event log to attach (default /sys/firmware/acpi/tables/data/CCEL when present), or "none". */
  eventLog?: string;
  /** Where fetched collateral and VCEKs are cached (default ~/.cocoon/collateral). */
  collateralCache?: string;
  /** Workers: NVIDIA's RIM service for the RIMs of the GPU's driver and VBIOS (default https://rim.attestation.nvidia.com). */
  rimService?: string;
  /** Workers on tdx/sev-snp: the GPU whose evidence is collected (default 0), or "none" (refused where the policy requires a GPU). */
  gpu?: string;
}

export const DEFAULT_COLLATERAL_CACHE = join(homedir(), ".cocoon", "collateral");

/** TDX/SEV-SNP evidence sources from the command line: configfs-tsm, and collateral stores (PCCS / KDS + cache). */
export function evidenceSources(o: SecurityOptions, log: Logger): Pick<NodeIdentityOptions, "tsmRoot" | "collateralSource" | "vcekSource" | "amdCrlSource" | "eventLogSource"> {
  const cacheDir = o.collateralCache ?? DEFAULT_COLLATERAL_CACHE;
  const warn = (line: string) => log.warn(line);
  const tdx = new TdxCollateralStore({ baseUrl: o.pccs ?? DEFAULT_PCCS_URL, cacheDir, log: warn });
  const snp = new VcekStore({ baseUrl: o.kds ?? DEFAULT_KDS_URL, cacheDir, log: warn });
  return {
    ...(o.tsmRoot ? { tsmRoot: o.tsmRoot } : {}),
    collateralSource: (quote) => tdx.forQuote(quote),
    // The default CCEL path is optional (most guests do not expose it yet); a path given on the command line must exist.
    eventLogSource: async () => (o.eventLog === "none" ? undefined : readCcelEventLog(o.eventLog ?? CCEL_EVENT_LOG_PATH, o.eventLog !== undefined)),
    vcekSource: (report) => snp.forReport(report),
    // Without AMD's CRL the node still starts (dev policies do not need it); production peers refuse it (policy.snp-crl).
    amdCrlSource: async (vcek) => {
      try {
        return await snp.crlFor(vcek);
      } catch (e) {
        log.warn(`${errorText(e)}; this node's SEV-SNP evidence carries no CRL, and peers under a policy with requireSnpCrl (production) will refuse it`);
        return undefined;
      }
    },
  };
}

/** GPU evidence with its driver and VBIOS RIMs attached; without them (service unreachable, no RIM) as it was, with a warning. */
export async function withRims(gpuBundle: Buffer, store: RimStore, log: Logger): Promise<Buffer> {
  try {
    return await attachRims(gpuBundle, store);
  } catch (e) {
    log.warn(`${errorText(e)}; this worker's GPU evidence carries no RIMs, and peers under a policy with requireGpuRim (production) will refuse it`);
    return gpuBundle;
  }
}

export interface NodeSecurity {
  /** The current TLS identity (changes when the identity rotates). */
  readonly identity: TlsIdentity;
  /** The current attested identity. */
  readonly node: NodeIdentity;
  /** Makes fresh keys, claims, evidence and certificate; listeners then switch over. */
  rotate(): Promise<NodeIdentity>;
  onRotate(listener: (node: NodeIdentity) => void | Promise<void>): void;
  /** The policy in force now. */
  readonly policy: Policy;
  verifierFor(role: Role): PeerVerifier;
  /** For clients: verifies a candidate worker's certificate and returns the keys its attestation binds. */
  workerCertVerifier: WorkerCertVerifier;
  /** Production policy: sealing is mandatory. */
  production: boolean;
  statusExtra: () => Record<string, unknown>;
}

/** Identities are renewed at half their validity, so a peer never sees an expired certificate. */
export const IDENTITY_ROTATION_MS = (DEFAULT_VALIDITY_SECONDS * 1000) / 2;

/** The keys a worker's attested identity binds for sealing and receipts. */
export function sealingKeysOf(node: NodeIdentity): SealingKeys {
  return { hpkePublicKey: node.hpke.publicKey, hpkePrivateKey: node.hpke.privateKey, receiptKey: node.receipt.privateKey };
}

export function resolvePolicy(spec: string | undefined): Policy {
  return resolvePolicySpec(spec);
}

/** What a verified peer looks like in logs, status pages and the proxy's pool. */
export function describePeer(role: Role, platform: string, insecure: boolean, imageDigest: string): string {
  return `${role} on ${platform}${insecure ? " (INSECURE)" : ""}, image ${imageDigest.slice(0, 12)}…`;
}

/**
 * `policySource` supplies the policy in force at each check (e.g. the root contract's allow-lists on top of the
 * configured policy, refreshed as the root changes); without it the configured policy applies.
 */
export async function nodeSecurity(role: Role, o: SecurityOptions, log: Logger, model?: { name: string; digest?: string | null }, policySource?: () => Policy): Promise<NodeSecurity> {
  const configured = resolvePolicy(o.policy);
  const currentPolicy = policySource ?? (() => configured);
  const platform = (o.platform ?? "sim") as NodePlatform;
  if (!NODE_PLATFORMS.includes(platform)) throw new Error(`unknown --platform "${o.platform}"; use one of ${NODE_PLATFORMS.join(", ")}`);
  if (platform === "sim" && !configured.allowSim && configured.attestedRoles.includes(role)) {
    throw new Error(`policy "${configured.name}" refuses sim attestation, and this ${role} has no TEE evidence. Run it inside Intel TDX or AMD SEV-SNP with --platform tdx|sev-snp, or use --policy dev for development.`);
  }
  const nodeId = o.nodeId;
  const sources = platform === "sim" ? {} : evidenceSources(o, log);
  // With --pccs given, this node also fetches collateral for peers that attached none (any platform of its own).
  const peerCollateral = o.pccs ? (sources.collateralSource ?? evidenceSources(o, log).collateralSource) : undefined;
  // With --kds given, it also fetches AMD's CRL for SEV-SNP peers that attached none.
  const peerAmdCrl = o.kds ? (sources.amdCrlSource ?? evidenceSources(o, log).amdCrlSource) : undefined;
  // A worker in a TEE attests its GPU (nonce bound to its claims) when asked, or when the policy requires it.
  const gpuIndex = o.gpu === undefined ? (configured.requireGpu ? 0 : undefined) : o.gpu === "none" ? undefined : Number(o.gpu);
  if (gpuIndex !== undefined && (!Number.isInteger(gpuIndex) || gpuIndex < 0)) throw new Error(`--gpu must be a GPU index (0, 1, ...) or none, got "${o.gpu}"`);
  const rims = new RimStore({ baseUrl: o.rimService ?? DEFAULT_RIM_SERVICE_URL, cacheDir: o.collateralCache ?? DEFAULT_COLLATERAL_CACHE, log: (l) => log.warn(l) });
  const gpu = role === "worker" && platform !== "sim" && gpuIndex !== undefined ? { gpuCollector: (nonce: Buffer) => collectGpuEvidence(nonce, { index: gpuIndex, onWarning: (l) => log.warn(l) }).then((b) => withRims(b, rims, log)) } : {};
  let node = await createNodeIdentity({ role, platform, model, nodeId, ...sources, ...gpu });
  const listeners: Array<(n: NodeIdentity) => void | Promise<void>> = [];
  const rotate = async (): Promise<NodeIdentity> => {
    node = await createNodeIdentity({ role, platform, model, nodeId, ...sources, ...gpu });
    log.info(`renewed this ${role}'s attested identity (new keys and evidence; valid until ${node.expiresAt.toISOString()})`);
    for (const l of listeners) await l(node);
    return node;
  };
  const timer = setInterval(() => void rotate().catch((err: Error) => log.error(`could not renew the attested identity: ${err.message}`)), IDENTITY_ROTATION_MS);
  timer.unref();
  if (node.insecure) log.warn(`${simWarning(configured, role)} Nothing protects this ${role}'s memory: never use it for real prompts or money.`);
  const verifierFor = (peerRole: Role): PeerVerifier => {
    if (peerRole === "client") {
      // Clients run on the app developer's host, outside any TEE: there is no evidence to check.
      return async (): Promise<PeerInfo> => ({ description: "client (runs outside TEEs; not attested)", insecure: false });
    }
    return async (der): Promise<PeerInfo> => {
      if (!der) throw new Error(`the ${peerRole} presented no certificate; it must present an RA-TLS certificate`);
      const v = await verifyPeerCertificate(der, currentPolicy(), { expectedRole: peerRole, ...(peerCollateral ? { collateralSource: peerCollateral } : {}), ...(peerAmdCrl ? { amdCrlSource: peerAmdCrl } : {}) });
      return {
        description: describePeer(peerRole, v.platform, v.insecure, v.imageDigest),
        insecure: v.insecure,
        platform: v.platform,
        imageDigest: v.imageDigest,
        claims: v.claims,
        // A worker may announce only the model its claims bind (digest or not); the proxy refuses other names.
        ...(v.claims.model ? { models: [v.claims.model.name] } : {}),
        // The worker id its claims bind (attestedWorkerId / workerIdMismatch in src/tee/claims.ts read it from claims).
        ...(v.claims.nodeId !== null ? { nodeId: v.claims.nodeId } : {}),
      };
    };
  };
  // A sealing candidate is judged exactly like a worker peer; the keys to seal to come from its verified claims.
  const verifyWorker = verifierFor("worker");
  const workerCertVerifier: WorkerCertVerifier = async (der) => {
    const peer = await verifyWorker(der);
    const claims = peer.claims;
    if (!claims) throw new Error("the worker's certificate verified but carries no claims; it cannot be sealed to");
    return {
      description: peer.description,
      insecure: peer.insecure,
      platform: peer.platform ?? "unknown",
      hpkePublicKey: Buffer.from(claims.hpkePublicKey, "hex"),
      receiptPublicKey: Buffer.from(claims.receiptPublicKey, "hex"),
      ...(claims.nodeId ? { nodeId: claims.nodeId } : {}),
      ...(claims.model ? { model: claims.model.name } : {}),
    };
  };
  return {
    get identity() {
      return { keyPem: node.tls.keyPem, certPem: node.tls.certPem };
    },
    get node() {
      return node;
    },
    rotate,
    onRotate: (l) => listeners.push(l),
    get policy() {
      return currentPolicy();
    },
    verifierFor,
    workerCertVerifier,
    production: configured.mode === "production",
    statusExtra: () => ({
      attestation: {
        platform: node.platform,
        insecure: node.insecure,
        ...(node.insecure ? { warning: simWarning(currentPolicy(), role) } : {}),
        policy: currentPolicy().name,
        claimsExpire: node.expiresAt.toISOString(),
        ...(node.claims.model ? { model: node.claims.model } : {}),
      },
    }),
  };
}
