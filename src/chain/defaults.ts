/** Where `cocoon chain` listens by default (kept apart from server.ts so light modules need not load the emulator). */
export const DEFAULT_CHAIN_HOST = "127.0.0.1";
export const DEFAULT_CHAIN_PORT = 8081;
