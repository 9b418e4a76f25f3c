// A component's state, and the switch that turns it on or off (operators and admins only).
import {api, may, say} from "./api.js";

export function describeState(c) {
  if (!c.can_run) return `cannot run here: ${c.why_not}`;
  if (!c.enabled) return "off";
  if (c.running) {
    const up = c.uptime_seconds == null ? "" : `, up ${Math.round(c.uptime_seconds)} s`;
    return `running, pid ${c.pid}${up}${c.restarts ? `, ${c.restarts} restarts` : ""}`;
  }
  return `not running${c.last_error ? `: ${c.last_error}` : ""}${c.crash_loop ? " (crash loop)" : ""}`;
}

// A checkbox switch for users who may act, else plain text; `changed(component)` after each change.
export function enabledControl(user, c, changed) {
  if (!may(user, "operator")) {
    const text = document.createElement("span");
    text.textContent = c.enabled ? "yes" : "no";
    return text;
  }
  const label = document.createElement("label");
  label.className = "switch";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.setAttribute("role", "switch");
  box.checked = c.enabled;
  box.setAttribute("aria-label", `Enable ${c.name}`);
  box.dataset.component = c.name;
  const text = document.createElement("span");
  text.textContent = c.enabled ? "on" : "off";
  box.addEventListener("change", async () => {
    box.disabled = true;
    try {
      const now = await api(`/components/${encodeURIComponent(c.name)}/${box.checked ? "enable" : "disable"}`, {method: "POST"});
      say(`${c.name} is ${now.enabled ? "enabled" : "disabled"}: ${describeState(now)}.`);
      changed(now);
    } catch (err) {
      box.checked = !box.checked;
      say(`${c.name}: ${err.message}`, "error");
    } finally {
      box.disabled = false;
    }
  });
  label.append(box, text);
  return label;
}
