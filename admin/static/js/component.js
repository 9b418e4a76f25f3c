import {api, session} from "./api.js";
import {showBoard} from "./charts.js";
import {describeState, enabledControl} from "./toggle.js";

const user = await session();
const state = document.getElementById("state");
const name = state.dataset.name;
// ?cgroup=PATH (from the Containers page): the charts of that cgroup only.
const cgroup = new URLSearchParams(location.search).get("cgroup") || "";

function show(c) {
  const line = document.createElement("p");
  line.textContent = `State: ${describeState(c)}. Listens on ${c.listen || "(no address)"}. Hooks: ${c.hooks.join(", ")}.`;
  const control = document.createElement("p");
  control.append("Enabled: ", enabledControl(user, c, show));
  const parts = [line, control];
  if (c.series !== null && c.series !== undefined) {
    const budget = document.createElement("p");
    budget.textContent = `Series: ${c.series} of a budget of ${c.series_budget}` +
      (c.series >= c.series_budget ? " (at the budget: the least active cgroups are folded into \"other\")." : ".");
    parts.push(budget);
  }
  if (c.cgroups && c.cgroups.length) {
    const list = document.createElement("p");
    list.textContent = "Cgroups it shows: " + c.cgroups.map((g) => `${g.name} (${g.kind})`).join(", ") + ".";
    list.title = c.cgroups.map((g) => `${g.name}: ${g.cgroup}`).join("\n");  // the paths, on hover
    parts.push(list);
  }
  state.replaceChildren(...parts);
}

// Says which cgroup the charts show, by name when the collector names it, with the way back to all of them.
function showOnly(c) {
  const only = document.getElementById("only");
  const named = (c.cgroups || []).find((g) => g.cgroup === cgroup);
  const all = document.createElement("a");
  all.href = location.pathname;
  all.textContent = "show every cgroup";
  only.replaceChildren(`For ${named ? `${named.name} (${named.kind}, ${cgroup})` : cgroup} only: `,
                       "the charts whose metrics carry a cgroup show its series; ", all, ".");
  only.hidden = false;
}

const component = await api(`/components/${encodeURIComponent(name)}`);
show(component);
if (cgroup) showOnly(component);
await showBoard(name, document.getElementById("charts"), () => 15, cgroup);
