/* LMP scenario report: renders the data embedded in the page (scenario/report.py) as a breakdown table,
 * a flame graph (or a differential one, for `lmp scenario compare`) and a timeline. Plain DOM and canvas,
 * no library and no network. */
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("lmp-data").textContent);
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => (k === "style" ? node.setAttribute(k, v) : (node[k] = v)));
    kids.forEach((k) => node.append(k));
    return node;
  }
  const secs = (s) => (s >= 1 ? s.toFixed(3) + " s" : s >= 1e-3 ? (s * 1e3).toFixed(2) + " ms" : (s * 1e6).toFixed(1) + " µs");
  const PARTS = [["on_cpu_user", "on CPU, user"], ["on_cpu_kernel", "on CPU, kernel"], ["sleeping", "off CPU, sleeping"],
    ["uninterruptible", "off CPU, uninterruptible (disk, locks)"], ["other", "off CPU, stopped or other"],
    ["preempted", "preempted, waiting for a CPU"], ["runqueue", "run-queue wait (woken to running)"]];

  function partsTable(runs) {
    const head = el("tr", {}, el("th", {}, "part"), ...runs.flatMap((r) => [el("th", {}, r.label), el("th", {}, "share")]));
    const rows = PARTS.map(([key, label]) => el("tr", {}, el("td", {}, label), ...runs.flatMap((r) => {
      const ref = r.b[r.b.reference] || 1e-12, share = r.b.parts[key] / ref;
      return [el("td", {}, secs(r.b.parts[key])),
        el("td", {}, el("span", { className: "bar", style: `width:${Math.round(share * 120)}px` }), ` ${(share * 100).toFixed(1)}%`)];
    })));
    const total = el("tr", {}, el("th", {}, "total"), ...runs.flatMap((r) => [el("th", {}, secs(r.b.accounted_seconds)),
      el("th", {}, `of ${secs(r.b[r.b.reference])} ${r.b.reference === "wall_seconds" ? "wall" : "thread-seconds"}`)]));
    return el("table", {}, head, ...rows, total);
  }

  function syscallTable(runs) {
    const names = [...new Set(runs.flatMap((r) => r.b.syscalls.slice(0, 15).map((s) => s.name)))];  // the rest: breakdown.json
    const head = el("tr", {}, el("th", {}, "syscall"), ...runs.flatMap((r) => [el("th", {}, r.label + " count"),
      el("th", {}, "errors"), el("th", {}, "time inside")]));
    const rows = names.map((n) => el("tr", {}, el("td", {}, n), ...runs.flatMap((r) => {
      const s = r.b.syscalls.find((x) => x.name === n) || { count: 0, errors: 0, seconds: 0 };
      return [el("td", {}, String(s.count)), el("td", {}, String(s.errors)), el("td", {}, secs(s.seconds))];
    })));
    return el("table", {}, head, ...rows);
  }

  function summary() {
    const runs = data.kind === "compare" ? [data.a, data.b] : [{ label: "this run", meta: data.meta, b: data.breakdown }];
    $("summary").append(...runs.map((r) => el("div", {}, el("b", {}, r.label + ": "),
      `${(r.meta.command || []).join(" ") || "pid " + r.meta.pid} (pid ${r.meta.pid}), ${r.meta.mode}, ` +
      `ended by ${r.meta.ended_by}, exit code ${r.meta.exit_code ?? "-"}, wall ${secs(r.b.wall_seconds)}, ` +
      `${r.b.threads} thread(s). ${r.summary || ""}`)));
    $("breakdown").append(partsTable(runs), el("h3", {}, "Syscalls (time inside them; overlaps the parts above)"),
      syscallTable(runs));
  }

  /* Flame graph: a frame's width is its share of the zoomed-in root; roots at the bottom. */
  function hue(name) {
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return h;
  }
  function color(node, diff) {
    if (diff) {
      const d = (node.b - node.a) / Math.max(node.a + node.b, 1);
      const v = Math.round(255 - Math.abs(d) * 160);
      return d > 0 ? `rgb(255,${v},${v})` : `rgb(${v},${v},255)`;
    }
    if (node.n.startsWith("[")) return "#c8c8d8";
    const h = hue(node.n);
    return node.n.endsWith("_[k]") ? `hsl(${20 + (h % 20)},80%,${60 + (h % 15)}%)` : `hsl(${40 + (h % 25)},85%,${55 + (h % 20)}%)`;
  }
  function depth(node) { return 1 + Math.max(0, ...node.c.map(depth)); }

  function Flame(box, trees, diff) {
    let tree = null, zoom = null, unit = "";
    const draw = () => {
      box.textContent = "";
      if (!tree || !tree.v) { box.append(el("p", { className: "muted" }, "no stacks recorded")); box.style.height = "30px"; return; }
      const rows = depth(zoom) + 1, pattern = $("flame-search").value;
      box.style.height = rows * 17 + "px";
      const place = (node, left, width, level) => {
        if (width < 0.05) return;
        const tip = diff ? `${node.n}\nA ${(node.a / 1e4).toFixed(2)}%  B ${(node.b / 1e4).toFixed(2)}%`
          : `${node.n}\n${unit === "ns" ? secs(node.v * 1e-9) : node.v + " samples"} (${(100 * node.v / tree.v).toFixed(2)}%)`;
        const div = el("div", { className: "frame" + (pattern && node.n.includes(pattern) ? " match" : ""), title: tip },
          width > 3 ? node.n : "");
        div.style.cssText = `left:${left}%;width:${width}%;top:${(rows - level - 1) * 17}px;background:${color(node, diff)}`;
        div.onclick = () => { zoom = node; draw(); };
        box.append(div);
        let x = left;
        node.c.forEach((c) => { const w = (width * c.v) / (node.v || 1); place(c, x, w, level + 1); x += w; });
      };
      place(zoom, 0, 100, 0);
      $("flame-info").textContent = diff ? "red: more of the time in B, blue: more in A (shares of each run)"
        : `${unit === "ns" ? secs(tree.v * 1e-9) + " off CPU" : tree.v + " samples"}; click a frame to zoom`;
    };
    const tabs = $("flame-tabs");
    Object.entries(trees).forEach(([label, t], i) => {
      const b = el("button", { textContent: label });
      b.onclick = () => { tree = zoom = t.tree; unit = t.unit; [...tabs.children].forEach((x) => x.classList.remove("on")); b.classList.add("on"); draw(); };
      tabs.append(b);
      if (i === 0) b.onclick();
    });
    $("flame-reset").onclick = () => { zoom = tree; draw(); };
    $("flame-search").oninput = draw;
  }

  /* Timeline: a lane per thread; slices nest in rows, instants are ticks under them. */
  const COLORS = { syscall: "#4a7bd0", uprobe: "#2e9d5b", "off CPU: sleeping": "#b8c4d6", "off CPU: uninterruptible": "#d9534f",
    "off CPU: preempted": "#e8b63a", "off CPU: other": "#999", "run queue": "#f08a24", fault: "#8e44ad", sample: "#222",
    block: "#c0392b", request: "#6c3483", tcp: "#16a085", signal: "#d35400", exec: "#000", fork: "#000", exit: "#000" };
  const colorOf = (s) => COLORS[s.cat === "offcpu" || s.cat === "runqueue" ? s.name : s.cat] || "#777";

  function Timeline(canvas, tl) {
    const lanes = tl.threads.map(([tid, pid, name]) => ({ tid, label: `${name} ${tid}`, slices: [], instants: [], rows: 1 }));
    const byTid = new Map(lanes.map((l) => [l.tid, l]));
    tl.slices.forEach(([tid, start, dur, name, cat, info]) => byTid.get(tid)?.slices.push({ start, dur, name, cat, info }));
    tl.instants.forEach(([tid, t, name, cat, info]) => byTid.get(tid)?.instants.push({ t, name, cat, info }));
    lanes.forEach((lane) => {   // nesting rows: a slice goes one row below the innermost one still open
      const open = [];
      lane.slices.sort((a, b) => a.start - b.start || b.dur - a.dur).forEach((s) => {
        while (open.length && open[open.length - 1].start + open[open.length - 1].dur <= s.start) open.pop();
        s.row = open.length; open.push(s); lane.rows = Math.max(lane.rows, s.row + 1);
      });
    });
    const ROW = 14, GAP = 10, LABEL = 150, AXIS = 20;
    let t0 = 0, t1 = Math.max(tl.end, 1), drag = null;
    lanes.forEach((l, i) => { l.y = AXIS + (i ? lanes[i - 1].y - AXIS + lanes[i - 1].rows * ROW + ROW + GAP : 0); });
    const height = lanes.length ? lanes[lanes.length - 1].y + lanes[lanes.length - 1].rows * ROW + ROW + GAP : 40;
    const ctx = canvas.getContext("2d");
    const x = (t) => LABEL + ((t - t0) / (t1 - t0)) * (canvas.width - LABEL);
    function draw() {
      canvas.width = canvas.clientWidth; canvas.height = height;
      ctx.font = "11px monospace"; ctx.clearRect(0, 0, canvas.width, canvas.height);
      for (let i = 0; i <= 10; i++) {
        const t = t0 + ((t1 - t0) * i) / 10, px = x(t);
        ctx.fillStyle = "#eee"; ctx.fillRect(px, AXIS, 1, height); ctx.fillStyle = "#555"; ctx.fillText(secs(t * 1e-9), px + 2, 12);
      }
      lanes.forEach((l) => {
        ctx.fillStyle = "#222"; ctx.fillText(l.label, 4, l.y + 11);
        l.slices.forEach((s) => {
          if (s.start + s.dur < t0 || s.start > t1) return;
          const a = Math.max(x(s.start), LABEL), b = Math.min(x(s.start + s.dur), canvas.width);
          ctx.fillStyle = colorOf(s); ctx.fillRect(a, l.y + s.row * ROW, Math.max(b - a, 1), ROW - 2);
          if (b - a > 40) { ctx.fillStyle = "#fff"; ctx.fillText(s.name, a + 2, l.y + s.row * ROW + 10, b - a - 4); }
        });
        l.instants.forEach((s) => {
          if (s.t < t0 || s.t > t1) return;
          ctx.fillStyle = colorOf(s); ctx.fillRect(x(s.t), l.y + l.rows * ROW, 1, ROW - 2);
        });
      });
    }
    function hit(ev) {
      const r = canvas.getBoundingClientRect(), px = ev.clientX - r.left, py = ev.clientY - r.top;
      const lane = lanes.find((l) => py >= l.y && py < l.y + (l.rows + 1) * ROW);
      if (!lane || px < LABEL) return null;
      const t = t0 + ((px - LABEL) / (canvas.width - LABEL)) * (t1 - t0), slack = (3 * (t1 - t0)) / canvas.width;
      const row = Math.floor((py - lane.y) / ROW);
      if (row >= lane.rows) return lane.instants.find((s) => Math.abs(s.t - t) < slack);
      return lane.slices.find((s) => s.row === row && s.start <= t + slack && t - slack <= s.start + s.dur);
    }
    canvas.onwheel = (ev) => {
      ev.preventDefault();
      const r = canvas.getBoundingClientRect(), f = Math.min(Math.max((ev.clientX - r.left - LABEL) / (canvas.width - LABEL), 0), 1);
      const at = t0 + f * (t1 - t0), k = ev.deltaY > 0 ? 1.25 : 0.8;
      t0 = at - (at - t0) * k; t1 = at + (t1 - at) * k; draw();
    };
    canvas.onmousedown = (ev) => { drag = { x: ev.clientX, t0, t1 }; };
    window.onmouseup = () => { drag = null; };
    canvas.onmousemove = (ev) => {
      const tip = $("tooltip");
      if (drag) {
        const dt = ((ev.clientX - drag.x) / (canvas.width - LABEL)) * (drag.t1 - drag.t0);
        t0 = drag.t0 - dt; t1 = drag.t1 - dt; draw(); return;
      }
      const s = hit(ev);
      if (!s) { tip.style.display = "none"; return; }
      tip.textContent = `${s.name}\n${s.dur !== undefined ? "at " + secs(s.start * 1e-9) + ", lasted " + secs(s.dur * 1e-9) : "at " + secs(s.t * 1e-9)}` +
        (s.info ? "\n" + s.info : "");
      tip.style.display = "block"; tip.style.left = ev.clientX + 12 + "px"; tip.style.top = ev.clientY + 12 + "px";
    };
    canvas.onmouseleave = () => { $("tooltip").style.display = "none"; };
    $("timeline-reset").onclick = () => { t0 = 0; t1 = Math.max(tl.end, 1); draw(); };
    window.onresize = draw;
    $("timeline-legend").append(...Object.entries(COLORS).map(([k, c]) => el("span", {}, el("i", { style: `background:${c}` }), k)));
    $("timeline-note").textContent = tl.truncated ? `(the first ${tl.slices.length + tl.instants.length} events; all of them are in timeline.json)` : "";
    draw();
  }

  summary();
  if (data.kind === "compare") {
    new Flame($("flame"), { "on-CPU, A vs B": { tree: data.diff.oncpu }, "off-CPU, A vs B": { tree: data.diff.offcpu } }, true);
    $("timeline-section").style.display = "none";
  } else {
    new Flame($("flame"), { "on-CPU": { tree: data.flames.oncpu, unit: "samples" }, "off-CPU": { tree: data.flames.offcpu, unit: "ns" } }, false);
    new Timeline($("timeline"), data.timeline);
  }
})();
