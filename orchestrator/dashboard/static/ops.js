// Operations: workers alive, slots and leases, inbox lag, dead letters (with retry), errors.
import { api } from "./api.js";
import { agentLink, clear, h, runLink, table, when } from "./dom.js";
import { guard } from "./guard.js";

export async function operationsView(view, signal) {
  const ops = await api("/dashboard/api/operations", { signal });
  const refresh = h("button", { type: "button", onclick: () => dispatchEvent(new HashChangeEvent("hashchange")) }, "Refresh");
  clear(
    view,
    h("h1", {}, "Operations"),
    refresh,
    h("p", {}, `Ready signals waiting: ${ops.ready_signals} · inbox lag (oldest unread): ${ops.inbox_lag_seconds} s · dead letters: ${ops.dead_letter_count}`),
    h("h2", {}, "Workers"),
    ops.workers.length
      ? table(
          ["Worker", "Host", "PID", "Started", "Slots in use", "Leases held", "Runs", "Failed", "Dead-lettered"],
          ops.workers.map((w) =>
            h(
              "tr",
              {},
              h("td", { class: "mono" }, w.worker_id),
              h("td", {}, w.host),
              h("td", { class: "num" }, w.pid),
              h("td", {}, when(w.started_at)),
              h("td", { class: "num" }, w.slots === null ? w.slots_in_use : `${w.slots_in_use} / ${w.slots}`),
              h("td", { class: "num" }, w.leases_held),
              h("td", { class: "num" }, w.runs),
              h("td", { class: "num" }, w.failed),
              h("td", { class: "num" }, w.dead_lettered),
            ),
          ),
          { id: "workers" },
        )
      : h("p", { class: "error" }, "No live worker: messages wait in their inboxes."),
    h("h2", {}, "Dead letters"),
    ops.dead_letters.length
      ? table(["Entry", "When", "Agent", "Run", "Attempts", "Error", ""], ops.dead_letters.map((d) => deadLetter(d)), { id: "dead-letters" })
      : h("p", { class: "muted" }, "No dead letters."),
    h("h2", {}, "Recent errors"),
    ops.recent_errors.length
      ? h("ul", { class: "errors", id: "recent-errors" }, ops.recent_errors.map((e) => h("li", { "data-kind": e.kind }, when(e.at), " · ", h("span", { class: "kind" }, e.kind), " · ", agentLink(e.agent_id, e.agent_name), e.run_id ? [" · ", runLink(e.run_id)] : [], ": ", h("span", { class: "mono" }, e.message))))
      : h("p", { class: "muted" }, "None."),
  );
}
operationsView.nav = "operations";

function deadLetter(d) {
  const retry = h("button", { type: "button" }, "Retry");
  const cell = h("td", {}, retry);
  retry.addEventListener("click", async () => {
    retry.disabled = true;
    const done = await guard(api(`/dashboard/api/dead-letters/${encodeURIComponent(d.id)}/retry`, { method: "POST" }), cell);
    if (done) clear(cell, "re-queued as ", runLink(done.run_id));
  });
  return h(
    "tr",
    { dataset: { id: d.id } },
    h("td", { class: "mono" }, d.id),
    h("td", {}, when(d.at)),
    h("td", {}, agentLink(d.agent_id, d.agent_name)),
    h("td", {}, runLink(d.run_id)),
    h("td", { class: "num" }, d.attempts),
    h("td", { class: "mono" }, d.error),
    cell,
  );
}
