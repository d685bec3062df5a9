// Stand-ins for what a CI machine lacks, so that nodes run `--platform tdx` through the real verifier code:
//  - TestIntel: a test Intel hierarchy (root, PCK Platform CA, PCK leaf, TCB signing certificate) made from the real
//    vector's certificates (same names and SGX extensions, test keys, fresh validity), fresh collateral (the real
//    TCB info / QE identity with new dates, signed by the test TCB key; CRLs by the test keys), and TDX quotes over
//    any REPORTDATA (the real quote's header, TD report and QE report; new attestation key, new signatures).
//  - servePcs: a local HTTP server speaking the Intel PCS v4 request/response shapes for a given collateral.
//  - FakeTsm: a directory that behaves like configfs-tsm (entries get provider/generation; reading `outblob`, a
//    FIFO, returns a report over `inblob` and bumps `generation`; it can simulate a concurrent writer).
// The test root is trusted only after installTestIntelRootForTestsOnly (src/tee/roots/test-roots.ts).
import { generateKeyPairSync, createHash, sign, type KeyObject } from "node:crypto";
import { execFileSync } from "node:child_process";
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseTdxQuote } from "../../src/tee/tdx/quote.js";
import type { QuoteCollateralV3 } from "../../src/tee/tdx/collateral.js";
import { certFields, splitPem, toPem } from "../../src/tee/x509.js";
import { TAG, bitString, children, explicit, intHex, oid, parseDer, raw, seq, time, tlv, uint } from "../../src/tee/der.js";
import { SNP_SIGNED_LEN } from "../../src/tee/sevsnp.js";
import { TDX_V4, nvChain, nvEvidence, snpReport, snpVcek, vec, vecText } from "./helpers.js";
import { encodeGpuEvidence } from "../../src/tee/evidence.js";
import { parseNvidiaEvidence } from "../../src/tee/nvidia.js";
import { AMD_MILAN_ARK_PEM, AMD_MILAN_ASK_PEM } from "../../src/tee/roots/index.js";

const ECDSA_SHA256 = seq(oid("1.2.840.10045.4.3.2"));
const ECDSA_SHA384 = seq(oid("1.2.840.10045.4.3.3"));
const DAY = 86_400_000;
const p256 = () => generateKeyPairSync("ec", { namedCurve: "P-256" });
const spkiDer = (k: KeyObject): Buffer => k.export({ type: "spki", format: "der" });

/** A certificate's TBS with another key and/or validity (names, serial, extensions untouched). */
export function tbsWith(der: Buffer, o: { spki?: Buffer; validity?: [Date, Date] }): Buffer {
  const tbs = children(parseDer(der))[0];
  const parts: Buffer[] = children(tbs).map((n) => Buffer.from(raw(n)));
  const v = tbs.buf[tbs.contentStart] === 0xa0 ? 1 : 0; // [0] version present
  if (o.validity) parts[v + 3] = seq(time(o.validity[0]), time(o.validity[1]));
  if (o.spki) parts[v + 5] = o.spki;
  return seq(...parts);
}
const signedEc = (tbs: Buffer, key: KeyObject): Buffer => seq(tbs, ECDSA_SHA256, bitString(sign("sha256", tbs, key)));

/** A CRL by `issuerDer`'s subject, signed with `key`, valid [now - 1 d, now + days], listing `serials` (hex). */
export function makeCrl(issuerDer: Buffer, key: KeyObject, serials: string[], now: Date, days = 30): Buffer {
  const entries = serials.map((s) => seq(uint(Buffer.from(s.length % 2 ? `0${s}` : s, "hex")), time(now)));
  const tbs = seq(
    tlv(TAG.INTEGER, Buffer.from([1])),
    ECDSA_SHA256,
    certFields(issuerDer).subjectRaw,
    time(new Date(now.getTime() - DAY)),
    time(new Date(now.getTime() + days * DAY)),
    ...(entries.length ? [seq(...entries)] : []),
  );
  return signedEc(tbs, key);
}

export interface TestIntelOptions {
  now?: Date;
  /** Days the TCB info / QE identity / CRLs stay valid. */
  collateralDays?: number;
  /** Serials the PCK CRL revokes ("leaf" = this authority's PCK leaf). */
  revokePck?: boolean;
}

/** A test Intel: its root (to install), collateral (to serve) and quotes (to hand out through FakeTsm). */
export class TestIntel {
  readonly rootPem: string;
  readonly pckChainPem: string;
  readonly collateral: QuoteCollateralV3;
  readonly fmspc: string;
  private readonly real = parseTdxQuote(vec(TDX_V4.quote));
  private readonly pck = p256();
  private readonly att = p256();

