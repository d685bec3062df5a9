// Cocoon contract wrappers, constants and body builders in one import. See docs/payments.md.
export * from "./errors.js";
export * from "./opcodes.js";
export * from "./ClientChannel.js";
export * from "./ProxyContract.js";
export * from "./RootContract.js";
