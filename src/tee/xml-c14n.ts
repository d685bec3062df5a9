// A small, strict XML reader and inclusive XML canonicalization (C14N 1.0 / 1.1 without comments), for checking
// the XML signatures of NVIDIA RIMs (rim.ts). Only what RIMs use is accepted: elements, attributes, namespace
// declarations, text, the five predefined entities and character references, comments (dropped, as C14N without
// comments does) and an XML declaration. DOCTYPE, CDATA, processing instructions and xml:* attributes are refused
// by name: they change what canonicalization must do, and no RIM carries them. For a whole document minus a subtree
// (the enveloped-signature case) and for an element subset whose ancestors are all in scope, C14N 1.0 and 1.1
// produce the same bytes once xml:* attributes are excluded, so one implementation serves both URIs.
import { EvidenceFormatError } from "./errors.js";

export interface XmlElement {
  /** Qualified name as written (prefix:local or local). */
  name: string;
  attrs: { name: string; value: string }[];
  children: (XmlElement | string)[];
  parent?: XmlElement;
}

const MAX_DEPTH = 64;
const NAME = /^[A-Za-z_][A-Za-z0-9._-]*(?::[A-Za-z_][A-Za-z0-9._-]*)?/;
const PREDEFINED: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

function decodeEntities(s: string, what: string): string {
  return s.replace(/&([^;]{0,10});?/g, (m, body: string) => {
    if (!m.endsWith(";")) throw new EvidenceFormatError(`${what}: "&" not followed by an entity reference`);
    if (body in PREDEFINED) return PREDEFINED[body];
    const num = /^#x([0-9A-Fa-f]{1,6})$/.exec(body) ?? /^#([0-9]{1,7})$/.exec(body);
    if (num) {
      const cp = parseInt(num[1], body[1] === "x" ? 16 : 10);
      if (cp > 0x10ffff || cp === 0) throw new EvidenceFormatError(`${what}: invalid character reference &${body};`);
      return String.fromCodePoint(cp);
    }
    throw new EvidenceFormatError(`${what}: entity &${body}; is not supported (only the predefined ones and character references)`);
  });
}

/** Parses an XML document into its root element. Throws EvidenceFormatError on anything outside the subset. */
export function parseXml(input: string, what = "XML"): XmlElement {
  // XML 1.0 end-of-line handling.
  const s = input.replace(/\r\n?/g, "\n");
  let p = 0;
  const fail = (msg: string): never => {
    throw new EvidenceFormatError(`${what}: ${msg} at offset ${p}`);
  };
  const skipMisc = (): void => {
    for (;;) {
      while (p < s.length && /\s/.test(s[p])) p++;
      if (s.startsWith("<!--", p)) {
        const end = s.indexOf("-->", p + 4);
        if (end < 0) fail("unterminated comment");
        p = end + 3;
      } else return;
    }
  };
  if (s.charCodeAt(0) === 0xfeff) p = 1;
  if (s.startsWith("<?xml", p)) {
    const end = s.indexOf("?>", p);
    if (end < 0) fail("unterminated XML declaration");
    p = end + 2;
  }
  skipMisc();
  if (s.startsWith("<!DOCTYPE", p)) fail("DOCTYPE declarations are not accepted");
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  while (p < s.length) {
    if (stack.length === 0 && root) {
      skipMisc();
      if (p < s.length) fail("content after the document element");
      break;
    }
    if (s.startsWith("<!--", p)) {
      const end = s.indexOf("-->", p + 4);
      if (end < 0) fail("unterminated comment");
      p = end + 3;
      continue;
    }
    if (s.startsWith("<![CDATA[", p)) fail("CDATA sections are not accepted");
    if (s.startsWith("<?", p)) fail("processing instructions are not accepted");
    if (s.startsWith("<!", p)) fail("declarations are not accepted");
    if (s.startsWith("</", p)) {
      p += 2;
      const m = NAME.exec(s.slice(p, p + 200));
      if (!m) fail("malformed end tag");
      const name = (m as RegExpExecArray)[0];
      p += name.length;
      while (/\s/.test(s[p] ?? "")) p++;
      if (s[p] !== ">") fail("malformed end tag");
      p++;
      const open = stack.pop();
      if (!open || open.name !== name) fail(`end tag </${name}> does not match <${open?.name ?? "(none)"}>`);
      continue;
    }
    if (s[p] === "<") {
      p++;
      const m = NAME.exec(s.slice(p, p + 200));
      if (!m) fail("malformed start tag");
      const el: XmlElement = { name: (m as RegExpExecArray)[0], attrs: [], children: [] };
      p += el.name.length;
      for (;;) {
        const ws = p;
        while (/\s/.test(s[p] ?? "")) p++;
        if (s.startsWith("/>", p) || s[p] === ">") break;
        if (ws === p) fail(`expected whitespace before an attribute of <${el.name}>`);
        const a = NAME.exec(s.slice(p, p + 200));
        if (!a) fail(`malformed attribute in <${el.name}>`);
        const an = (a as RegExpExecArray)[0];
        p += an.length;
        while (/\s/.test(s[p] ?? "")) p++;
        if (s[p] !== "=") fail(`attribute ${an} without a value`);
        p++;
        while (/\s/.test(s[p] ?? "")) p++;
        const q = s[p];
        if (q !== '"' && q !== "'") fail(`attribute ${an} value is not quoted`);
        const end = s.indexOf(q, p + 1);
        if (end < 0) fail(`unterminated value of attribute ${an}`);
        const rawValue = s.slice(p + 1, end);
        if (rawValue.includes("<")) fail(`"<" in the value of attribute ${an}`);
        p = end + 1;
        if (el.attrs.some((x) => x.name === an)) fail(`duplicate attribute ${an}`);
        if (an.startsWith("xml:")) fail(`xml:* attributes (${an}) are not accepted`);
        // Attribute-value normalization: literal whitespace characters become spaces; references are kept as decoded.
        el.attrs.push({ name: an, value: decodeEntities(rawValue.replace(/[\t\n]/g, " "), what) });
      }
      const selfClosing = s.startsWith("/>", p);
      p += selfClosing ? 2 : 1;
      const parent = stack[stack.length - 1];
      if (parent) {
        el.parent = parent;
        parent.children.push(el);
      } else if (root) fail("more than one document element");
      else root = el;
      if (!selfClosing) {
        stack.push(el);
        if (stack.length > MAX_DEPTH) fail("elements nested too deeply");
      }
      continue;
    }
    const next = s.indexOf("<", p);
    const text = s.slice(p, next < 0 ? s.length : next);
    if (stack.length === 0) {
      if (text.trim()) fail("text outside the document element");
    } else stack[stack.length - 1].children.push(decodeEntities(text, what));
    p = next < 0 ? s.length : next;
  }
  if (!root) fail("no document element");
  if (stack.length) fail(`<${stack[stack.length - 1].name}> is not closed`);
  return root as XmlElement;
}