  constructor(o: TestIntelOptions = {}) {
    const now = o.now ?? new Date();
    const validity: [Date, Date] = [new Date(now.getTime() - DAY), new Date(now.getTime() + 365 * DAY)];
    const col = JSON.parse(vecText(TDX_V4.collateral)) as Record<string, string>;
    const [leafDer, caDer, rootDer] = splitPem(this.real.pckChainPem);
    const [tcbSignerDer] = splitPem(col.tcb_info_issuer_chain);
    const root = p256();
    const ca = p256();
    const tcbKey = p256();
    const root2 = signedEc(tbsWith(rootDer, { spki: spkiDer(root.publicKey), validity }), root.privateKey);
    const ca2 = signedEc(tbsWith(caDer, { spki: spkiDer(ca.publicKey), validity }), root.privateKey);
    const leaf2 = signedEc(tbsWith(leafDer, { spki: spkiDer(this.pck.publicKey), validity }), ca.privateKey);
    const tcbSigner2 = signedEc(tbsWith(tcbSignerDer, { spki: spkiDer(tcbKey.publicKey), validity }), root.privateKey);
    const pem = (...ders: Buffer[]) => ders.map((d) => toPem(d)).join("");
    const days = o.collateralDays ?? 30;
    const redate = (text: string): string => {
      const j = JSON.parse(text) as Record<string, unknown>;
      j.issueDate = new Date(now.getTime() - DAY).toISOString().replace(/\.\d{3}Z$/, "Z");
      j.nextUpdate = new Date(now.getTime() + days * DAY).toISOString().replace(/\.\d{3}Z$/, "Z");
      return JSON.stringify(j);
    };
    const tcbInfo = redate(col.tcb_info);
    const qeIdentity = redate(col.qe_identity);
    const sig = (t: string) => sign("sha256", Buffer.from(t, "utf8"), { key: tcbKey.privateKey, dsaEncoding: "ieee-p1363" }).toString("hex");
    this.rootPem = pem(root2);
    this.pckChainPem = pem(leaf2, ca2, root2);
    this.fmspc = "B0C06F000000";
    this.collateral = {
      tcb_info_issuer_chain: pem(tcbSigner2, root2),
      tcb_info: tcbInfo,
      tcb_info_signature: sig(tcbInfo),
      qe_identity_issuer_chain: pem(tcbSigner2, root2),
      qe_identity: qeIdentity,
      qe_identity_signature: sig(qeIdentity),
      pck_crl_issuer_chain: pem(ca2, root2),
      root_ca_crl: makeCrl(root2, root.privateKey, [], now, days).toString("hex"),
      pck_crl: makeCrl(ca2, ca.privateKey, o.revokePck ? [certFields(leaf2).serialHex] : [], now, days).toString("hex"),
    };
  }

  /** A TDX quote (v4, TD report 1.0: the real vector's measurements, or other RTMRs) over `reportData`, signed by test keys. */
  quote(reportData: Buffer, rtmr?: Buffer[]): Buffer {
    const q = this.real;
    const region = Buffer.from(q.signedRegion);
    reportData.copy(region, region.length - 64); // REPORTDATA ends the TD 1.0 body
    // RTMR0..3 (48 bytes each) precede REPORTDATA.
    rtmr?.forEach((r, i) => r.copy(region, region.length - 64 - 4 * 48 + i * 48));
    const attRaw = Buffer.concat(
      (["x", "y"] as const).map((c) => Buffer.from(this.att.publicKey.export({ format: "jwk" })[c] as string, "base64url")),
    );
    const qeReport = Buffer.from(q.qeReport.raw);
    createHash("sha256").update(attRaw).update(q.qeAuthData).digest().copy(qeReport, 320);
    qeReport.fill(0, 352, 384);
    const p1363 = (data: Buffer, key: KeyObject) => sign("sha256", data, { key, dsaEncoding: "ieee-p1363" });
    const auth = Buffer.alloc(2);
    auth.writeUInt16LE(q.qeAuthData.length);
    const pemBytes = Buffer.from(this.pckChainPem, "latin1");
    const inner = Buffer.alloc(6);
    inner.writeUInt16LE(5, 0);
    inner.writeUInt32LE(pemBytes.length, 2);
    const certData = Buffer.concat([qeReport, p1363(qeReport, this.pck.privateKey), auth, q.qeAuthData, inner, pemBytes]);
    const certHdr = Buffer.alloc(6);
    certHdr.writeUInt16LE(6, 0);
    certHdr.writeUInt32LE(certData.length, 2);
    const sigData = Buffer.concat([p1363(region, this.att.privateKey), attRaw, certHdr, certData]);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(sigData.length);
    return Buffer.concat([region, len, sigData]);
  }
}

