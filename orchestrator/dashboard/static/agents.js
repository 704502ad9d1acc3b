// The agents list: search, create, delete; activity and queued work per agent.
import { api, query } from "./api.js";
import { agentLink, clear, errorBox, h, table, when } from "./dom.js";
import { guard } from "./guard.js";

const PAGE = 50;

export async function agentsView(view, signal) {
  const search = h("input", { type: "search", name: "q", placeholder: "Search by name", "aria-label": "Search agents" });
  const list = h("div", { id: "agents" });
  const more = h("button", { type: "button", hidden: true }, "More agents");
  const form = createForm(() => load());
  clear(view, h("h1", {}, "Agents"), h("div", { class: "toolbar" }, search, h("span", { id: "agent-count", class: "muted" })), list, more, form);

  let last = null;
  let rows = null;

  async function load(append = false) {
    const q = search.value.trim();
    const found = await api(`/dashboard/api/agents${query({ limit: PAGE, query_text: q, after: append ? last : null })}`, { signal });
    const agents = found.agents;
    if (!append) {
      rows = h("tbody");
      clear(list, agents.length ? table(["Name", "Type", "Model", "Tags", "Last activity", "Runs in flight", "Inbox", ""], [], { class: "agents" }) : h("p", { class: "muted" }, q ? "No agent matches." : "No agents yet: create one below."));
      const t = list.querySelector("table");
      if (t) t.replaceChild(rows, t.tBodies[0]);
    }
    last = agents.length ? agents[agents.length - 1].id : last;
    more.hidden = rows.children.length + agents.length >= found.matching;
    for (const agent of agents) rows.append(row(agent, () => load()));
    document.getElementById("agent-count").textContent = q ? `${found.matching} of ${found.total} agents` : `${found.total} agents`;
  }

  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => guard(load(), list), 200);
  });
  more.addEventListener("click", () => guard(load(true), list));
  await load();
}
agentsView.nav = "agents";

function row(agent, reload) {
  const remove = h("button", { type: "button", class: "danger", "aria-label": `Delete ${agent.name}` }, "Delete");
  remove.addEventListener("click", async () => {
    if (!confirm(`Delete agent ${agent.name}? Its messages and memory go with it.`)) return;
    await guard(api(`/v1/agents/${encodeURIComponent(agent.id)}`, { method: "DELETE" }).then(reload), remove.parentElement);
  });
  return h(
    "tr",
    { dataset: { agentId: agent.id } },
    h("td", {}, agentLink(agent.id, agent.name)),
    h("td", {}, agent.agent_type),
    h("td", { class: "mono" }, agent.model),
    h("td", {}, (agent.tags || []).map((t) => h("span", { class: "tag" }, t))),
    h("td", {}, when(agent.last_activity)),
    h("td", { class: "num" }, agent.runs_in_flight),
    h("td", { class: "num" }, agent.inbox_depth),
    h("td", {}, remove),
  );
}

function createForm(created) {
  const name = h("input", { name: "name", required: true, placeholder: "name", "aria-label": "New agent's name" });
  const model = h("input", { name: "model", placeholder: "model (default)", "aria-label": "Model" });
  const persona = h("textarea", { name: "persona", rows: 2, placeholder: "persona", "aria-label": "Persona" });
  const human = h("textarea", { name: "human", rows: 2, placeholder: "what it knows about the human", "aria-label": "Human" });
  const tags = h("input", { name: "tags", placeholder: "tags, comma separated", "aria-label": "Tags" });
  const out = h("div");
  const form = h("form", { class: "card", id: "create-agent" }, h("h2", {}, "Create an agent"), name, model, persona, human, tags, h("button", { type: "submit" }, "Create"), out);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      name: name.value.trim(),
      memory_blocks: [
        { label: "persona", value: persona.value },
        { label: "human", value: human.value },
      ],
      tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
    };
    if (model.value.trim()) body.model = model.value.trim();
    try {
      await api("/v1/agents/", { method: "POST", body });
      form.reset();
      clear(out);
      await created();
    } catch (err) {
      clear(out, errorBox(err));
    }
  });
  return form;
}
