/**
 * Payment messages between the roles (JSON over the existing protocol), and the registration proof.
 *
 * Client -> proxy (`payments` op):
 *   {type:"register", channel, proof}   proof = hex Ed25519 signature by the channel's client key over the hash of
 *                                       the cell  tag:uint32=0x43524732 ("CRG2") channel:MsgAddressInt
 *                                       proxy_vault:MsgAddressInt session:bits256 client_id:(snake UTF-8)
 *                                       where session is the TLS connection's exported binding (protocol/
 *                                       session-binding.ts): only the channel's owner can have requests charged to
 *                                       it, and only on the connection it signed for (a proof cannot be replayed)
 *   {type:"voucher", voucher}           voucher = base64 of encodeSignedVoucher (a payment voucher)
 * Client -> proxy (inference head): payment = {channel, voucher}   the latest voucher, piggybacked
 * Proxy -> worker (control): {type:"payout", voucher}              a proxy-signed payout voucher (base64)
 */
import { beginCell, type Address, type Cell } from "@ton/core";
import { decodeSignedVoucher, verifyVoucherSignature, type Ed25519Signer, type SignedVoucher, type Voucher } from "../chain/vouchers.js";

import { MAX_VOUCHER_BASE64 } from "../protocol/messages.js";

export const REGISTER_TAG = 0x43524732;
export function registerCell(channel: Address, proxyVault: Address, clientId: string, session: string): Cell {
  if (!/^[0-9a-f]{64}$/.test(session)) throw new Error("registration: the session binding must be 32 bytes of hex");
  return beginCell().storeUint(REGISTER_TAG, 32).storeAddress(channel).storeAddress(proxyVault).storeBuffer(Buffer.from(session, "hex")).storeStringTail(clientId).endCell();
}

export function signRegistration(channel: Address, proxyVault: Address, clientId: string, session: string, signer: Ed25519Signer): string {
  return signer.sign(registerCell(channel, proxyVault, clientId, session).hash()).toString("hex");
}

export function verifyRegistration(proof: unknown, channel: Address, proxyVault: Address, clientId: string, session: string, clientKey: Buffer): boolean {
  if (typeof proof !== "string" || !/^[0-9a-f]{128}$/i.test(proof)) return false;
  return verifyVoucherSignature(registerCell(channel, proxyVault, clientId, session), Buffer.from(proof, "hex"), clientKey);
}

/** Decodes a base64 signed voucher from a peer (untrusted): a clear Error if it is not one. */
export function decodeVoucherBase64(v: unknown, what = "voucher"): { signed: SignedVoucher; voucher: Voucher } {
  if (typeof v !== "string" || v.length === 0 || v.length > MAX_VOUCHER_BASE64 || !/^[A-Za-z0-9+/]+=*$/.test(v)) {
    throw new Error(`${what} must be a base64 signed voucher of at most ${MAX_VOUCHER_BASE64} characters`);
  }
  return decodeSignedVoucher(Buffer.from(v, "base64"));
}
