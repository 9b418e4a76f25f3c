import {api, may, say, session} from "./api.js";

const user = await session();
const id = document.getElementById("run").dataset.id;
const CSP = `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; ` +
            `style-src 'unsafe-inline'; img-src data:">`;
const LABELS = {on_cpu_user: "on CPU, user", on_cpu_kernel: "on CPU, kernel", sleeping: "off CPU, sleeping",
                uninterruptible: "off CPU, uninterruptible (disk, locks)", other: "off CPU, stopped or other",
                preempted: "preempted, waiting for a CPU", runqueue: "run-queue wait (woken to running)"};

function table(caption, header, rows) {
  const t = document.createElement("table");
  const c = t.createCaption();
  c.textContent = caption;
  const head = t.createTHead().insertRow();
  for (const h of header) head.append(Object.assign(document.createElement("th"), {textContent: h, scope: "col"}));
  const tbody = t.createTBody();
  for (const r of rows) {
    const tr = tbody.insertRow();
    for (const v of r) tr.insertCell().textContent = v;
  }
  const wrap = document.createElement("div");
  wrap.className = "scroll";
  wrap.append(t);
  return wrap;
}

async function fetchFile(name) {
  const response = await fetch(`/api/v1/scenarios/${encodeURIComponent(id)}/artifacts/${encodeURIComponent(name)}`,
                               {headers: {Authorization: `Bearer ${sessionStorage.getItem("lmp.access")}`}});
  if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
  return response;
}

async function showResults(run) {
  const b = await (await fetchFile("breakdown.json")).json();
  const total = b.reference === "wall_seconds" ? b.wall_seconds : b.thread_seconds;
  const parts = Object.entries(b.parts).map(([k, s]) => [LABELS[k] || k, s.toFixed(4),
                                                          `${(100 * s / total).toFixed(1)} %`]);
  parts.push(["all of it, accounted", b.accounted_seconds.toFixed(4),
              `${(100 * (1 + b.accounted_vs_reference)).toFixed(1)} % of the ${b.reference.replace("_", " ")}`]);
  const syscalls = b.syscalls.slice(0, 15).map((s) => [s.name, String(s.count), String(s.errors), s.seconds.toFixed(4)]);
  // HTTP, DNS, Redis and PostgreSQL requests it served or made: each is a span on the report's timeline.
  const requests = (b.requests || []).map((r) => [r.protocol, r.role, String(r.count), r.seconds.toFixed(4)]);
  document.getElementById("breakdown").replaceChildren(
    table(`Wall-clock time ${b.wall_seconds.toFixed(4)} s, ${b.threads} thread(s)`, ["where", "seconds", "share"], parts),
    table("Syscalls, by time inside them (overlaps the above)", ["syscall", "calls", "errors", "seconds"], syscalls),
    ...(requests.length ? [table("Requests answered (spans on the timeline below)",
                                 ["protocol", "role", "requests", "seconds in them"], requests)] : []));
  const report = document.getElementById("report");
  // Sandboxed, without our origin: the report's own script runs, reads nothing of this page, fetches nothing.
  report.srcdoc = (await (await fetchFile("report.html")).text()).replace("<head>", `<head>${CSP}`);
  report.hidden = false;
  const files = document.getElementById("files");
  files.replaceChildren(...run.artifacts.map((name) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = `Download ${name}`;
    button.addEventListener("click", async () => {
      const url = URL.createObjectURL(await (await fetchFile(name)).blob());
      Object.assign(document.createElement("a"), {href: url, download: `scenario-${id}-${name}`}).click();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    });
    li.append(button);
    return li;
  }));
}

async function load() {
  const run = await api(`/scenarios/${encodeURIComponent(id)}`);
  const what = run.kind === "attach" ? `pid ${run.pid}` : run.command.join(" ");
  document.getElementById("run").textContent =
    `${run.kind} ${what}, by ${run.owner}: ${run.status}${run.message ? ` (${run.message})` : ""}.`;
  document.getElementById("stop").hidden = !(run.status === "running" && may(user, "operator"));
  document.getElementById("delete").hidden = !(run.status !== "running" && may(user, "admin"));
  if (run.status === "complete") await showResults(run);
  return run.status;
}

document.getElementById("stop").addEventListener("click", async () => {
  try {
    await api(`/scenarios/${encodeURIComponent(id)}/stop`, {method: "POST"});
    say("Stopping: the results are being written.");
  } catch (err) { say(err.message, "error"); }
});
document.getElementById("delete").addEventListener("click", async () => {
  try {
    await api(`/scenarios/${encodeURIComponent(id)}`, {method: "DELETE"});
    location.assign("/scenarios");
  } catch (err) { say(err.message, "error"); }
});

let status = await load();
const timer = setInterval(async () => {
  if (status !== "running") return clearInterval(timer);
  status = await load();
}, 2000);
