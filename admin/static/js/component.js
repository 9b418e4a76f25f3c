import {api, session} from "./api.js";
import {showBoard} from "./charts.js";
import {describeState, enabledControl} from "./toggle.js";

const user = await session();
const state = document.getElementById("state");
const name = state.dataset.name;

function show(c) {
  const line = document.createElement("p");
  line.textContent = `State: ${describeState(c)}. Listens on ${c.listen || "(no address)"}. Hooks: ${c.hooks.join(", ")}.`;
  const control = document.createElement("p");
  control.append("Enabled: ", enabledControl(user, c, show));
  state.replaceChildren(line, control);
}

show(await api(`/components/${encodeURIComponent(name)}`));
await showBoard(name, document.getElementById("charts"), () => 15);