const prefixOf = (qname: string): string => (qname.includes(":") ? qname.slice(0, qname.indexOf(":")) : "");
const localOf = (qname: string): string => qname.slice(qname.indexOf(":") + 1);

/** The namespace bindings (prefix -> URI; "" = default namespace) in scope at `el`. */
export function namespacesInScope(el: XmlElement): Map<string, string> {
  const chain: XmlElement[] = [];
  for (let e: XmlElement | undefined = el; e; e = e.parent) chain.unshift(e);
  const m = new Map<string, string>();
  for (const e of chain) {
    for (const a of e.attrs) {
      if (a.name === "xmlns") {
        if (a.value === "") m.delete("");
        else m.set("", a.value);
      } else if (a.name.startsWith("xmlns:")) m.set(a.name.slice(6), a.value);
    }
  }
  return m;
}

/** The namespace URI of an element's name (its prefix, or the default namespace). */
export function namespaceOf(el: XmlElement): string {
  const prefix = prefixOf(el.name);
  const uri = namespacesInScope(el).get(prefix);
  if (uri === undefined && prefix !== "") throw new EvidenceFormatError(`XML: prefix "${prefix}" of <${el.name}> is not declared`);
  return uri ?? "";
}

export const localName = localOf;

const escText = (t: string): string => t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\r/g, "&#xD;");
const escAttr = (t: string): string =>
  t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/"/g, "&quot;").replace(/\t/g, "&#x9;").replace(/\n/g, "&#xA;").replace(/\r/g, "&#xD;");
const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Inclusive canonical form (C14N without comments) of `el` and its descendants, leaving out `omit` (the enveloped
 * signature). The apex element renders every namespace in scope (its ancestors' included); descendants render the
 * bindings that differ from their parent's.
 */
export function canonicalize(el: XmlElement, omit?: XmlElement): Buffer {
  const out: string[] = [];
  const walk = (e: XmlElement, parentNs: Map<string, string>): void => {
    const ns = namespacesInScope(e);
    const nsOut: [string, string][] = [];
    for (const [prefix, uri] of ns) if (parentNs.get(prefix) !== uri) nsOut.push([prefix, uri]);
    if (!ns.has("") && parentNs.has("")) nsOut.push(["", ""]);
    nsOut.sort((a, b) => byCodePoint(a[0], b[0]));
    const attrs = e.attrs
      .filter((a) => a.name !== "xmlns" && !a.name.startsWith("xmlns:"))
      .map((a) => {
        const prefix = prefixOf(a.name);
        const uri = prefix === "" ? "" : ns.get(prefix);
        if (uri === undefined) throw new EvidenceFormatError(`XML: prefix "${prefix}" of attribute ${a.name} is not declared`);
        return { ...a, uri, local: localOf(a.name) };
      })
      .sort((a, b) => byCodePoint(a.uri, b.uri) || byCodePoint(a.local, b.local));
    out.push(`<${e.name}`);
    for (const [prefix, uri] of nsOut) out.push(prefix === "" ? ` xmlns="${escAttr(uri)}"` : ` xmlns:${prefix}="${escAttr(uri)}"`);
    for (const a of attrs) out.push(` ${a.name}="${escAttr(a.value)}"`);
    out.push(">");
    for (const c of e.children) {
      if (typeof c === "string") out.push(escText(c));
      else if (c !== omit) walk(c, ns);
    }
    out.push(`</${e.name}>`);
  };
  walk(el, new Map());
  return Buffer.from(out.join(""), "utf8");
}
