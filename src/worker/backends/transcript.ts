// Plain-text chat format for models without a chat template (such as the shipped KJV model):
// one "Role: text" line per turn, then "Assistant:" for the model to continue.
import type { ChatMessage } from "../../protocol/openai.js";

const ROLE_LABEL: Record<string, string> = { system: "System", user: "User", assistant: "Assistant", tool: "Tool" };

/** A turn's text; an assistant's tool calls are written as the JSON it produced them from (see structured.ts). */
function turnText(m: ChatMessage): string {
  const calls = (m.tool_calls ?? []).map((c) => `{"name": ${JSON.stringify(c.function.name)}, "arguments": ${c.function.arguments}}`);
  return [m.content, ...calls].filter(Boolean).join(" ");
}

export function renderTranscript(messages: ChatMessage[]): string {
  const lines = messages.map((m) => `${ROLE_LABEL[m.role] ?? m.role}: ${turnText(m)}`);
  return `${lines.join("\n")}\nAssistant:`;
}
