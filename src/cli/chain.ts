/**
 * `cocoon chain`: runs the local development TON chain (TVM emulator + TON Center v2 API) until Ctrl-C.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { toNano } from "@ton/core";
import { DEFAULT_CHAIN_HOST, DEFAULT_CHAIN_PORT } from "../chain/defaults.js";
import { ChainServer, startChainServer } from "../chain/server.js";

export const DEFAULT_CHAIN_DATA_DIR = join(homedir(), ".cocoon", "chain");

export interface ChainCommandOptions {
  host: string;
  port: string;
  dataDir: string;
  memory?: boolean;
  faucetMax: string;
}

function parsePort(s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--port must be 0..65535, got "${s}"`);
  return n;
}

/** Starts the chain for the CLI and prints where it is. Returns the server (the caller keeps the process alive). */
export async function runChainCommand(o: ChainCommandOptions, print: (s: string) => void = console.log): Promise<ChainServer> {
  let faucetMax: bigint;
  try {
    faucetMax = toNano(o.faucetMax);
  } catch {
    throw new Error(`--faucet-max must be an amount of TON like 1000, got "${o.faucetMax}"`);
  }
  const srv = await startChainServer({
    host: o.host, port: parsePort(o.port), dataDir: o.memory ? undefined : o.dataDir, faucetMaxNanoton: faucetMax,
    log: (s) => print(s),
  });
  const base = srv.url.replace(/\/jsonRPC$/, "");
  print(`Local TON chain ready.`);
  print(`  endpoint:  ${srv.url}`);
  print(`  state:     ${o.memory ? "in memory (lost on exit)" : o.dataDir}`);
  print(`  faucet:    curl -X POST ${base}/faucet -d '{"address":"<ADDR>","amount":"5000000000"}'  (nanoTON, max ${o.faucetMax} TON)`);
  print(`Hint: other commands find it with --network devnet${srv.port === DEFAULT_CHAIN_PORT ? "" : ` --endpoint ${srv.url}`}; e.g. "cocoon wallet new --fund". Ctrl-C stops it.`);
  return srv;
}

export function registerChainCommand(program: Command): void {
  program
    .command("chain")
    .description("run a local TON chain for development (TVM emulator behind a TON Center v2-compatible API, with a faucet)")
    .option("--host <host>", "address to listen on", DEFAULT_CHAIN_HOST)
    .option("--port <port>", "port to listen on", String(DEFAULT_CHAIN_PORT))
    .option("--data-dir <dir>", "where chain state is kept between runs", DEFAULT_CHAIN_DATA_DIR)
    .option("--memory", "keep no state on disk")
    .option("--faucet-max <ton>", "largest faucet grant per request, in TON", "1000")
    .action(async (o: ChainCommandOptions) => {
      const srv = await runChainCommand(o);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
      console.log("stopping the chain (state is saved after every block)...");
      await srv.close();
    });
}