/** A test AMD (Milan names): ARK/ASK with test RSA keys, the real VCEK's TBS with a test P-384 key, reports over any data. */
export class TestAmd {
  readonly ark: string;
  readonly ask: string;
  readonly vcek: Buffer;
  private readonly vcekKey = generateKeyPairSync("ec", { namedCurve: "P-384" });
  private readonly arkKey: KeyObject;
  private readonly arkDer: Buffer;
  /** TCB bytes written over the report's (Milan layout: [bl, tee, 0,0,0,0, snp, ucode]); undefined = the real ones. */
  tcb: { current?: Buffer; committed?: Buffer; launch?: Buffer } = {};

  constructor(now = new Date()) {
    const validity: [Date, Date] = [new Date(now.getTime() - DAY), new Date(now.getTime() + 365 * DAY)];
    const rsa = () => generateKeyPairSync("rsa", { modulusLength: 2048 });
    const arkKey = rsa();
    const askKey = rsa();
    const arkDer = splitPem(AMD_MILAN_ARK_PEM)[0];
    const askDer = splitPem(AMD_MILAN_ASK_PEM)[0];
    const ark2 = pssSigned(arkDer, tbsWith(arkDer, { spki: spkiDer(arkKey.publicKey), validity }), arkKey.privateKey);
    const ask2 = pssSigned(askDer, tbsWith(askDer, { spki: spkiDer(askKey.publicKey), validity }), arkKey.privateKey);
    const realVcek = snpVcek();
    this.vcek = pssSigned(realVcek, tbsWith(realVcek, { spki: spkiDer(this.vcekKey.publicKey), validity }), askKey.privateKey);
    this.ark = toPem(ark2);
    this.ask = toPem(ask2);
    this.arkKey = arkKey.privateKey;
    this.arkDer = ark2;
  }

  get askSerial(): string {
    return certFields(splitPem(this.ask)[0]).serialHex;
  }
  get vcekSerial(): string {
    return certFields(this.vcek).serialHex;
  }

  /** AMD's product CRL as the KDS serves it: issued by the ARK, RSASSA-PSS/SHA-384, valid [now - 1 d, now + days]. */
  crl(o: { revoke?: string[]; now?: Date; days?: number; key?: KeyObject } = {}): Buffer {
    const now = o.now ?? new Date();
    const alg = Buffer.from(raw(children(parseDer(this.arkDer))[1])); // the ARK's own RSASSA-PSS AlgorithmIdentifier
    const entries = (o.revoke ?? []).map((s) => seq(uint(Buffer.from(s.length % 2 ? `0${s}` : s, "hex")), time(now)));
    const tbs = seq(
      tlv(TAG.INTEGER, Buffer.from([1])),
      alg,
      certFields(this.arkDer).subjectRaw,
      time(new Date(now.getTime() - DAY)),
      time(new Date(now.getTime() + (o.days ?? 7) * DAY)),
      ...(entries.length ? [seq(...entries)] : []),
    );
    return seq(tbs, alg, bitString(pssSignature(tbs, o.key ?? this.arkKey)));
  }

  /** The real Milan report with `reportData`, signed by the test VCEK key (r, s little-endian, 72 bytes each). */
  report(reportData: Buffer): Buffer {
    const r = Buffer.from(snpReport());
    reportData.copy(r, 0x50);
    this.tcb.current?.copy(r, 0x38);
    this.tcb.committed?.copy(r, 0x1e0);
    this.tcb.launch?.copy(r, 0x1f0);
    const sig = sign("sha384", r.subarray(0, SNP_SIGNED_LEN), { key: this.vcekKey.privateKey, dsaEncoding: "ieee-p1363" });
    r.fill(0, SNP_SIGNED_LEN);
    Buffer.from(sig.subarray(0, 48)).reverse().copy(r, SNP_SIGNED_LEN);
    Buffer.from(sig.subarray(48)).reverse().copy(r, SNP_SIGNED_LEN + 72);
    return r;
  }
}

