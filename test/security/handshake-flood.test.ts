// Issue #10 item 6: a stranger must not make a node verify attestation evidence (milliseconds of CPU each) at line
// rate. The listener asks each dialer for a proof of work (SHA-256 with leading zero bits) before it calls the
// verifier. Here a flood of handshakes with junk certificates runs against a listener whose verifier burns 20 ms of
// CPU per call (a stand-in for TDX/SNP/NVIDIA chain checks), while a legitimate peer dials; the same flood against
// a listener without the proof of work (the old behaviour) is shown for comparison.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import tls from "node:tls";
import { randomBytes, X509Certificate } from "node:crypto";
import { createNodeIdentity } from "../../src/tee/identity.js";
import { dial, listen, type PeerVerifier, type TlsIdentity } from "../../src/protocol/transport.js";
import { encodeFrame, FrameType } from "../../src/protocol/frame.js";

const VERIFY_CPU_MS = 20;
const FLOOD_MS = 3_000;
const FLOODERS = 64;
const LEGIT_DIALS = 3;

let server: TlsIdentity;
let legit: TlsIdentity;
let junk: TlsIdentity;
let keepAlive: NodeJS.Timeout;
before(async () => {
  keepAlive = setInterval(() => {}, 1000);
  [server, legit, junk] = await Promise.all(["proxy", "worker", "worker"].map(async (role) => (await createNodeIdentity({ role: role as "proxy" })).tls));
});
after(() => clearInterval(keepAlive));

function burn(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

interface Run {
  strangerVerifications: number;
  legitMs: number[];
  floodHandshakes: number;
  refused: Record<string, number>;
}

async function run(powBits: number): Promise<Run> {
  const legitDer = new X509Certificate(legit.certPem).raw;
  let strangerVerifications = 0;
  const verifyPeer: PeerVerifier = async (der) => {
    burn(VERIFY_CPU_MS);
    if (der && der.equals(legitDer)) return { description: "legit worker", insecure: true };
    strangerVerifications++;
    throw new Error("junk certificate: no RA-TLS evidence");
  };
  const listener = await listen({
    host: "127.0.0.1",
    port: 0,
    identity: server,
    requestClientCert: true,
    verifyPeer,
    powBits,
    maxConnectionsPerAddress: 1_000, // a real flood comes from many addresses
    connection: { role: "proxy", nodeId: "P" },
    onConnection: () => {},
  });
  let stop = false;
  let floodHandshakes = 0;
  // Each flooder dials with a junk certificate, answers any challenge with a junk nonce, and dials again as soon as
  // the listener closes it (or after 1 s).
  // One TLS context for all flood handshakes (building one per connection costs the flooder more than the listener).
  const context = tls.createSecureContext({ key: junk.keyPem, cert: junk.certPem, minVersion: "TLSv1.3" });
  const flooder = async () => {
    while (!stop) {
      await new Promise<void>((resolve) => {
        const s = tls.connect({ host: "127.0.0.1", port: listener.port, rejectUnauthorized: false, secureContext: context });
        const done = () => (s.destroy(), resolve());
        const timer = setTimeout(done, 1_000);
        s.on("error", () => {});
        s.once("close", () => (clearTimeout(timer), resolve()));
        s.once("secureConnect", () => {
          floodHandshakes++;
          s.write(encodeFrame(FrameType.Solution, 0, randomBytes(8)));
        });
        s.on("data", () => {});
      });
    }
  };
  const flood = Promise.all(Array.from({ length: FLOODERS }, flooder));
  await new Promise((r) => setTimeout(r, 300)); // let the flood build up
  const legitMs: number[] = [];
  const t0 = Date.now();
  // At least LEGIT_DIALS dials however slow the machine is (the flood goes on meanwhile): each must complete.
  while (Date.now() - t0 < FLOOD_MS - 300 || legitMs.length < LEGIT_DIALS) {
    const start = performance.now();
    const { conn } = await dial({ host: "127.0.0.1", port: listener.port, identity: legit, verifyPeer: async () => ({ description: "proxy", insecure: true }), connection: { role: "worker", nodeId: "W" } });
    legitMs.push(performance.now() - start);
    conn.close();
    await new Promise((r) => setTimeout(r, 100));
  }
  stop = true;
  await flood;
  const refused = listener.stats().refused;
  await listener.close();
  return { strangerVerifications, legitMs, floodHandshakes, refused };
}

const summary = (ms: number[]) => {
  const s = [...ms].sort((a, b) => a - b);
  return `${s.length} handshakes, median ${s[Math.floor(s.length / 2)]!.toFixed(0)} ms, max ${s[s.length - 1]!.toFixed(0)} ms`;
};

test("a flood of junk-certificate handshakes does not reach the verifier nor starve a legitimate peer", async () => {
  const open = await run(0);
  const guarded = await run(12);
  console.log(
    `# with proof of work (12 bits): ${guarded.floodHandshakes} junk TLS handshakes in ${FLOOD_MS} ms, ${guarded.strangerVerifications} of them verified; ` +
      `legit peer: ${summary(guarded.legitMs)}; refusals ${JSON.stringify(guarded.refused)}`,
  );
  console.log(
    `# without (old behaviour): ${open.floodHandshakes} junk TLS handshakes, ${open.strangerVerifications} verified ` +
      `(${((open.strangerVerifications * VERIFY_CPU_MS) / FLOOD_MS * 100).toFixed(0)}% of one core spent verifying strangers); legit peer: ${summary(open.legitMs)}`,
  );
  // A random nonce passes 12 bits once in 4096 tries: that is the rate at which a non-paying flood reaches the verifier.
  assert.ok(guarded.strangerVerifications * 100 <= guarded.floodHandshakes, "under 1% of the flood reached the verifier");
  // Not starved: every dial of the legitimate peer completed (the listener closes a handshake that does not finish
  // within its handshake timeout, and dial then throws, failing this test). How long they took is printed above, not
  // asserted: wall-clock bounds fail on a loaded 2-core CI machine without saying anything about the code.
  assert.ok(open.strangerVerifications > 10 * Math.max(1, guarded.strangerVerifications), "the comparison run verified far more of the flood");
});
