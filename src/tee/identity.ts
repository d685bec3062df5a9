// A node's attested identity: fresh keys (TLS, HPKE, receipt signing), the claims binding them, platform
// evidence whose REPORTDATA = SHA-512(domain || canonical claims), and the RA-TLS certificate carrying both.
import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { CERT_BACKDATE_SECONDS, buildRaTlsCertificate } from "./cert.js";
import { claimsReportData, encodeClaims, gpuNonce, type Claims, type NodePlatform, type Role } from "./claims.js";
import { encodeEvidenceBundle, sha256Hex, type EvidenceBundle } from "./evidence.js";
import { createSimEvidence } from "./sim.js";
import { parseCollateral, type QuoteCollateralV3 } from "./tdx/collateral.js";
import { existsSync } from "node:fs";
import { SEV_GUEST_DEVICE, getSevGuestReport } from "./sev-guest.js";
import { TDX_GUEST_DEVICE, getTdxGuestQuote } from "./tdx-guest.js";
import { TSM_REPORT_DIR, getTsmReport, tsmAvailable, vcekFromCertTable } from "./tsm.js";

export const DEFAULT_VALIDITY_SECONDS = 24 * 60 * 60;
/** TLS peers (OpenSSL's max_cert_list, 100 KiB for the whole Certificate message) refuse larger certificates. */
export const RATLS_CERT_MAX_BYTES = 100 * 1024 - 512;
export const MAX_VALIDITY_SECONDS = 7 * 24 * 60 * 60;
const HEX_SHA256 = /^[0-9a-f]{64}$/;

export interface NodeIdentityOptions {
  role: Role;
  platform?: NodePlatform;
  /** The model a worker serves; digest null (or absent) when the worker cannot hash the weights (dev only). */
  model?: { name: string; digest?: string | null };
  /** The id the node announces (a worker's workerId), bound into the claims; unbound (null) when absent. */
  nodeId?: string;
  validitySeconds?: number;
  /** GPU evidence bundle (see evidence.ts encodeGpuEvidence); its SHA-256 goes into the claims. Its SPDM nonce must
   * be gpuNonce(claims) for peers to accept it, so nodes use `gpuCollector`; this is for tests and tools. */
  gpuEvidence?: Buffer;
  /** Collects GPU evidence over the nonce derived from this identity's claims (gpu-collect.ts collectGpuEvidence). */
  gpuCollector?: (nonce: Buffer) => Promise<Buffer>;
  /** TDX: collateral to carry next to the quote, so that peers can verify offline. */
  collateral?: QuoteCollateralV3 | string;
  /** TDX: where current collateral for a fresh quote comes from (a TdxCollateralStore: PCCS + verified cache). */
  collateralSource?: (quote: Buffer) => Promise<QuoteCollateralV3>;
  /** TDX: the CCEL boot event log to attach (read at each identity, since RTMR3 may grow); undefined = none. */
  eventLogSource?: () => Promise<Buffer | undefined>;
  /** SEV-SNP: VCEK (DER) when the host does not supply the certificate table. */
  vcek?: Buffer;
  /** SEV-SNP: where the VCEK comes from when the host supplies no certificate table (a VcekStore: KDS + cache). */
  vcekSource?: (report: Buffer) => Promise<Buffer>;
  /** SEV-SNP: AMD's CRL (DER) to attach, or where it comes from for a VCEK (a VcekStore's crlFor); undefined = none. */
  amdCrl?: Buffer;
  amdCrlSource?: (vcek: Buffer) => Promise<Buffer | undefined>;
  /** configfs-tsm report directory (default /sys/kernel/config/tsm/report; tests point it at a stand-in). */
  tsmRoot?: string;
  /** SEV-SNP: the legacy guest device used when configfs-tsm is absent (default /dev/sev-guest). */
  sevGuestDevice?: string;
  /** TDX: the legacy guest device used when configfs-tsm is absent (default /dev/tdx_guest). */
  tdxGuestDevice?: string;
  /** TDX without configfs-tsm: the host's Quote Generation Service (vsock:CID:PORT, unix:PATH or tcp:HOST:PORT;
   * default vsock:2 and the port of /etc/tdx-attest.conf or 4050). */
  qgsAddress?: string;
  /** Python interpreter for the legacy guest devices (default python3; tests pass a stand-in for the ioctls). */
  guestPython?: string;
  /** sim only: simulated measurements (default: the sim image). */
  simMeasurements?: { mrtd?: Buffer; rtmr?: Buffer[] };
  now?: Date;
}

