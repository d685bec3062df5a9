/**
 * A registered proxy's public endpoints, as the root stores them (ProxyInfo.endpoint, one UTF-8 string):
 *
 *   "clients=203.0.113.5:11002 workers=203.0.113.5:11001"
 *
 * Clients dial the `clients` endpoint, workers the `workers` one. A bare "HOST:PORT" (what roots registered before
 * workers could discover proxies hold) is read as the clients endpoint only: such a proxy is found by clients and
 * not by workers. Parsing never throws on what is stored on chain: anyone's garbage reads as "no usable endpoint".
 */

/** Longest endpoint string a registration may carry (it is stored in the root and read by every node). */
export const MAX_ENDPOINT_CHARS = 255;

export interface HostPort {
  host: string;
  port: number;
}

export interface ProxyEndpoints {
  clients?: HostPort;
  workers?: HostPort;
}

const HOST = /^[A-Za-z0-9.-]{1,253}$|^\[[0-9A-Fa-f:.]{2,45}\]$/;

/** "host:port" with a non-empty DNS name / IPv4 / [IPv6] host and a port 1..65535, or undefined. */
export function parseEndpointHostPort(s: string): HostPort | undefined {
  const i = s.lastIndexOf(":");
  if (i <= 0) return undefined;
  const host = s.slice(0, i);
  const portText = s.slice(i + 1);
  if (!HOST.test(host) || !/^[0-9]{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  return { host: host.startsWith("[") ? host.slice(1, -1) : host, port };
}

function format(hp: HostPort): string {
  return `${hp.host.includes(":") ? `[${hp.host}]` : hp.host}:${hp.port}`;
}

/** The string to register; throws with what to fix when an endpoint is malformed or missing. */
export function encodeProxyEndpoints(e: ProxyEndpoints): string {
  const parts: string[] = [];
  for (const k of ["clients", "workers"] as const) {
    const hp = e[k];
    if (!hp) continue;
    const text = format(hp);
    if (!parseEndpointHostPort(text)) throw new Error(`the ${k} endpoint "${text}" is not HOST:PORT (a DNS name, IPv4 or [IPv6] address and a port 1..65535)`);
    parts.push(`${k}=${text}`);
  }
  if (parts.length === 0) throw new Error("a proxy registers at least one public endpoint (--clients HOST:PORT and/or --workers HOST:PORT)");
  const out = parts.join(" ");
  if (out.length > MAX_ENDPOINT_CHARS) throw new Error(`the endpoints take ${out.length} characters; at most ${MAX_ENDPOINT_CHARS} fit a registration`);
  return out;
}

/** What a stored endpoint string says; unknown or malformed parts are ignored (never thrown on). */
export function decodeProxyEndpoints(stored: string): ProxyEndpoints {
  if (stored.length > MAX_ENDPOINT_CHARS) return {};
  const legacy = parseEndpointHostPort(stored.trim());
  if (legacy) return { clients: legacy };
  const out: ProxyEndpoints = {};
  for (const part of stored.split(" ")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const key = part.slice(0, eq);
    if (key !== "clients" && key !== "workers") continue;
    const hp = parseEndpointHostPort(part.slice(eq + 1));
    if (hp && !out[key]) out[key] = hp;
  }
  return out;
}

/** "HOST:PORT" for messages and status pages. */
export function describeHostPort(hp: HostPort | undefined): string {
  return hp ? format(hp) : "(none)";
}
