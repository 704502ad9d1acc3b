// Live chat: the agent's steps and tokens as they stream (POST .../messages/stream with
// stream_tokens), and approval requests answered from the page.
import { api, stream } from "./api.js";
import { clear, h, runLink } from "./dom.js";
import { guard } from "./guard.js";
import { messageItem } from "./message.js";

const PIECE_FIELD = {
  assistant_message: (f) => f.content,
  reasoning_message: (f) => f.reasoning,
  tool_call_message: (f) => f.tool_call?.arguments,
};

export async function chatView(body, signal, agent) {
  const log = h("ol", { class: "timeline chat", id: "chat-log", "aria-live": "polite" });
  const input = h("textarea", { rows: 2, id: "chat-input", placeholder: `Message ${agent.name}`, "aria-label": "Message" });
  const send = h("button", { type: "submit", id: "chat-send" }, "Send");
  const state = h("span", { class: "muted", id: "chat-state", role: "status" });
  const form = h("form", { class: "chat-form" }, input, h("div", { class: "toolbar" }, send, state));
  clear(body, log, form);
  const path = `/v1/agents/${encodeURIComponent(agent.id)}/messages/stream`;

  async function run(messages) {
    send.disabled = true;
    state.textContent = "running…";
    const items = new Map();
    try {
      await stream(path, { messages, stream_tokens: true }, (frame) => {
        if (frame !== "[DONE]") follow(() => show(frame, items));
      }, { signal });
      state.textContent = "";
    } finally {
      send.disabled = false;
      if (state.textContent === "running…") state.textContent = "stopped";
    }
  }

  function show(frame, items) {
    const type = frame.message_type;
    if (type === "usage_statistics") return;
    if (type === "stop_reason") {
      log.append(h("li", { class: "stop", dataset: { stopReason: frame.stop_reason } }, `stop: ${frame.stop_reason}`, frame.detail ? ` (${frame.detail})` : ""));
      return;
    }
    const key = `${frame.id}/${type}`;
    const known = items.get(key);
    if (known && PIECE_FIELD[type]) {
      const text = PIECE_FIELD[type](frame);
      if (text) known.querySelector(".text").append(piece(text));
      return;
    }
    const item = messageItem(frame);
    if (PIECE_FIELD[type] && type !== "tool_call_message") {
      const text = PIECE_FIELD[type](frame);
      clear(item.querySelector(".text"), text ? piece(text) : null);
    }
    if (type === "approval_request_message") item.append(approvalButtons(frame));
    items.set(key, item);
    log.append(item);
  }

  // Keep the newest step in view while it streams, unless the reader scrolled up.
  function follow(update) {
    const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    update();
    if (atEnd) log.scrollTop = log.scrollHeight;
  }

  function approvalButtons(request) {
    const reason = h("input", { placeholder: "reason (optional)", "aria-label": "Reason" });
    const answer = (approve) => async () => {
      for (const b of box.querySelectorAll("button")) b.disabled = true;
      const one = { type: "approval", tool_call_id: request.tool_call.tool_call_id, approve, reason: reason.value || null };
      await guard(run([{ type: "approval", approvals: [one] }]), box);
    };
    const box = h(
      "div",
      { class: "approval toolbar" },
      h("button", { type: "button", class: "approve", onclick: answer(true) }, "Approve"),
      h("button", { type: "button", class: "danger deny", onclick: answer(false) }, "Deny"),
      reason,
    );
    return box;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    follow(() => log.append(messageItem({ message_type: "user_message", id: "", date: new Date().toISOString(), content: text })));
    await guard(run([{ role: "user", content: text }]), body);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  // The latest few messages, so that the chat continues where it was (and a pending
  // approval can still be answered).
  const recent = await api(`/v1/agents/${encodeURIComponent(agent.id)}/messages?limit=10`, { signal });
  const requested = new Map(); // tool_call_id -> [request, item] of the history's requests
  for (const m of recent) {
    const item = messageItem(m);
    if (m.message_type === "approval_request_message") requested.set(m.tool_call.tool_call_id, [m, item]);
    log.append(item);
  }
  // Calls held for approval, answered here as when they arrive live: on the history's request
  // when it is shown, else on one of their own (an older request).
  const held = await api(`/dashboard/api/agents/${encodeURIComponent(agent.id)}/pending-approvals`, { signal });
  for (const call of held) {
    const shown = requested.get(call.tool_call_id);
    if (shown) {
      shown[1].append(approvalButtons(shown[0]));
      continue;
    }
    const request = { message_type: "approval_request_message", id: `pending-${call.tool_call_id}`, tool_call: call };
    const item = messageItem(request);
    item.append(approvalButtons(request));
    log.append(item);
  }
  if (recent.length && recent[recent.length - 1].run_id) log.append(h("li", { class: "muted" }, "last run: ", runLink(recent[recent.length - 1].run_id)));
  log.scrollTop = log.scrollHeight;
}

function piece(text) {
  return h("span", { class: "piece" }, text ?? "");
}
