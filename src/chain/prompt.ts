/**
 * Minimal terminal prompts (a line, a hidden password) on top of node:readline, with injectable streams for tests.
 */
import { createInterface } from "node:readline";
import { Readable, Writable } from "node:stream";

export interface PromptIO {
  input?: Readable & { isTTY?: boolean; setRawMode?: (on: boolean) => unknown };
  output?: Writable;
}

/** True when both ends are a terminal (prompting makes sense). */
export function isInteractive(io: PromptIO = {}): boolean {
  const input = (io.input ?? process.stdin) as { isTTY?: boolean };
  const output = (io.output ?? process.stderr) as { isTTY?: boolean };
  return Boolean(input.isTTY && output.isTTY);
}

/** Asks one question and returns the answer line. With `hidden`, typed characters are not echoed. */
export function promptLine(question: string, opts: PromptIO & { hidden?: boolean } = {}): Promise<string> {
  const input = opts.input ?? process.stdin;
  const output = opts.output ?? process.stderr;
  return new Promise((resolve, reject) => {
    let muted = false;
    // While a hidden answer is typed, swallow what readline echoes; the question itself is still shown.
    const sink = new Writable({
      write(chunk, _enc, cb) {
        if (!muted) output.write(chunk);
        cb();
      },
    });
    const rl = createInterface({ input, output: sink, terminal: Boolean((input as { isTTY?: boolean }).isTTY) });
    let answered = false;
    rl.on("close", () => {
      if (!answered) reject(new Error("input closed before an answer was given"));
    });
    rl.question(question, (answer) => {
      answered = true;
      if (opts.hidden) output.write("\n");
      rl.close();
      resolve(answer);
    });
    muted = Boolean(opts.hidden);
  });
}
