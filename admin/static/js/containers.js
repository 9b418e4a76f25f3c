import {api, cell, may, session} from "./api.js";

const user = await session();
const table = document.getElementById("containers");

function header(columns) {
  const tr = document.createElement("tr");
  for (const title of ["Name", "Kind", ...columns.map((c) => c.replace(/^lmp_/, "").replace(/_sum$/, "")), "Look next"]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = title;
    tr.append(th);
  }
  return tr;
}

// Where to look next for a row: its collector's page showing that cgroup's charts only, and (operators) the
// Scenarios page with its record form filled in for one of its processes.
function links(r) {
  const found = {};
  const only = new URLSearchParams({cgroup: r.cgroup});
  if (r.collector) found.dashboard = `/components/${encodeURIComponent(r.collector)}?${only}`;
  if (r.pid) found.scenario = `/scenarios?${new URLSearchParams({pid: r.pid, name: r.name})}`;
  return found;
}

function row(r, columns) {
  const tr = document.createElement("tr");
  cell(tr, r.name).title = r.cgroup;  // the path, on hover
  cell(tr, r.kind);
  for (const c of columns) cell(tr, (r.rates[c] || 0).toFixed(2)).className = "number";
  const next = document.createElement("span");
  const to = links(r);
  if (to.dashboard) {
    const board = document.createElement("a");
    board.href = to.dashboard;
    board.textContent = "dashboard";
    board.title = `${r.collector}'s charts for ${r.name} only`;
    next.append(board);
  }
  if (to.scenario && may(user, "operator")) {  // a viewer may not record
    const record = document.createElement("a");
    record.href = to.scenario;
    record.textContent = `record a scenario (attach ${r.pid})`;
    next.append(to.dashboard ? " · " : "", record);
  }
  cell(tr, next);
  return tr;
}

async function load() {
  const found = await api("/top");
  table.tHead.replaceChildren(header(found.columns));
  table.tBodies[0].replaceChildren(...found.rows.map((r) => row(r, found.columns)));
}

await load();
setInterval(load, 5000);
