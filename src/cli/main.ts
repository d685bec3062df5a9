#!/usr/bin/env node
// `cocoon <command>`: one CLI for every role of the network.
import { Command, InvalidArgumentError, Option } from "commander";
import { VERSION } from "../version.js";
import {
  startClientRole,
  startProxyRole,
  startWorkerRole,
  DEFAULT_CLIENT_API_PORT,
  DEFAULT_CLIENT_PORT,
  DEFAULT_PROXY_STATUS_PORT,
  DEFAULT_WORKER_PORT,
  DEFAULT_WORKER_STATUS_PORT,
} from "./roles.js";
import { runDevnet } from "./devnet.js";
import { DEFAULT_DRAIN_TIMEOUT_S, parseDrainTimeout, reportReady, serveUntilSignal } from "./lifecycle.js";
import { registerAttestCommand } from "./attest.js";
import { registerClientChannelCommands } from "./channel.js";
import { REQUEST_TIMEOUT_MS } from "../client/client.js";
import { registerChainCommand } from "./chain.js";
import { registerWalletCommand } from "./wallet.js";
import { registerRootCommand } from "./root-admin.js";
import { registerProxyAdminCommands } from "./proxy-admin.js";
import { registerAdminCommand } from "./admin.js";

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("a port is an integer from 0 to 65535 (0 picks a free one)");
  return n;
}
function positive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("expected a positive integer");
  return n;
}
const collect = (value: string, prev: string[] = []) => [...prev, value];
function drainSeconds(value: string): number {
  try {
    return parseDrainTimeout(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}
const ADMIN_HELP = "operator controls' token file (made with a random token, mode 0600, when missing); without it the status port offers no controls";
const DRAIN_HELP = "on SIGTERM: how long to let running requests finish before stopping, in seconds";
const drainMs = (o: { drainTimeout: number }) => ({ drainTimeoutMs: o.drainTimeout * 1000 });

/** --root and friends: find proxies on the root contract instead of pinning one with --proxy. */
const discoveryOptions = (cmd: Command) =>
  cmd
    .option("--root <address>", "root contract: without --proxy, use the proxies registered there (verified against the root's allow-lists)")
    .option("--chain-endpoint <url>", "TON Center v2 JSON-RPC endpoint of the chain holding --root (default: the payments config's, else the network's)")
    .option("--network <name>", "devnet | testnet | mainnet, for --root (default: the payments config's, else devnet)");

const securityOptions = (cmd: Command) =>
  cmd
    .addOption(new Option("--platform <kind>", "attestation platform of this node: sim (development, INSECURE), tdx, sev-snp").default("sim"))
    .option("--policy <file>", "attestation policy JSON (allowed measurements, models, TCB); default: development policy")
    .option("--pccs <url>", "TDX: PCCS or Intel PCS (API v4) for collateral attached to this node's quotes (default https://api.trustedservices.intel.com)")
    .option("--kds <url>", "SEV-SNP: AMD KDS for the VCEK when the host supplies no certificate table (default https://kdsintf.amd.com)")
    .option("--tsm-root <dir>", "configfs-tsm report directory (default /sys/kernel/config/tsm/report)")
    .option("--event-log <file>", "TDX: the CCEL boot event log attached to this node's evidence, replayed by peers against its RTMRs (default /sys/firmware/acpi/tables/data/CCEL when present; none = attach none)")
    .option("--rim-service <url>", "workers: NVIDIA RIM service for the reference measurements (RIMs) of the GPU's driver and VBIOS, attached to its evidence (default https://rim.attestation.nvidia.com)")
    .option("--collateral-cache <dir>", "where fetched TDX collateral and VCEKs are cached, verified again on every load (default ~/.cocoon/collateral)");

const program = new Command();
program.name("cocoon").description("Confidential, decentralized AI inference on TON (TypeScript).").version(VERSION);

const clientCommand = discoveryOptions(securityOptions(
  program
    .command("client")
    .description("OpenAI-compatible HTTP API for apps, connected to one pinned proxy or to several found on the root (subcommands: deposit, close, withdraw, channels, channel)")
    .option("--host <host>", "address to serve the API on", "127.0.0.1")
    .option("--port <port>", "API port", port, DEFAULT_CLIENT_API_PORT)
    .option("--proxy <host:port>", `pin one proxy's client port (default without --root: 127.0.0.1:${DEFAULT_CLIENT_PORT})`)
    .option("--max-proxies <n>", "with --root: most proxies to keep links to (default 3)", positive)
    .option("--max-coefficient <n>", "most this client pays per token, as a price coefficient in thousandths of the root's price (default 4000 = 4x); a request's max_coefficient can only lower it", positive)
    .option("--no-seal", "send requests in clear through the proxy (development only; refused by --policy production)")
    .option("--payments <file>", "payments config JSON: wallet, channel, ledger (cocoon devnet writes one); without it nothing is paid")
    .option("--channel-deposit <ton>", "with --root and --payments: TON put into a channel this client opens with a proxy it has none with, and into each top-up when a channel can pay less than a quarter of it (default 1)")
    .option("--max-deposit <ton>", "with --root and --payments: most TON this client keeps deposited in its channels that are not closed, opened by hand or on demand; 0 turns opening and topping up off (default 10; 0 on mainnet)")
    .option("--cors-origin <origin>", "let browser pages from this origin call the API (repeat for more; * for any); pages on localhost are always allowed", collect, [])
    .option("--request-timeout <seconds>", "cancel a request that runs longer than this and answer 504", positive, REQUEST_TIMEOUT_MS / 1000)
    .option("--max-connections <n>", "most app HTTP connections open at once (default 2048); a streaming answer holds one while it streams, so raise it for thousands of long streams", positive)
    .option("--drain-timeout <seconds>", DRAIN_HELP, drainSeconds, DEFAULT_DRAIN_TIMEOUT_S)
    .option("--admin-token-file <file>", ADMIN_HELP),
)).action(async (o) => {
  const client = await startClientRole(o);
  reportReady({ role: "client", api: `${client.url}/v1`, port: client.port }, `client ready: API at ${client.url}/v1 (status: ${client.url}/status)`);
  await serveUntilSignal({ drain: (ms) => client.drain(ms), stop: () => client.stop() }, drainMs(o));
});
registerClientChannelCommands(clientCommand);

const proxyCommand = securityOptions(
  program
    .command("proxy")
    .description("accepts workers and clients over attested TLS, routes and meters requests (subcommands: register, unregister, status, unstake)")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--worker-port <port>", "port for workers", port, DEFAULT_WORKER_PORT)
    .option("--client-port <port>", "port for clients", port, DEFAULT_CLIENT_PORT)
    .option("--status-port <port>", "HTTP status page port", port, DEFAULT_PROXY_STATUS_PORT)
    .option("--name <name>", "this proxy's name in its logs (several proxies on one host)", "proxy")
    .option("--payments <file>", "payments config JSON: operator wallet, proxy contract, root, ledger; without it requests are only counted")
    .option("--max-in-flight-per-client <n>", "requests one client connection may have in flight here (running or queued) before more are refused as overloaded (default 2048)", positive)
    .option("--max-streams-per-client <n>", "request streams one client connection may hold open at once, past which its new ones are refused (default 1024); raise it with --max-in-flight-per-client for thousands of long streams", positive)
    .option("--drain-timeout <seconds>", DRAIN_HELP, drainSeconds, DEFAULT_DRAIN_TIMEOUT_S)
    .option("--admin-token-file <file>", ADMIN_HELP),
).action(async (o) => {
  const proxy = await startProxyRole(o);
  reportReady(
    { role: "proxy", workerPort: proxy.workerPort, clientPort: proxy.clientPort, status: proxy.statusUrl },
    `proxy ready: workers connect to ${o.host}:${proxy.workerPort}, clients to ${o.host}:${proxy.clientPort}, status at ${proxy.statusUrl}`,
  );
  await serveUntilSignal({ drain: (ms) => proxy.drain(ms), stop: () => proxy.stop() }, drainMs(o));
});
registerProxyAdminCommands(proxyCommand);

discoveryOptions(securityOptions(
  program
    .command("worker")
    .description("serves a model: dials out to proxies (pinned, or every one registered on the root) and runs requests on a backend")
    .option("--proxy <host:port>", `a proxy's worker port (repeat for several; default without --root: 127.0.0.1:${DEFAULT_WORKER_PORT})`, collect, [])
    .addOption(new Option("--backend <kind>", "embedded: in-process llama.cpp; openai: any OpenAI-compatible engine").choices(["embedded", "openai"]).default("embedded"))
    .option("--upstream <url>", "base URL of the engine for --backend openai (vLLM, SGLang, llama.cpp server, Ollama)")
    .option("--upstream-key <key>", "API key for the upstream engine")
    .option("--model <name>", "model name to announce (embedded) or to serve from the engine (openai)")
    .option("--model-file <path>", "GGUF file for --backend embedded (default: the shipped KJV model)")
    .option("--model-dir <dir>", "--backend openai: directory the engine loads the weights from; its Merkle digest is attested (needs --model)")
    .option("--model-digest <hex>", "--backend openai: the weights digest to attest when the directory is not readable here (needs --model)")
    .option("--gpu <index|none>", "tdx/sev-snp workers: the GPU whose NVIDIA CC evidence is attested (default 0 when the policy requires a GPU)")
    .option("--capacity <n>", "max active requests (each proxy connection then takes up to max(1024, 2 x this) streams)", positive, 4)
    .option("--price-coefficient <n>", "price asked, in thousandths of the root's base price (1000 = 1x, 1500 = 1.5x); clients cap it", positive)
    .option("--threads <n>", "CPU threads for the embedded engine", positive)
    .option("--name <id>", "worker id shown to the proxy")
    .option("--status-host <host>", "address of the status page", "127.0.0.1")
    .option("--status-port <port>", "HTTP status page port", port, DEFAULT_WORKER_STATUS_PORT)
    .option("--payments <file>", "payments config JSON: payout wallet, proxy contract, root, ledger; without it the worker earns nothing")
    .option("--drain-timeout <seconds>", DRAIN_HELP, drainSeconds, DEFAULT_DRAIN_TIMEOUT_S)
    .option("--admin-token-file <file>", ADMIN_HELP),
)).action(async (o) => {
  const worker = await startWorkerRole(o);
  reportReady({ role: "worker", id: worker.id, status: worker.statusUrl }, `worker ${worker.id} ready: dialing ${worker.proxyAddresses.join(", ") || "no proxy yet (waiting for the root to register one)"}; status at ${worker.statusUrl}`);
  await serveUntilSignal({ drain: (ms) => worker.drain(ms), stop: () => worker.stop() }, drainMs(o));
});

program
  .command("devnet")
  .description("a whole network on this machine: two proxies registered on a local root, two workers with the embedded model, and a client")
  .option("--port <port>", "client API port", port, DEFAULT_CLIENT_API_PORT)
  .option("--workers <n>", "number of workers", positive, 2)
  .option("--proxies <n>", "number of proxies, registered on the devnet's root (default 2; 1 with --no-payments)", positive)
  .option("--model-file <path>", "GGUF model for the workers")
  .option("--no-payments", "no chain and no payments: requests are free (only counted)")
  .option("--data-dir <dir>", "where the devnet keeps chain state, ledgers and payments configs (default: a new temporary folder)")
  .option("--drain-timeout <seconds>", "on SIGTERM: how long each role lets running requests finish (Ctrl-C stops at once)", drainSeconds, DEFAULT_DRAIN_TIMEOUT_S)
  .option("--dashboard-port <port>", "port of the devnet page (every node, balances, a chat box); 0 picks a free one", port, 0)
  .action(async (o) => {
    await runDevnet({ apiPort: o.port, workers: o.workers, proxies: o.proxies, modelFile: o.modelFile, payments: o.payments, dataDir: o.dataDir, drainTimeoutS: o.drainTimeout, dashboardPort: o.dashboardPort });
  });

registerAttestCommand(program);
registerChainCommand(program);
registerWalletCommand(program);
registerRootCommand(program);
registerAdminCommand(program);

program.parseAsync(process.argv).catch((err: Error) => {
  console.error(`cocoon: ${err.message}`);
  process.exit(1);
});
