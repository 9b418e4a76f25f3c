import {api, cell, may, say, session} from "./api.js";

const user = await session();
const body = document.querySelector("#runs tbody");

// "a b 'c d'" -> ["a", "b", "c d"]: the argv of a command typed on one line.
function words(line) {
  return [...line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
}

function target(run) {
  return run.kind === "attach" ? `pid ${run.pid}` : run.command.join(" ");
}

function row(run) {
  const tr = document.createElement("tr");
  const link = document.createElement("a");
  link.href = `/scenarios/${encodeURIComponent(run.id)}`;
  link.textContent = `#${run.id}`;
  cell(tr, link);
  cell(tr, `${run.kind}: ${target(run)}`);
  cell(tr, run.owner);
  cell(tr, run.message ? `${run.status}: ${run.message}` : run.status);
  cell(tr, new Date(run.created_at).toLocaleString());
  cell(tr, run.summary ? `${run.summary.wall_seconds.toFixed(3)} s` : "");
  cell(tr, run.summary ? String(run.summary.events_lost) : "");
  return tr;
}

async function load() {
  const runs = await api("/scenarios");
  body.replaceChildren(...runs.map(row));
  return runs.some((r) => r.status === "running");
}

document.getElementById("start").addEventListener("submit", async (event) => {
  event.preventDefault();
  const byCommand = document.querySelector("input[name=target]:checked").value === "command";
  const request = {duration: Number(document.getElementById("duration").value),
                   events: [...document.querySelectorAll("input[name=events]:checked")].map((b) => b.value),
                   children: document.getElementById("children").checked};
  if (byCommand) request.command = words(document.getElementById("command").value);
  else request.pid = Number(document.getElementById("pid").value);
  try {
    const run = await api("/scenarios", {method: "POST", json: request});
    say(`Scenario #${run.id} started.`);
    location.assign(`/scenarios/${encodeURIComponent(run.id)}`);
  } catch (err) {
    say(`Not started: ${err.message}`, "error");
  }
});

// Sent from the Containers page (?pid=...&name=...): the form is filled in to attach to that process.
function prefill(form) {
  const query = new URLSearchParams(location.search);
  const pid = Number(query.get("pid"));
  if (!Number.isInteger(pid) || pid < 1) return;
  form.querySelector("input[name=target][value=pid]").checked = true;
  document.getElementById("pid").value = String(pid);
  const note = document.getElementById("for");
  const name = query.get("name");
  note.textContent = `${name ? `For ${name}: its process` : "Process"} ${pid} is filled in; Start records it.`;
  note.hidden = false;
}

if (may(user, "operator")) {
  const form = document.getElementById("start");
  form.hidden = false;
  prefill(form);
}
let running = await load();
setInterval(async () => { if (running) running = await load(); }, 3000);
