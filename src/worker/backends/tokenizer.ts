// Token counting when a backend reports no usage: OpenAI's cl100k_base BPE (gpt-tokenizer, pure JS).
// An estimate for other models' tokenizers, but a real tokenizer rather than a characters/4 guess.
import { countTokens as cl100kCount } from "gpt-tokenizer/encoding/cl100k_base";

export function countTokens(text: string): number {
  return text.length === 0 ? 0 : cl100kCount(text);
}
