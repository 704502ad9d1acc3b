// An agent's messages as a timeline, newest page first, paged back through recall memory.
import { api, query } from "./api.js";
import { clear, h } from "./dom.js";
import { guard } from "./guard.js";
import { messageItem } from "./message.js";

const PAGE = 50;

export async function messagesView(body, signal, agent) {
  const list = h("ol", { class: "timeline", id: "messages" });
  const older = h("button", { type: "button", id: "older" }, "Older messages");
  const status = h("p", { class: "muted" });
  clear(body, older, status, list);
  let first = null;

  async function load() {
    const page = await api(`/v1/agents/${encodeURIComponent(agent.id)}/messages${query({ limit: PAGE, before: first })}`, { signal });
    if (page.length) first = page[0].id;
    list.prepend(...page.map(messageItem));
    older.hidden = page.length < PAGE;
    status.textContent = page.length < PAGE ? "The beginning of the conversation." : "";
  }
  older.addEventListener("click", () => guard(load(), body));
  await load();
  list.lastElementChild?.scrollIntoView({ block: "end" });
}