export interface NodeIdentity {
  role: Role;
  platform: NodePlatform;
  /** True for sim: the evidence is signed by a public development key. */
  insecure: boolean;
  claims: Claims;
  claimsBytes: Buffer;
  reportData: Buffer;
  /** Raw platform evidence (TDX quote, SNP report or sim report). */
  quote: Buffer;
  /** Encoded evidence bundle as carried in the certificate. */
  evidence: Buffer;
  tls: { keyPem: string; certPem: string; certDer: Buffer };
  hpke: { publicKey: Uint8Array; privateKey: Uint8Array };
  receipt: { publicKey: Uint8Array; privateKey: KeyObject };
  expiresAt: Date;
}

const isoSeconds = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");
const rawPublic = (k: KeyObject) => Buffer.from(createPublicKey(k).export({ format: "jwk" }).x as string, "base64url");

export async function createNodeIdentity(opts: NodeIdentityOptions): Promise<NodeIdentity> {
  const platform = opts.platform ?? "sim";
  const validity = opts.validitySeconds ?? DEFAULT_VALIDITY_SECONDS;
  if (!Number.isInteger(validity) || validity < 60 || validity > MAX_VALIDITY_SECONDS) {
    throw new Error(`validitySeconds must be an integer between 60 and ${MAX_VALIDITY_SECONDS}, got ${validity}`);
  }
  if (opts.model && opts.model.digest != null && !HEX_SHA256.test(opts.model.digest)) {
    throw new Error(`model digest must be the lowercase hex SHA-256 of the weights (64 characters), got ${JSON.stringify(opts.model.digest)}`);
  }
  const now = new Date(Math.floor((opts.now ?? new Date()).getTime() / 1000) * 1000);
  const expiresAt = new Date(now.getTime() + validity * 1000);

  const tls = generateKeyPairSync("ed25519");
  const hpke = generateKeyPairSync("x25519");
  const receipt = generateKeyPairSync("ed25519");
  const hpkeJwk = hpke.privateKey.export({ format: "jwk" });
  const tlsSpki = tls.publicKey.export({ format: "der", type: "spki" });

  const claims: Claims = {
    version: 1,
    role: opts.role,
    platform,
    tlsPublicKey: tlsSpki.toString("hex"),
    hpkePublicKey: Buffer.from(hpkeJwk.x as string, "base64url").toString("hex"),
    receiptPublicKey: rawPublic(receipt.privateKey).toString("hex"),
    nodeId: opts.nodeId ?? null,
    model: opts.model ? { name: opts.model.name, digest: opts.model.digest ?? null } : null,
    gpuEvidenceDigest: opts.gpuEvidence ? sha256Hex(opts.gpuEvidence) : null,
    issuedAt: isoSeconds(now),
    expiresAt: isoSeconds(expiresAt),
  };
  let gpuEvidence = opts.gpuEvidence;
  if (!gpuEvidence && opts.gpuCollector) {
    gpuEvidence = await opts.gpuCollector(gpuNonce(claims));
    claims.gpuEvidenceDigest = sha256Hex(gpuEvidence);
  }
  const claimsBytes = encodeClaims(claims);
  const reportData = claimsReportData(claimsBytes);

  const bundle: EvidenceBundle = { platform, quote: Buffer.alloc(0), gpu: gpuEvidence };
  if (platform === "sim") {
    bundle.quote = createSimEvidence({ reportData, ...opts.simMeasurements });
  } else if (platform === "tdx") {
    // Kernels before configfs-tsm (< 6.7) only have /dev/tdx_guest: its TDREPORT, turned into a quote by the host's QGS.
    const tsmRoot = opts.tsmRoot ?? TSM_REPORT_DIR;
    const device = opts.tdxGuestDevice ?? TDX_GUEST_DEVICE;
    bundle.quote =
      !tsmAvailable(tsmRoot) && existsSync(device)
        ? await getTdxGuestQuote(reportData, { device, qgs: opts.qgsAddress, python: opts.guestPython })
        : (await getTsmReport("tdx", reportData, tsmRoot)).outblob;
    // Current collateral travels with the quote, so that peers verify it offline (they check its chain themselves).
    if (opts.collateral) bundle.collateral = typeof opts.collateral === "string" ? parseCollateral(opts.collateral) : opts.collateral;
    else if (opts.collateralSource) bundle.collateral = await opts.collateralSource(bundle.quote);
    const eventLog = opts.eventLogSource ? await opts.eventLogSource() : undefined;
    if (eventLog) bundle.eventLog = eventLog;
  } else {
    // Kernels before configfs-tsm (< 6.7) only have /dev/sev-guest: its SNP_GET_REPORT ioctl (no certificate table).
    const tsmRoot = opts.tsmRoot ?? TSM_REPORT_DIR;
    const device = opts.sevGuestDevice ?? SEV_GUEST_DEVICE;
    const r = !tsmAvailable(tsmRoot) && existsSync(device) ? { outblob: await getSevGuestReport(reportData, { device, python: opts.guestPython }), auxblob: undefined } : await getTsmReport("sev-snp", reportData, tsmRoot);
    bundle.quote = r.outblob;
    bundle.vcek = opts.vcek ?? (r.auxblob ? vcekFromCertTable(r.auxblob) : undefined);
    if (!bundle.vcek && opts.vcekSource) bundle.vcek = await opts.vcekSource(bundle.quote);
    // AMD's CRL travels with the report too, so that peers check the ASK/VCEK for revocation offline.
    bundle.amdCrl = opts.amdCrl ?? (bundle.vcek && opts.amdCrlSource ? await opts.amdCrlSource(bundle.vcek) : undefined);
  }
  const evidence = encodeEvidenceBundle(bundle);
  const cert = buildRaTlsCertificate({
    privateKey: tls.privateKey,
    publicKeySpki: tlsSpki,
    commonName: `cocoon-${opts.role}${platform === "sim" ? "-insecure-sim" : ""}`,
    notBefore: new Date(now.getTime() - CERT_BACKDATE_SECONDS * 1000),
    notAfter: expiresAt,
    evidence,
    claims: claimsBytes,
  });
  if (cert.der.length > RATLS_CERT_MAX_BYTES) {
    const parts = [`quote ${bundle.quote.length}`, bundle.collateral ? `collateral ${JSON.stringify(bundle.collateral).length}` : "", bundle.gpu ? `GPU evidence ${bundle.gpu.length}` : "", bundle.eventLog ? `event log ${bundle.eventLog.length}` : ""].filter(Boolean);
    throw new Error(`this node's RA-TLS certificate would be ${cert.der.length} bytes (${parts.join(", ")} bytes); TLS peers refuse certificates over ${RATLS_CERT_MAX_BYTES} bytes. Attach less: --event-log none, or a GPU without RIMs (--rim-service unreachable) under a policy that allows it`);
  }
  return {
    role: opts.role,
    platform,
    insecure: platform === "sim",
    claims,
    claimsBytes,
    reportData,
    quote: bundle.quote,
    evidence,
    tls: { keyPem: tls.privateKey.export({ format: "pem", type: "pkcs8" }).toString(), certPem: cert.pem, certDer: cert.der },
    hpke: {
      publicKey: new Uint8Array(Buffer.from(hpkeJwk.x as string, "base64url")),
      privateKey: new Uint8Array(Buffer.from(hpkeJwk.d as string, "base64url")),
    },
    receipt: { publicKey: new Uint8Array(rawPublic(receipt.privateKey)), privateKey: receipt.privateKey },
    expiresAt,
  };
}
