// Server-Sent Events, per the WHATWG HTML spec's event-stream parsing: lines end in LF, CRLF or CR;
// "data:" lines of one event are joined with LF; a blank line dispatches; ":" lines are comments.
// The original Cocoon's counter parsed bare concatenated JSON and so missed real vLLM/SGLang streams.

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/** Longest line we buffer before deciding the peer is not speaking SSE. */
export const MAX_SSE_LINE = 4 * 1024 * 1024;

export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private id: string | undefined;
  private sawCr = false;

  /** Feeds decoded text; returns the events completed by it. */
  push(text: string): SseEvent[] {
    const out: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10 /* LF */ || c === 13 /* CR */) {
        if (c === 10 && this.sawCr && i === start && this.buffer.length === 0) {
          // LF of a CRLF whose CR ended the previous line.
          this.sawCr = false;
          start = i + 1;
          continue;
        }
        this.line(this.buffer + text.slice(start, i), out);
        this.buffer = "";
        this.sawCr = c === 13;
        start = i + 1;
      } else if (this.sawCr) {
        this.sawCr = false;
      }
    }
    this.buffer += text.slice(start);
    if (this.buffer.length > MAX_SSE_LINE) {
      throw new Error(`SSE line longer than ${MAX_SSE_LINE} characters: the upstream is not sending server-sent events`);
    }
    return out;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === "") {
      if (this.data.length > 0) out.push({ event: this.event || "message", data: this.data.join("\n"), ...(this.id !== undefined ? { id: this.id } : {}) });
      this.data = [];
      this.event = "";
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' comment */) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

/**
 * Parses a whole SSE byte stream (async iterable of chunks) into the events each chunk completed, decoding UTF-8
 * across chunk edges; at the end, a last event that lacked its blank line. Empty batches are skipped.
 */
export async function* parseSseBatches(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent[]> {
  const decoder = new TextDecoder();
  const parser = new SseParser();
  for await (const chunk of body) {
    const events = parser.push(decoder.decode(chunk, { stream: true }));
    if (events.length) yield events;
  }
  const last = parser.push(decoder.decode() + "\n\n");
  if (last.length) yield last;
}

/** Parses a whole SSE byte stream into events, one at a time. */
export async function* parseSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  for await (const events of parseSseBatches(body)) yield* events;
}

/** One SSE event line pair as bytes, as the client writes them to apps. */
export function sseData(data: string): string {
  return `data: ${data}\n\n`;
}
