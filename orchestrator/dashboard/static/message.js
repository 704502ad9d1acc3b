// One Letta message as the timeline and the chat show it.
import { h, runLink, when } from "./dom.js";

const LABELS = {
  user_message: "user",
  system_message: "system",
  reasoning_message: "reasoning",
  hidden_reasoning_message: "reasoning",
  tool_call_message: "tool call",
  tool_return_message: "tool return",
  assistant_message: "reply",
  approval_request_message: "approval request",
  approval_response_message: "approval",
  summary_message: "summary",
};

export function messageText(m) {
  switch (m.message_type) {
    case "reasoning_message":
      return m.reasoning;
    case "hidden_reasoning_message":
      return m.hidden_reasoning || "(hidden)";
    case "tool_call_message":
    case "approval_request_message":
      return `${m.tool_call.name}(${m.tool_call.arguments})`;
    case "tool_return_message":
      return `${m.status === "error" ? "error: " : ""}${m.tool_return}`;
    case "approval_response_message":
      return `${m.approve ? "approved" : "denied"}${m.reason ? `: ${m.reason}` : ""}`;
    default:
      return typeof m.content === "string" ? m.content : JSON.stringify(m.content);
  }
}

export function messageItem(m) {
  const kind = LABELS[m.message_type] || m.message_type;
  const body = h("div", { class: "text" });
  body.append(document.createTextNode(messageText(m) ?? ""));
  return h(
    "li",
    { class: `msg ${m.message_type}`, dataset: { id: m.id, type: m.message_type } },
    h("div", { class: "meta" }, h("span", { class: "kind" }, kind), " ", when(m.date), m.run_id ? [" · run ", runLink(m.run_id)] : null),
    body,
  );
}
