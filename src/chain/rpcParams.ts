/**
 * Parsing of untrusted HTTP input for the local chain's TON Center v2 API: the request envelope (JSON-RPC body,
 * `GET /<method>?query` or `POST /<method>` with a JSON object) and the typed parameters inside it.
 * Every failure is a ChainError with an HTTP code and a message that says what to fix: 422 for a missing or malformed
 * parameter (as TON Center answers), 404 for an unknown path, 405 for a wrong HTTP method, 413 for a huge body.
 */
import { Address, beginCell, BitString, Cell, TupleItem } from "@ton/core";
import { ChainError } from "./localChain.js";

/** Largest request body accepted: 1 MiB (an external message BoC is at most a few KiB). */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Largest number of stack entries accepted by runGetMethod. */
export const MAX_STACK_ITEMS = 256;
/** Optional path prefix, so that endpoints written for toncenter (`.../api/v2/jsonRPC`) work unchanged. */
const API_PREFIX = "/api/v2";

export type Params = Record<string, unknown>;

export interface RpcRequest {
  method: string;
  params: Params;
  /** JSON-RPC id echoed back (absent for plain GET/POST method calls). */
  id?: string | number | null;
}

function isPlainObject(v: unknown): v is Params {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseJsonBody(body: Buffer): unknown {
  const text = body.toString("utf8");
  try {
    return JSON.parse(text);
  } catch {
    throw new ChainError(422, "request body is not valid JSON");
  }
}

/**
 * Turns an HTTP request into an RPC call. `path` includes the query string.
 * Routes: `POST /jsonRPC` ({"method","params","id","jsonrpc"}), `GET /<method>?k=v`, `POST /<method>` (JSON object).
 */
export function parseHttpRequest(httpMethod: string, path: string, body: Buffer): RpcRequest {
  if (body.length > MAX_BODY_BYTES) throw new ChainError(413, `request body is larger than ${MAX_BODY_BYTES} bytes`);
  let url: URL;
  try {
    url = new URL(path, "http://local");
  } catch {
    throw new ChainError(422, "request path is not a valid URL path");
  }
  let route = url.pathname;
  if (route.startsWith(API_PREFIX + "/")) route = route.slice(API_PREFIX.length);
  const name = route.replace(/^\/+/, "").replace(/\/+$/, "");
  if (name === "jsonRPC") {
    if (httpMethod !== "POST") throw new ChainError(405, "use POST for /jsonRPC");
    const req = parseJsonBody(body);
    if (!isPlainObject(req)) throw new ChainError(422, 'JSON-RPC body must be an object like {"method":"...","params":{...}}');
    if (typeof req.method !== "string" || req.method.length === 0) {
      throw new ChainError(422, 'JSON-RPC body needs a string "method"');
    }
    const params = req.params === undefined || req.params === null ? {} : req.params;
    if (!isPlainObject(params)) throw new ChainError(422, '"params" must be an object');
    const id = req.id;
    const validId = typeof id === "string" || typeof id === "number" || id === null ? id : undefined;
    return { method: req.method, params, id: validId };
  }
  if (name.length === 0 || name.includes("/")) throw new ChainError(404, `no such endpoint: ${url.pathname}`);
  if (httpMethod === "GET") {
    const params: Params = {};
    // A repeated key (getLibraries?libraries=a&libraries=b) is a list, as TON Center reads it.
    for (const k of new Set(url.searchParams.keys())) {
      const all = url.searchParams.getAll(k);
      params[k] = all.length > 1 ? all : all[0];
    }
    return { method: name, params };
  }
  if (httpMethod === "POST") {
    if (body.length === 0) return { method: name, params: {} };
    const params = parseJsonBody(body);
    if (!isPlainObject(params)) throw new ChainError(422, `POST /${name} body must be a JSON object of parameters`);
    return { method: name, params };
  }
  throw new ChainError(405, `HTTP method ${httpMethod} is not supported; use GET or POST`);
}

export function requireString(p: Params, name: string): string {
  const v = p[name];
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  throw new ChainError(422, `parameter "${name}" is required and must be a string`);
}

export function optionalString(p: Params, name: string): string | undefined {
  if (p[name] === undefined || p[name] === null || p[name] === "") return undefined;
  return requireString(p, name);
}

export function requireAddress(p: Params, name: string): Address {
  const s = requireString(p, name).trim();
  try {
    return Address.parse(s);
  } catch {
    throw new ChainError(422, `parameter "${name}" is not a TON address (expected raw "0:<64 hex>" or a user-friendly form like "EQ...")`);
  }
}

/** An integer parameter: a JSON number or a decimal string (TON Center sends lt and amounts as strings). */
export function optionalBigInt(p: Params, name: string, min = 0n, max = 2n ** 64n): bigint | undefined {
  const v = p[name];
  if (v === undefined || v === null || v === "") return undefined;
  let n: bigint;
  if (typeof v === "number" && Number.isSafeInteger(v)) n = BigInt(v);
  else if (typeof v === "string" && /^-?\d{1,40}$/.test(v.trim())) n = BigInt(v.trim());
  else throw new ChainError(422, `parameter "${name}" must be an integer (a number or a decimal string)`);
  if (n < min || n > max) throw new ChainError(422, `parameter "${name}" must be between ${min} and ${max}`);
  return n;
}

export function requireBigInt(p: Params, name: string, min = 0n, max = 2n ** 64n): bigint {
  const n = optionalBigInt(p, name, min, max);
  if (n === undefined) throw new ChainError(422, `parameter "${name}" is required`);
  return n;
}

export function optionalInt(p: Params, name: string, min: number, max: number): number | undefined {
  const n = optionalBigInt(p, name, BigInt(min), BigInt(max));
  return n === undefined ? undefined : Number(n);
}

export function optionalBool(p: Params, name: string, byDefault = false): boolean {
  const v = p[name];
  if (v === undefined || v === null || v === "") return byDefault;
  if (typeof v === "boolean") return v;
  if (v === "true" || v === "1" || v === 1) return true;
  if (v === "false" || v === "0" || v === 0) return false;
  throw new ChainError(422, `parameter "${name}" must be true or false`);
}

const BASE64_RE = /^[A-Za-z0-9+/_-]*={0,2}$/;

function decodeBase64(s: string, name: string): Buffer {
  const t = s.trim();
  if (!BASE64_RE.test(t)) throw new ChainError(422, `parameter "${name}" must be base64`);
  return Buffer.from(t.replace(/-/g, "+").replace(/_/g, "/"), "base64");
}

/** A single-root BoC in base64; `undefined` when absent or empty and not required. */
export function optionalCell(p: Params, name: string): Cell | undefined {
  const s = optionalString(p, name);
  if (s === undefined) return undefined;
  return cellFromBase64(s, name);
}

export function cellFromBase64(s: string, name: string): Cell {
  const bytes = decodeBase64(s, name);
  let cells: Cell[];
  try {
    cells = Cell.fromBoc(bytes);
  } catch (e) {
    throw new ChainError(422, `parameter "${name}" is not a valid BoC: ${(e as Error).message}`);
  }
  if (cells.length !== 1) throw new ChainError(422, `parameter "${name}" must hold exactly one root cell, found ${cells.length}`);
  return cells[0];
}

export function requireBocBytes(p: Params, name: string): Buffer {
  const bytes = decodeBase64(requireString(p, name), name);
  if (bytes.length === 0) throw new ChainError(422, `parameter "${name}" is empty`);
  return bytes;
}

/** A 32-byte hash as 64 hex digits or base64 (standard or URL-safe); TonClient sends hex, TON Center prints base64. */
export function optionalHash(p: Params, name: string): Buffer | undefined {
  const s = optionalString(p, name);
  if (s === undefined) return undefined;
  const t = s.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, "hex");
  const b = BASE64_RE.test(t) ? decodeBase64(t, name) : Buffer.alloc(0);
  if (b.length !== 32) throw new ChainError(422, `parameter "${name}" must be a 32-byte hash in hex or base64`);
  return b;
}

