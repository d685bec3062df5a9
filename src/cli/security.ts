// Each node's TLS identity and how it judges peers. Attestation (src/tee) plugs in here.
// INTERIM: a plain self-signed certificate and no peer checks, until RA-TLS lands.
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import type { PeerVerifier, TlsIdentity } from "../protocol/transport.js";
import type { Logger } from "../util/log.js";

export interface SecurityOptions {
  platform?: string;
  policy?: string;
}

export interface NodeSecurity {
  identity: TlsIdentity;
  verifierFor(role: "client" | "proxy" | "worker"): PeerVerifier;
  responseHeaders?: () => Record<string, string>;
  statusExtra?: () => Record<string, unknown>;
}

async function selfSigned(name: string): Promise<TlsIdentity> {
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    { serialNumber: "01", name: `CN=${name}`, notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000), keys, signingAlgorithm: alg },
    webcrypto as unknown as Crypto,
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").match(/.{1,64}/g)!.join("\n")}\n-----END PRIVATE KEY-----\n`, certPem: cert.toString("pem") };
}

export async function nodeSecurity(role: "client" | "proxy" | "worker", _o: SecurityOptions, _log: Logger, _model?: { name: string; digest: string }): Promise<NodeSecurity> {
  const identity = await selfSigned(`cocoon-${role}`);
  return {
    identity,
    verifierFor: (peerRole) => async () => ({ description: `${peerRole} (unattested)`, insecure: true }),
  };
}
