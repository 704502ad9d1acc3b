// The dashboard's router: #/ (agents), #/agents/<id>[/<tab>], #/runs/<id>, #/operations.
import { NeedsKey, setKey } from "./api.js";
import { clear, errorBox, h } from "./dom.js";
import { agentsView } from "./agents.js";
import { agentView } from "./agent.js";
import { runView } from "./run.js";
import { operationsView } from "./ops.js";

const view = document.getElementById("view");
const keyForm = document.getElementById("key-form");
let current = null;

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "agents" && parts[1]) return [agentView, parts[1], parts[2] || "overview"];
  if (parts[0] === "runs" && parts[1]) return [runView, parts[1]];
  if (parts[0] === "operations") return [operationsView];
  return [agentsView];
}

export async function render() {
  if (current) current.abort();
  current = new AbortController();
  const [show, ...args] = route();
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === show.nav);
  }
  view.setAttribute("aria-busy", "true");
  try {
    await show(view, current.signal, ...args);
  } catch (err) {
    if (err instanceof NeedsKey) askForKey(err.message);
    else if (err.name !== "AbortError") clear(view, errorBox(err));
  } finally {
    view.removeAttribute("aria-busy");
  }
}

function askForKey(detail) {
  keyForm.hidden = false;
  document.getElementById("key-error").textContent = detail;
  clear(view, h("p", { class: "muted" }, "Enter the API key to continue."));
  document.getElementById("key-input").focus();
}

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  setKey(document.getElementById("key-input").value.trim());
  keyForm.hidden = true;
  render();
});

// Views report an expired or wrong key met after they rendered (a click, a stream).
addEventListener("memgrid:needs-key", (event) => askForKey(event.detail));
addEventListener("hashchange", render);
render();
