// multipart/form-data (RFC 7578), the encoding of OpenAI's audio uploads: just enough to read the fields of a request
// the client received, and for the worker to pass the same bytes on. Untrusted input: every malformed body is a clear
// Error, never a crash or an unbounded scan.

export interface MultipartPart {
  name: string;
  filename?: string;
  contentType?: string;
  data: Buffer;
}

/** Most parts one body may have (OpenAI's transcription request has about ten fields). */
export const MAX_PARTS = 64;

/** The boundary a Content-Type names, if it is multipart/form-data with one. */
export function boundaryOf(contentType: string | undefined): string | undefined {
  if (!contentType || !/^\s*multipart\/form-data\s*;/i.test(contentType)) return undefined;
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType);
  return m?.[1] ?? m?.[2];
}

/** The boundary of a body, from its first line (`--boundary`): lets the worker rebuild the Content-Type. */
export function boundaryFromBody(body: Uint8Array): string | undefined {
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const eol = b.indexOf("\r\n");
  if (eol < 3 || eol > 72 || b[0] !== 0x2d || b[1] !== 0x2d) return undefined;
  const boundary = b.subarray(2, eol).toString("latin1");
  return /^[\x20-\x7e]+$/.test(boundary) && !boundary.endsWith(" ") ? boundary : undefined;
}

export function parseMultipart(body: Buffer, boundary: string): MultipartPart[] {
  const delimiter = Buffer.from(`--${boundary}`, "latin1");
  const next = Buffer.from(`\r\n--${boundary}`, "latin1");
  if (!body.subarray(0, delimiter.length).equals(delimiter)) throw new Error("the body does not start with its multipart boundary");
  const parts: MultipartPart[] = [];
  let at = delimiter.length;
  for (;;) {
    if (body[at] === 0x2d && body[at + 1] === 0x2d) return parts; // "--": the closing delimiter
    if (body[at] !== 0x0d || body[at + 1] !== 0x0a) throw new Error("a multipart boundary is not followed by a line break");
    if (parts.length >= MAX_PARTS) throw new Error(`more than ${MAX_PARTS} multipart fields`);
    const headEnd = body.indexOf("\r\n\r\n", at + 2);
    if (headEnd < 0) throw new Error("a multipart field has no end of headers");
    const headers = body.subarray(at + 2, headEnd).toString("utf8");
    const end = body.indexOf(next, headEnd + 4);
    if (end < 0) throw new Error("a multipart field is not closed by the boundary (the body is cut off)");
    parts.push({ ...partHeaders(headers), data: body.subarray(headEnd + 4, end) });
    at = end + next.length;
  }
}

function partHeaders(text: string): Omit<MultipartPart, "data"> {
  let name: string | undefined;
  let filename: string | undefined;
  let contentType: string | undefined;
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === "content-disposition") {
      if (!/^form-data\b/i.test(value)) throw new Error(`a multipart field has Content-Disposition '${value.slice(0, 40)}', not form-data`);
      name = /;\s*name="([^"]*)"/i.exec(value)?.[1];
      filename = /;\s*filename="([^"]*)"/i.exec(value)?.[1];
    } else if (key === "content-type") contentType = value;
  }
  if (name === undefined) throw new Error("a multipart field has no name");
  return { name, ...(filename !== undefined ? { filename } : {}), ...(contentType ? { contentType } : {}) };
}