const pssSignature = (data: Buffer, key: KeyObject): Buffer => sign("sha384", data, { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 48 });
/** `tbs` signed like `der` (its RSASSA-PSS AlgorithmIdentifier) with `key`. */
function pssSigned(der: Buffer, tbs: Buffer, key: KeyObject): Buffer {
  const alg = Buffer.from(raw(children(parseDer(der))[1]));
  return seq(tbs, alg, bitString(pssSignature(tbs, key)));
}

/** A test NVIDIA: the real GPU chain re-keyed (same names, test P-384 keys), SPDM transcripts over any nonce. */
export class TestNvidia {
  readonly rootPem: string;
  readonly chainPem: string;
  /** Leaf first, root last, with the private keys that go with them. */
  readonly ders: Buffer[];
  readonly keys: KeyObject[];
  private readonly leafKey: KeyObject;

  constructor(now = new Date()) {
    const validity: [Date, Date] = [new Date(now.getTime() - DAY), new Date(now.getTime() + 365 * DAY)];
    const ders = splitPem(nvChain()); // leaf first, NVIDIA Device Identity CA last
    const keys = ders.map(() => generateKeyPairSync("ec", { namedCurve: "P-384" }));
    const out: Buffer[] = [];
    for (let i = ders.length - 1; i >= 0; i--) {
      const signer = keys[Math.min(i + 1, ders.length - 1)].privateKey;
      const tbs = tbsWith(ders[i], { spki: spkiDer(keys[i].publicKey), validity });
      out[i] = seq(tbs, ECDSA_SHA384, bitString(sign("sha384", tbs, signer)));
    }
    this.rootPem = toPem(out[out.length - 1]);
    this.chainPem = out.map((d) => toPem(d)).join("");
    this.leafKey = keys[0].privateKey;
    this.ders = out;
    this.keys = keys.map((k) => k.privateKey);
  }

  /**
   * An OCSP answer (RFC 6960, signed by the issuer) for the certificate a request's CertID names. `revoked` lists
   * chain indexes to answer REVOKED; `validDays` sets nextUpdate; `signWith` forges the signature with another key.
   */
  ocspAnswer(request: Buffer, o: { revoked?: number[]; validDays?: number; now?: Date; signWith?: KeyObject } = {}): Buffer {
    const now = o.now ?? new Date();
    const certIdRaw = Buffer.from(raw(children(children(children(children(parseDer(request))[0])[0])[0])[0]));
    const serial = intHex(children(parseDer(certIdRaw))[3]);
    const idx = this.ders.findIndex((d) => certFields(d).serialHex === serial);
    const gen = (d: Date) => tlv(TAG.GENERALIZED_TIME, Buffer.from(d.toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:T]/g, ""), "latin1"));
    const status = o.revoked?.includes(idx) ? tlv(0xa1, gen(now)) : tlv(0x80, Buffer.alloc(0));
    const single = seq(certIdRaw, status, gen(new Date(now.getTime() - DAY)), explicit(0, gen(new Date(now.getTime() + (o.validDays ?? 7) * DAY))));
    const issuer = this.ders[Math.min(idx + 1, this.ders.length - 1)];
    const data = seq(explicit(1, certFields(issuer).subjectRaw), gen(now), seq(single));
    const key = o.signWith ?? this.keys[Math.min(idx + 1, this.keys.length - 1)];
    const basic = seq(data, ECDSA_SHA384, bitString(sign("sha384", data, key)));
    return seq(tlv(0x0a, Buffer.from([0])), explicit(0, seq(oid("1.3.6.1.5.5.7.48.1.1"), tlv(TAG.OCTET_STRING, basic))));
  }

  /** The real Hopper transcript with `nonce` as requester nonce, signed by the test leaf. */
  /** The real transcript with `nonce` (and, optionally, other values for some measurement blocks), re-signed. */
  transcript(nonce: Buffer, values?: Map<number, Buffer>): Buffer {
    const ev = Buffer.from(nvEvidence());
    nonce.copy(ev, 4);
    if (values) {
      const parsed = parseNvidiaEvidence(ev);
      for (const b of parsed.blocks) {
        const v = values.get(b.index);
        if (!v) continue;
        if (v.length !== b.value.length) throw new Error(`block ${b.index} holds ${b.value.length} bytes`);
        v.copy(ev, b.value.byteOffset - ev.byteOffset);
      }
    }
    const signed = ev.subarray(0, ev.length - 96);
    sign("sha384", signed, { key: this.leafKey, dsaEncoding: "ieee-p1363" }).copy(ev, ev.length - 96);
    return ev;
  }

  bundle(nonce: Buffer): Buffer {
    return encodeGpuEvidence({ evidence: this.transcript(nonce), certChain: this.chainPem });
  }
}

