// Live charts (uPlot) of a board's panels: the same panels and PromQL as the generated Grafana dashboard,
// their data from the local Prometheus through the admin (/api/v1/charts), refreshed every few seconds.
import {api, say} from "./api.js";

const REFRESH_MS = 5000;
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf"];

// Values in the panel's unit, short: 1.2 ms, 3.4 MB/s, 5.6k/s.
export function format(unit, v) {
  if (v == null || Number.isNaN(v)) return "";
  const scaled = (value, steps, suffix) => {
    for (const [factor, name] of steps) if (Math.abs(value) >= factor) return `${+(value / factor).toPrecision(3)} ${name}${suffix}`;
    return `${+value.toPrecision(3)} ${steps[steps.length - 1][1]}${suffix}`;
  };
  const si = [[1e9, "G"], [1e6, "M"], [1e3, "k"], [1, ""]];
  switch (unit) {
    case "s": return v === 0 ? "0 s" : scaled(v, [[1, "s"], [1e-3, "ms"], [1e-6, "µs"], [1e-9, "ns"]], "");
    case "bytes": return scaled(v, [[2 ** 30, "Gi"], [2 ** 20, "Mi"], [2 ** 10, "Ki"], [1, ""]], "B");
    case "Bps": return scaled(v, [[2 ** 30, "Gi"], [2 ** 20, "Mi"], [2 ** 10, "Ki"], [1, ""]], "B/s");
    case "ops": return scaled(v, si, "/s");
    case "percentunit": return `${+(v * 100).toPrecision(3)} %`;
    default: return scaled(v, si, "");
  }
}

// Prometheus series (each its own timestamps) on one x axis, as uPlot wants: [xs, ys1, ys2, ...].
export function align(series) {
  const xs = [...new Set(series.flatMap((s) => s.values.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const column = new Array(xs.length).fill(null);
    for (const [t, v] of s.values) column[index.get(t)] = v;
    return column;
  });
  return [xs, ...ys];
}

class Chart {
  constructor(board, def, parent, only) {
    this.board = board;
    this.def = def;
    this.only = only;  // "&cgroup=...", or ""
    const card = document.createElement("figure");
    card.className = "card chart";
    const caption = document.createElement("figcaption");
    caption.textContent = def.title;
    caption.title = def.description;
    this.plot = document.createElement("div");
    this.plot.setAttribute("role", "img");
    this.plot.setAttribute("aria-label", `${def.title}: no data yet`);
    this.empty = document.createElement("p");
    this.empty.className = "empty";
    const query = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "PromQL";
    const code = document.createElement("code");
    code.textContent = def.queries.map((q) => q.expr).join("\n");
    query.append(summary, code);
    card.append(caption, this.plot, this.empty, query);
    parent.append(card);
    this.uplot = null;
    this.names = "";
  }

  async update(minutes) {
    const data = await api(`/charts/${encodeURIComponent(this.board)}/${encodeURIComponent(this.def.id)}?minutes=${encodeURIComponent(minutes)}${this.only}`);
    const points = data.series.reduce((n, s) => n + s.values.length, 0);
    this.empty.textContent = points ? "" : "No data in this time range.";
    this.plot.setAttribute("aria-label", `${this.def.title}: ${data.series.length} series, ${points} points`);
    this.plot.dataset.points = String(points);
    const names = data.series.map((s) => s.name).join("\u0000");
    if (!this.uplot || names !== this.names) this.build(data);  // the set of series changed
    this.uplot.setData(align(data.series));
  }

  build(data) {
    if (this.uplot) this.uplot.destroy();
    this.names = data.series.map((s) => s.name).join("\u0000");
    const unit = data.unit;
    const options = {
      width: this.plot.clientWidth || 400, height: 220,
      scales: {x: {time: true}},
      axes: [{}, {values: (u, ticks) => ticks.map((v) => format(unit, v)), size: 70}],
      series: [{}, ...data.series.map((s, i) => ({label: s.name, stroke: COLORS[i % COLORS.length], width: 1.5,
                                                  value: (u, v) => format(unit, v), spanGaps: false}))],
      legend: {live: true},
    };
    this.uplot = new uPlot(options, align(data.series), this.plot);
  }

  resize() {
    if (this.uplot) this.uplot.setSize({width: this.plot.clientWidth, height: 220});
  }
}

// Draws every chart of `board` into `parent` and keeps them fresh; `minutes()` says the time range. With a
// `cgroup` (its path), the charts whose metrics carry a cgroup show that cgroup's series only.
export async function showBoard(board, parent, minutes, cgroup = "") {
  const only = cgroup ? `&cgroup=${encodeURIComponent(cgroup)}` : "";
  const defs = await api(`/charts/${encodeURIComponent(board)}${only.replace("&", "?")}`);
  const charts = defs.map((def) => new Chart(board, def, parent, only));
  const refresh = async () => {
    const failed = [];
    await Promise.all(charts.map((c) => c.update(minutes()).catch((err) => failed.push(err))));
    if (failed.length) say(`Some charts could not be read: ${failed[0].message}`, "error");
    else say(`Updated ${new Date().toLocaleTimeString()}.`);
  };
  await refresh();
  setInterval(refresh, REFRESH_MS);
  new ResizeObserver(() => charts.forEach((c) => c.resize())).observe(parent);
  return {charts, refresh};
}
