// Archival memory: search, insert, delete passages.
import { api, query } from "./api.js";
import { clear, errorBox, h, when } from "./dom.js";
import { guard } from "./guard.js";

export async function archivalView(body, signal, agent) {
  const base = `/v1/agents/${encodeURIComponent(agent.id)}/archival-memory`;
  const q = h("input", { type: "search", placeholder: "Search archival memory", "aria-label": "Search archival memory" });
  const text = h("textarea", { rows: 3, placeholder: "A passage to remember", "aria-label": "New passage" });
  const results = h("ul", { class: "passages", id: "passages" });
  const search = h("form", { class: "toolbar" }, q, h("button", { type: "submit" }, "Search"), h("button", { type: "button", onclick: () => guard(list(), body) }, "Latest"));
  const insert = h("form", { class: "card" }, h("h3", {}, "Insert a passage"), text, h("button", { type: "submit" }, "Insert"));
  clear(body, search, results, insert);

  function show(passages) {
    clear(results, passages.length ? passages.map(item) : h("li", { class: "muted" }, "No passages."));
  }
  function item(p) {
    const remove = h("button", { type: "button", class: "danger" }, "Delete");
    remove.addEventListener("click", async () => {
      if (!confirm("Delete this passage?")) return;
      await guard(api(`${base}/${encodeURIComponent(p.id)}`, { method: "DELETE" }).then(list), body);
    });
    return h("li", { class: "card", dataset: { id: p.id } }, h("div", { class: "muted" }, when(p.created_at || p.timestamp), (p.tags || []).map((t) => h("span", { class: "tag" }, t))), h("pre", {}, p.text ?? p.content), remove);
  }
  async function list() {
    show(await api(`${base}/${query({ limit: 50, ascending: false })}`, { signal }));
  }
  search.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!q.value.trim()) return guard(list(), body);
    const found = await guard(api(`${base}/search${query({ query: q.value.trim(), top_k: 20 })}`, { signal }), body);
    if (found) show(found.results || found);
  });
  insert.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api(`${base}/`, { method: "POST", body: { text: text.value } });
      text.value = "";
      await list();
    } catch (err) {
      insert.append(errorBox(err));
    }
  });
  await list();
}