/** Intel PCS v4 shapes for one collateral. `fail` makes every request answer that status; requests are counted. */
export async function servePcs(col: () => QuoteCollateralV3, o: { fail?: number } = {}): Promise<{ url: string; requests: string[]; close: () => Promise<void>; server: Server }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    requests.push(url.pathname + url.search);
    if (o.fail) {
      res.writeHead(o.fail).end();
      return;
    }
    const c = col();
    const hdr = (pem: string) => encodeURIComponent(pem);
    const hex = (v: string | number[]) => (Array.isArray(v) ? Buffer.from(v).toString("hex") : v);
    if (url.pathname === "/tdx/certification/v4/tcb" && url.searchParams.get("fmspc")) {
      res.writeHead(200, { "content-type": "application/json", "TCB-Info-Issuer-Chain": hdr(c.tcb_info_issuer_chain) });
      res.end(`{"tcbInfo":${c.tcb_info},"signature":"${hex(c.tcb_info_signature)}"}`);
    } else if (url.pathname === "/tdx/certification/v4/qe/identity") {
      res.writeHead(200, { "content-type": "application/json", "SGX-Enclave-Identity-Issuer-Chain": hdr(c.qe_identity_issuer_chain) });
      res.end(`{"enclaveIdentity":${c.qe_identity},"signature":"${hex(c.qe_identity_signature)}"}`);
    } else if (url.pathname === "/sgx/certification/v4/pckcrl" && url.searchParams.get("ca")) {
      res.writeHead(200, { "content-type": "application/pkix-crl", "SGX-PCK-CRL-Issuer-Chain": hdr(c.pck_crl_issuer_chain) });
      res.end(Buffer.from(hex(c.pck_crl), "hex"));
    } else if (url.pathname === "/sgx/certification/v4/rootcacrl") {
      res.writeHead(200, { "content-type": "application/pkix-crl" });
      res.end(Buffer.from(hex(c.root_ca_crl), "hex"));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, requests, server, close: () => new Promise((r) => server.close(() => r())) };
}

/**
 * A directory that behaves like configfs-tsm for one provider. New entries get `provider`, `generation` and an
 * `outblob` FIFO; when a reader opens outblob, the report over `inblob` is written and `generation` moves by one
 * (by two for the first `raceFirst` reads: another writer slipped in).
 */
export class FakeTsm {
  readonly root = mkdtempSync(join(tmpdir(), "fake-tsm-"));
  raceFirst = 0;
  served = 0;
  private timer?: NodeJS.Timeout;
  private readonly servedStamp = new Map<string, string>();
  constructor(
    readonly provider: string,
    private readonly generate: (inblob: Buffer) => { outblob: Buffer; auxblob?: Buffer },
  ) {}

  start(): this {
    this.timer = setInterval(() => this.tick(), 2);
    return this;
  }

  private tick(): void {
    for (const name of readdirSync(this.root)) {
      const e = join(this.root, name);
      if (!existsSync(join(e, "provider"))) {
        writeFileSync(join(e, "generation"), "0\n");
        execFileSync("mkfifo", [join(e, "outblob")]);
        writeFileSync(join(e, "provider"), `${this.provider}\n`);
        continue;
      }
      let fd: number;
      try {
        fd = openSync(join(e, "outblob"), constants.O_WRONLY | constants.O_NONBLOCK);
      } catch {
        continue; // ENXIO: nobody is reading outblob now
      }
      try {
        // Serve once per write to inblob (the reader keeps the FIFO open while it reads, so it looks present again).
        const stamp = existsSync(join(e, "inblob")) ? String(statSync(join(e, "inblob"), { bigint: true }).mtimeNs) : "none";
        if (this.servedStamp.get(e) === stamp) continue;
        this.servedStamp.set(e, stamp);
        const inblob = existsSync(join(e, "inblob")) ? readFileSync(join(e, "inblob")) : Buffer.alloc(0);
        const g = Number(readFileSync(join(e, "generation"), "utf8"));
        const out = this.generate(inblob);
        writeFileSync(join(e, "generation"), `${g + (this.served < this.raceFirst ? 2 : 1)}\n`);
        if (out.auxblob) writeFileSync(join(e, "auxblob"), out.auxblob);
        this.served++;
        writeSync(fd, out.outblob);
      } finally {
        closeSync(fd);
      }
    }
  }

  stop(): void {
    clearInterval(this.timer);
    rmSync(this.root, { recursive: true, force: true });
  }
}
