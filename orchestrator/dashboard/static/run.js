// A run followed across agents: sends, waits, replies and shared-block edits in time order,
// and the agents drawn as a graph of the messages sent and the routes their workflow allows.
import { api } from "./api.js";
import { agentLink, clear, h, runLink, table, when } from "./dom.js";

export async function runView(view, signal, runId) {
  const trace = await api(`/dashboard/api/runs/${encodeURIComponent(runId)}/trace`, { signal });
  const names = Object.fromEntries(trace.agents.map((a) => [a.id, a.name]));
  clear(
    view,
    h("h1", {}, "Run ", h("small", { class: "mono" }, trace.root_run_id)),
    h("h2", {}, "Agents"),
    graph(trace),
    h("h2", {}, "Runs"),
    table(
      ["Run", "Agent", "Status", "Started", "Finished", "Caused by", "Waits on"],
      trace.runs.map((r) =>
        h(
          "tr",
          {},
          h("td", {}, runLink(r.id)),
          h("td", {}, agentLink(r.agent_id, r.agent_name)),
          h("td", {}, r.status, r.stop_reason ? ` (${r.stop_reason})` : ""),
          h("td", {}, when(r.created_at)),
          h("td", {}, when(r.completed_at)),
          h("td", {}, r.parent_run_id ? runLink(r.parent_run_id) : "outside input"),
          h("td", {}, r.waits_on.map((id) => names[id] || id).join(", ")),
        ),
      ),
    ),
    h("h2", {}, "What happened"),
    h(
      "ol",
      { class: "timeline trace", id: "trace" },
      trace.items.map((i) =>
        h(
          "li",
          { class: `msg ${i.kind}`, dataset: { kind: i.kind } },
          h("div", { class: "meta" }, h("span", { class: "kind" }, i.kind.replace("_", " ")), " ", when(i.at), " · ", agentLink(i.agent_id, i.agent_name)),
          h("div", { class: "text" }, i.text),
        ),
      ),
    ),
  );
}
runView.nav = "";

function graph(trace) {
  const n = trace.agents.length;
  const size = 360;
  const radius = n > 1 ? 130 : 0;
  const at = {};
  trace.agents.forEach((a, i) => {
    const angle = (2 * Math.PI * i) / Math.max(n, 1) - Math.PI / 2;
    at[a.id] = [size / 2 + radius * Math.cos(angle), size / 2 + radius * Math.sin(angle)];
  });
  const svg = h(
    "svg:svg",
    { viewBox: `0 0 ${size} ${size}`, width: size, height: size, class: "graph", role: "img", "aria-label": "Agents and the messages between them" },
    h(
      "svg:defs",
      {},
      ["sent", "route"].map((kind) =>
        h("svg:marker", { id: `arrow-${kind}`, viewBox: "0 0 10 10", refX: 28, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" }, h("svg:path", { d: "M 0 0 L 10 5 L 0 10 z", class: `arrow ${kind}` })),
      ),
    ),
  );
  for (const e of trace.edges) {
    const [x1, y1] = at[e.source] || [0, 0];
    const [x2, y2] = at[e.target] || [0, 0];
    svg.append(h("svg:line", { x1, y1, x2, y2, class: `edge ${e.kind}`, "marker-end": `url(#arrow-${e.kind})` }, h("svg:title", {}, e.kind === "sent" ? "message sent" : "workflow route")));
  }
  for (const a of trace.agents) {
    const [x, y] = at[a.id];
    svg.append(h("svg:g", { class: "node" }, h("svg:circle", { cx: x, cy: y, r: 22 }), h("svg:text", { x, y: y + 38, "text-anchor": "middle" }, a.name)));
  }
  return h("figure", {}, svg, h("figcaption", { class: "muted" }, "solid: messages sent in this run · dashed: routes the workflow allows"));
}
