// A value both ends of one TLS connection compute and nobody else can (RFC 5705/8446 keying material exporter): a
// proof signed over it holds for this connection only, so it cannot be replayed on another. The proxy binds a
// client's payment channel to the connection whose client signed the registration over this value.
import { randomBytes } from "node:crypto";
import { TLSSocket } from "node:tls";
import type { Connection } from "./connection.js";

/** Exporter label (RFC 5705 asks for labels starting with "EXPORTER"). */
export const SESSION_BINDING_LABEL = "EXPORTER-cocoon-session-binding";
export const SESSION_BINDING_BYTES = 32;

/**
 * The connection's binding, hex. Over a non-TLS duplex (in-process tests only) there is no shared secret: a fresh
 * random value is returned, which the peer cannot know, so nothing can be bound to such a connection.
 */
export function sessionBinding(conn: Connection): string {
  const s = conn.socket;
  if (s instanceof TLSSocket) return s.exportKeyingMaterial(SESSION_BINDING_BYTES, SESSION_BINDING_LABEL, Buffer.alloc(0)).toString("hex");
  return randomBytes(SESSION_BINDING_BYTES).toString("hex");
}
