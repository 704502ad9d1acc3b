// Memory blocks, editable in place, with each block's version history and sharing agents.
import { api } from "./api.js";
import { agentLink, clear, h, when } from "./dom.js";
import { guard } from "./guard.js";

export function blocksSection(agent) {
  if (!agent.blocks.length) return h("p", { class: "muted" }, "No memory blocks.");
  return h("div", { class: "blocks" }, agent.blocks.map((b) => blockCard(agent, b)));
}

function blockCard(agent, block) {
  const value = h("textarea", { rows: Math.min(12, Math.max(3, block.value.split("\n").length + 1)), "aria-label": `Block ${block.label}`, readonly: block.read_only });
  value.value = block.value;
  const count = h("span", { class: "muted" });
  const note = h("span", { class: "note", role: "status" });
  const save = h("button", { type: "submit", disabled: block.read_only }, "Save");
  const history = h("div", { class: "history" });
  const details = h("details", {}, h("summary", {}, "History and sharing"), history);
  const counter = () => {
    count.textContent = `${value.value.length} / ${block.limit} characters`;
  };
  value.addEventListener("input", () => {
    counter();
    note.textContent = "unsaved";
  });
  counter();
  details.addEventListener("toggle", () => {
    if (details.open) guard(loadHistory(block, history), history);
  });
  const form = h(
    "form",
    { class: "card block", dataset: { label: block.label, blockId: block.id } },
    h("h3", {}, block.label, block.read_only ? h("small", { class: "muted" }, " read-only") : null),
    block.description ? h("p", { class: "muted" }, block.description) : null,
    value,
    h("div", { class: "toolbar" }, save, count, note),
    details,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    note.textContent = "saving…";
    const path = `/v1/agents/${encodeURIComponent(agent.id)}/core-memory/blocks/${encodeURIComponent(block.label)}`;
    const saved = await guard(api(path, { method: "PATCH", body: { value: value.value } }), form);
    if (saved) {
      note.textContent = "saved";
      if (details.open) guard(loadHistory(block, history), history);
    } else note.textContent = "not saved";
  });
  return form;
}

async function loadHistory(block, into) {
  const found = await api(`/dashboard/api/blocks/${encodeURIComponent(block.id)}/history`);
  clear(
    into,
    h(
      "p",
      {},
      `Attached to ${found.agent_count} agent${found.agent_count === 1 ? "" : "s"}: `,
      found.agents.map((a, i) => [i ? ", " : "", agentLink(a.id, a.name)]),
      found.agent_count > found.agents.length ? ` and ${found.agent_count - found.agents.length} more` : "",
    ),
    h(
      "ol",
      { class: "versions" },
      found.edits.map((e) => h("li", {}, h("div", { class: "muted" }, `v${e.version} · ${when(e.at)} · by ${e.editor}`), h("pre", {}, e.value))),
    ),
  );
}