/**
 * An account id without workchain (getBlockTransactions' `after_hash`): 64 hex digits or base64 of 32 bytes. Returns
 * the lowercase hex that follows "wc:" in a raw address.
 */
export function optionalAccountHash(p: Params, name: string): string | undefined {
  const h = optionalHash(p, name);
  return h?.toString("hex");
}

/** A list of 32-byte hashes (getLibraries' `libraries`): a JSON array, one string, or a comma-separated string. */
export function requireHashList(p: Params, name: string, max: number): Buffer[] {
  let v = p[name];
  if (typeof v === "string") v = v.split(",").map((x) => x.trim()).filter((x) => x.length > 0);
  if (!Array.isArray(v) || v.length === 0) throw new ChainError(422, `parameter "${name}" must be a non-empty list of hashes`);
  if (v.length > max) throw new ChainError(422, `parameter "${name}" has more than ${max} entries`);
  return v.map((x, i) => {
    const h = optionalHash({ h: x }, "h");
    if (!h) throw new ChainError(422, `${name}[${i}] must be a 32-byte hash in hex or base64`);
    return h;
  });
}

/** Largest depth of a cell given as a JSON object (sendQuerySimple), the TVM's own limit on cell depth. */
const MAX_CELL_DEPTH = 1024;

/**
 * A cell given as a JSON object, the deprecated form of sendQuerySimple:
 * `{"data":{"b64":"<bits, base64>","len":<bit count>},"refs":[<cell>...]}`.
 */
