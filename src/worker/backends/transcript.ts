// Plain-text chat format for models without a chat template (such as the shipped KJV model):
// one "Role: text" line per turn, then "Assistant:" for the model to continue.
import type { ChatMessage } from "../../protocol/openai.js";

const ROLE_LABEL: Record<string, string> = { system: "System", user: "User", assistant: "Assistant" };

export function renderTranscript(messages: ChatMessage[]): string {
  const lines = messages.map((m) => `${ROLE_LABEL[m.role] ?? m.role}: ${m.content}`);
  return `${lines.join("\n")}\nAssistant:`;
}
