// One agent: its context window, memory blocks, tools and rules, sources; its messages,
// archival memory and a live chat on tabs of their own.
import { api } from "./api.js";
import { clear, h, table } from "./dom.js";
import { guard } from "./guard.js";
import { blocksSection } from "./memory.js";
import { messagesView } from "./messages.js";
import { archivalView } from "./archival.js";
import { chatView } from "./chat.js";

const TABS = [
  ["overview", "Overview"],
  ["messages", "Messages"],
  ["archival", "Archival memory"],
  ["chat", "Chat"],
];

export async function agentView(view, signal, agentId, tab) {
  const id = encodeURIComponent(agentId);
  const agent = await api(`/v1/agents/${id}`, { signal });
  const body = h("section", { id: `tab-${tab}` });
  clear(
    view,
    h("h1", {}, agent.name, " ", h("small", { class: "mono muted" }, agent.id)),
    h("p", { class: "muted" }, `${agent.agent_type} · ${agent.model} · window ${agent.llm_config?.context_window ?? "?"} tokens`, agent.description ? ` · ${agent.description}` : ""),
    h("nav", { class: "tabs" }, TABS.map(([key, label]) => h("a", { href: `#/agents/${id}/${key}`, class: key === tab ? "active" : null }, label))),
    body,
  );
  if (tab === "messages") return messagesView(body, signal, agent);
  if (tab === "archival") return archivalView(body, signal, agent);
  if (tab === "chat") return chatView(body, signal, agent);
  return overview(body, signal, agent);
}
agentView.nav = "agents";

async function overview(body, signal, agent) {
  const context = h("div", { id: "context" });
  const sources = h("div", { id: "sources" });
  append(body, [
    h("h2", {}, "Context window"),
    context,
    h("h2", {}, "Memory blocks"),
    blocksSection(agent),
    h("h2", {}, "Tools"),
    tools(agent),
    h("h2", {}, "Tool rules"),
    rules(agent),
    h("h2", {}, "Sources"),
    sources,
  ]);
  await Promise.all([
    guard(api(`/v1/agents/${encodeURIComponent(agent.id)}/context`, { signal }).then((c) => clear(context, contextBar(c))), context),
    guard(sourceList(agent, signal).then((s) => clear(sources, s)), sources),
  ]);
}

function append(el, children) {
  for (const c of children) el.append(c);
}

export function contextBar(c) {
  const sections = [
    ["system", c.num_tokens_system + c.num_tokens_tool_usage_rules],
    ["core memory", c.num_tokens_core_memory],
    ["summary", c.num_tokens_summary_memory + c.num_tokens_external_memory_summary],
    ["tool schemas", c.num_tokens_functions_definitions],
    ["messages", c.num_tokens_messages],
  ];
  const max = Math.max(c.context_window_size_max, 1);
  const bar = h("div", { class: "bar", role: "img", "aria-label": `${c.context_window_size_current} of ${max} tokens` });
  sections.forEach(([label, tokens], i) => {
    const part = h("span", { class: `seg seg${i}`, title: `${label}: ${tokens} tokens` });
    part.style.width = `${(100 * tokens) / max}%`;
    bar.append(part);
  });
  return h(
    "div",
    {},
    bar,
    h("ul", { class: "legend" }, sections.map(([label, tokens], i) => h("li", {}, h("span", { class: `swatch seg${i}` }), `${label}: ${tokens}`))),
    h("p", { class: "muted" }, `${c.context_window_size_current} of ${c.context_window_size_max} tokens · ${c.num_messages} messages in context · ${c.num_recall_memory} in recall · ${c.num_archival_memory} archival passages`),
  );
}

function tools(agent) {
  if (!agent.tools.length) return h("p", { class: "muted" }, "No tools.");
  return table(
    ["Name", "Type", "Description"],
    agent.tools.map((t) => h("tr", {}, h("td", { class: "mono" }, t.name), h("td", {}, t.tool_type || ""), h("td", {}, t.description || ""))),
  );
}

function rules(agent) {
  if (!agent.tool_rules.length) return h("p", { class: "muted" }, "No tool rules.");
  return table(
    ["Type", "Tool", "Details"],
    agent.tool_rules.map((r) => {
      const { type, tool_name, ...rest } = r;
      return h("tr", {}, h("td", {}, type), h("td", { class: "mono" }, tool_name), h("td", { class: "mono" }, JSON.stringify(rest)));
    }),
  );
}

async function sourceList(agent, signal) {
  const sources = await api(`/v1/agents/${encodeURIComponent(agent.id)}/sources`, { signal });
  if (!sources.length) return h("p", { class: "muted" }, "No sources attached.");
  const rows = [];
  for (const source of sources) {
    const files = await api(`/v1/sources/${encodeURIComponent(source.id)}/files`, { signal });
    rows.push(h("tr", {}, h("td", { rowspan: Math.max(files.length, 1) }, source.name), files.length ? [h("td", {}, files[0].file_name), h("td", {}, files[0].processing_status)] : [h("td", { colspan: 2, class: "muted" }, "no files")]));
    for (const f of files.slice(1)) rows.push(h("tr", {}, h("td", {}, f.file_name), h("td", {}, f.processing_status)));
  }
  return table(["Source", "File", "Status"], rows);
}
