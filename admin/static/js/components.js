import {api, cell, session} from "./api.js";
import {describeState, enabledControl} from "./toggle.js";

const user = await session();
const body = document.querySelector("#components tbody");

function row(c) {
  const tr = document.createElement("tr");
  tr.id = `component-${c.name}`;
  const link = document.createElement("a");
  link.href = `/components/${encodeURIComponent(c.name)}`;
  link.textContent = c.name;
  cell(tr, link).append(c.kind === "collector" ? "" : ` (${c.kind})`);
  cell(tr, c.description);
  cell(tr, c.can_run ? "yes" : `no: ${c.why_not}`).className = c.can_run ? "" : "warn";
  cell(tr, enabledControl(user, c, (now) => tr.replaceWith(row(now))));
  cell(tr, describeState(c)).className = "state";
  cell(tr, c.hooks.join(", ")).className = "hooks";
  cell(tr, String(c.metrics.length));
  cell(tr, c.overhead);
  return tr;
}

async function load() {
  const components = await api("/components");
  body.replaceChildren(...components.map(row));
}

await load();
setInterval(() => { if (!document.activeElement || document.activeElement.type !== "checkbox") load(); }, 10000);
