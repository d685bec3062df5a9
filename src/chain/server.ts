/**
 * `cocoon chain`: the local development chain served over HTTP as a compatible subset of TON Center API v2.
 *
 *   POST /jsonRPC                 {"method","params","id","jsonrpc"}   (also under /api/v2/)
 *   GET  /<method>?k=v            e.g. /getAddressBalance?address=EQ...
 *   POST /<method>                JSON object of parameters (e.g. POST /sendBoc {"boc": "..."})
 *   POST /faucet                  {"address","amount"} amount in nanoTON, capped (development funds)
 *   GET  /                        a short description of the chain
 * Answers: {"ok":true,"result":...} or {"ok":false,"error":"...","code":N} with HTTP status N on every path,
 * /jsonRPC included, as TON Center answers (422 bad parameter, 404 not found / unknown method, 409 not a token,
 * 500 refused by the chain: a message the contract does not accept, a block that does not exist or is not kept).
 */
import { createServer, IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Blockchain } from "@ton/sandbox";
import { ChainError, LocalChain, LocalChainOptions } from "./localChain.js";
import { MAX_BODY_BYTES, parseHttpRequest } from "./rpcParams.js";
import { callRpcMethod, RPC_METHODS } from "./rpcMethods.js";

import { DEFAULT_CHAIN_HOST, DEFAULT_CHAIN_PORT } from "./defaults.js";

export { DEFAULT_CHAIN_HOST, DEFAULT_CHAIN_PORT };

export interface ChainServerOptions {
  host?: string;
  /** 0 picks a free port. Default 8081. */
  port?: number;
  /** Directory for chain state; without it the chain lives in memory only. */
  dataDir?: string;
  log?: (s: string) => void;
  /** Largest faucet grant in nanoTON (default 1000 TON). */
  faucetMaxNanoton?: bigint;
  /** Bounded transaction history (defaults: 1000 per account, 100000 overall). */
  history?: LocalChainOptions["history"];
}

export interface ChainServer {
  /** The JSON-RPC endpoint, e.g. http://127.0.0.1:8081/jsonRPC (what TonClient's `endpoint` takes). */
  url: string;
  port: number;
  blockchain: Blockchain;
  chain: LocalChain;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        tooBig = true;
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => (tooBig ? reject(new ChainError(413, `request body is larger than ${MAX_BODY_BYTES} bytes`)) : resolve(Buffer.concat(chunks))));
    req.on("error", reject);
  });
}

function isJsonRpcPath(url: string | undefined): boolean {
  const path = (url ?? "").split("?")[0].replace(/\/+$/, "");
  return path === "/jsonRPC" || path === "/api/v2/jsonRPC";
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "access-control-allow-origin": "*",
  });
  res.end(text);
}

/** Starts the chain (restoring `dataDir` when it holds a previous run) and serves it over HTTP. */
export async function startChainServer(opts: ChainServerOptions = {}): Promise<ChainServer> {
  const host = opts.host ?? DEFAULT_CHAIN_HOST;
  const log = opts.log ?? (() => {});
  const chain = await LocalChain.open({ dataDir: opts.dataDir, history: opts.history, faucetMaxNanoton: opts.faucetMaxNanoton });

  const server = createServer(async (req, res) => {
    let id: string | number | null | undefined;
    try {
      if (req.method === "OPTIONS") {
        res.writeHead(204, {
          "access-control-allow-origin": "*",
          "access-control-allow-methods": "GET, POST, OPTIONS",
          "access-control-allow-headers": "content-type, x-api-key, x-ton-client-version",
        });
        res.end();
        return;
      }
      const body = await readBody(req);
      const path = req.url ?? "/";
      if (req.method === "GET" && (path === "/" || path === "/api/v2/" || path === "/api/v2")) {
        reply(res, 200, {
          ok: true,
          result: {
            name: "cocoon local TON chain (TVM emulator, TON Center v2 subset)",
            endpoint: `/jsonRPC`,
            methods: RPC_METHODS,
            block: chain.lastBlockSeqno,
            faucet: { address: chain.treasuryAddress.toString(), max_nanoton: chain.faucetMaxNanoton.toString() },
          },
        });
        return;
      }
      const rpc = parseHttpRequest(req.method ?? "GET", path, body);
      id = rpc.id;
      const result = await callRpcMethod(chain, rpc.method, rpc.params);
      reply(res, 200, { ok: true, result, ...(id !== undefined ? { id, jsonrpc: "2.0" } : {}) });
    } catch (e) {
      const code = e instanceof ChainError ? e.code : 500;
      const error = e instanceof Error ? e.message : String(e);
      if (!(e instanceof ChainError)) log(`chain: internal error: ${error}`);
      const rpc = isJsonRpcPath(req.url) && id !== undefined ? { id, jsonrpc: "2.0" } : {};
      reply(res, code, { ok: false, error, code, ...rpc });
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      reject(e.code === "EADDRINUSE"
        ? new Error(`port ${opts.port ?? DEFAULT_CHAIN_PORT} on ${host} is already in use; stop the other process or pass --port`)
        : e);
    });
    server.listen(opts.port ?? DEFAULT_CHAIN_PORT, host, () => resolve());
  }).catch(async (e) => {
    await chain.close();
    throw e;
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  const url = `http://${shownHost}:${port}/jsonRPC`;
  log(`chain: serving TON Center v2 API at ${url} (data dir: ${opts.dataDir ?? "in memory"})`);

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    blockchain: chain.blockchain,
    chain,
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await chain.close();
      })();
      return closing;
    },
  };
}
