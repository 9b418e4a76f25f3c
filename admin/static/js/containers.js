import {api, cell, session} from "./api.js";

await session();
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

function row(r, columns) {
  const tr = document.createElement("tr");
  cell(tr, r.name).title = r.cgroup;  // the path, on hover
  cell(tr, r.kind);
  for (const c of columns) cell(tr, (r.rates[c] || 0).toFixed(2)).className = "number";
  const next = document.createElement("span");
  if (r.collector) {
    const board = document.createElement("a");
    board.href = `/components/${encodeURIComponent(r.collector)}`;
    board.textContent = "dashboard";
    next.append(board);
  }
  if (r.pid) {
    const record = document.createElement("a");
    record.href = "/scenarios";
    record.textContent = `record a scenario (attach ${r.pid})`;
    next.append(" · ", record);
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