export function cellFromObject(v: unknown, name: string, depth = 0): Cell {
  if (depth > MAX_CELL_DEPTH) throw new ChainError(422, `${name} is nested deeper than ${MAX_CELL_DEPTH} cells`);
  if (!isPlainObject(v) || !isPlainObject(v.data) || typeof v.data.b64 !== "string") {
    throw new ChainError(422, `${name} must be a cell object like {"data":{"b64":"...","len":N},"refs":[]}`);
  }
  const bytes = decodeBase64(v.data.b64, name);
  const len = v.data.len;
  if (typeof len !== "number" || !Number.isInteger(len) || len < 0 || len > 1023 || len > bytes.length * 8) {
    throw new ChainError(422, `${name}.data.len must be the number of bits (0..1023, at most 8 per byte given)`);
  }
  const refs = v.refs === undefined ? [] : v.refs;
  if (!Array.isArray(refs) || refs.length > 4) throw new ChainError(422, `${name}.refs must be a list of at most 4 cells`);
  const b = beginCell().storeBits(new BitString(bytes, 0, len));
  refs.forEach((r, i) => b.storeRef(cellFromObject(r, `${name}.refs[${i}]`, depth + 1)));
  return b.endCell();
}

/** The get-method name (string) or numeric method id. */
export function requireMethod(p: Params): string | number {
  const v = p.method;
  if (typeof v === "number" && Number.isSafeInteger(v)) return v;
  if (typeof v === "string" && /^-?\d{1,10}$/.test(v)) return Number(v);
  if (typeof v === "string" && /^[A-Za-z_][A-Za-z0-9_?!']{0,127}$/.test(v)) return v;
  throw new ChainError(422, 'parameter "method" must be a get-method name like "seqno" or a numeric method id');
}

function stackCell(value: unknown, name: string): Cell {
  if (typeof value === "string") return cellFromBase64(value, name);
  if (isPlainObject(value) && typeof value.bytes === "string") return cellFromBase64(value.bytes, name);
  throw new ChainError(422, `${name} must be a base64 BoC`);
}

/** Deepest nesting of tuples and lists accepted in an input stack. */
const MAX_STACK_DEPTH = 16;
/** Most entries in one input tuple (the TVM's own limit on tuple size). */
const MAX_TUPLE_ITEMS = 255;

/**
 * An entry inside an input tuple or list, in tonlib's form: `tvm.stackEntryNumber`, `tvm.stackEntryCell`,
 * `tvm.stackEntrySlice`, `tvm.stackEntryTuple` or `tvm.stackEntryList` (a list becomes a cons list ending in null).
 */
function nestedEntry(v: unknown, where: string, depth: number): TupleItem {
  if (depth > MAX_STACK_DEPTH) throw new ChainError(422, `${where} nests tuples deeper than ${MAX_STACK_DEPTH}`);
  if (!isPlainObject(v) || typeof v["@type"] !== "string") throw new ChainError(422, `${where} must be a tvm.stackEntry* object`);
  const inner = (o: unknown, key: string): Params => {
    if (!isPlainObject(o)) throw new ChainError(422, `${where}.${key} must be an object`);
    return o;
  };
  const elements = (o: Params, key: string): unknown[] => {
    const e = inner(o[key], key).elements;
    if (!Array.isArray(e) || e.length > MAX_TUPLE_ITEMS) {
      throw new ChainError(422, `${where}.${key}.elements must be a list of at most ${MAX_TUPLE_ITEMS} entries`);
    }
    return e;
  };
  switch (v["@type"]) {
    case "tvm.stackEntryNumber": {
      const n = inner(v.number, "number").number;
      const [item] = parseStack([["num", n]]);
      return item;
    }
    case "tvm.stackEntryCell":
      return { type: "cell", cell: stackCell(inner(v.cell, "cell"), where) };
    case "tvm.stackEntrySlice":
      return { type: "slice", cell: stackCell(inner(v.slice, "slice"), where) };
    case "tvm.stackEntryTuple":
      return { type: "tuple", items: elements(v, "tuple").map((e, i) => nestedEntry(e, `${where}[${i}]`, depth + 1)) };
    case "tvm.stackEntryList": {
      const items = elements(v, "list").map((e, i) => nestedEntry(e, `${where}[${i}]`, depth + 1));
      return items.reduceRight<TupleItem>((tail, head) => ({ type: "tuple", items: [head, tail] }), { type: "null" });
    }
    default:
      throw new ChainError(422, `${where} has unsupported entry type "${String(v["@type"])}"`);
  }
}

/** Parses the input stack: `[["num","123"|"0x7b"], ["tvm.Cell", b64], ["tvm.Slice", b64], ...]` (or its JSON text). */
export function parseStack(raw: unknown): TupleItem[] {
  let v = raw;
  if (v === undefined || v === null || v === "") return [];
  if (typeof v === "string") {
    try {
      v = JSON.parse(v);
    } catch {
      throw new ChainError(422, 'parameter "stack" must be a JSON array like [["num","1"]]');
    }
  }
  if (!Array.isArray(v)) throw new ChainError(422, 'parameter "stack" must be an array of [type, value] pairs');
  if (v.length > MAX_STACK_ITEMS) throw new ChainError(422, `stack has more than ${MAX_STACK_ITEMS} entries`);
  return v.map((entry, i): TupleItem => {
    const where = `stack[${i}]`;
    if (!Array.isArray(entry) || entry.length < 1 || typeof entry[0] !== "string") {
      throw new ChainError(422, `${where} must be a [type, value] pair`);
    }
    const [type, value] = entry as [string, unknown];
    switch (type) {
      case "num": case "number": case "int": case "integer": {
        const s = typeof value === "number" && Number.isSafeInteger(value) ? String(value) : value;
        if (typeof s !== "string") throw new ChainError(422, `${where} number must be a decimal or 0x-hex string`);
        const t = s.trim();
        const neg = t.startsWith("-");
        const body = neg ? t.slice(1) : t;
        if (!/^(0x[0-9a-fA-F]{1,64}|\d{1,78})$/.test(body)) {
          throw new ChainError(422, `${where} number must be a decimal or 0x-hex string of at most 257 bits`);
        }
        const n = neg ? -BigInt(body) : BigInt(body);
        if (n < -(2n ** 256n) || n >= 2n ** 256n) throw new ChainError(422, `${where} number is outside the TVM's 257-bit range`);
        return { type: "int", value: n };
      }
      case "tuple": case "list":
        return nestedEntry({ "@type": type === "tuple" ? "tvm.stackEntryTuple" : "tvm.stackEntryList", [type]: value }, where, 0);
      case "tvm.Cell": case "cell":
        return { type: "cell", cell: stackCell(value, where) };
      case "tvm.Slice": case "slice":
        return { type: "slice", cell: stackCell(value, where) };
      case "tvm.Builder": case "builder":
        return { type: "builder", cell: stackCell(value, where) };
      case "null":
        return { type: "null" };
      default:
        throw new ChainError(422, `${where} has unsupported type "${type}" (use num, tvm.Cell, tvm.Slice, tvm.Builder, null, tuple or list)`);
    }
  });
}
