// The live chart: one line per series (a metric name with one set of tags) over a sliding window, drawn with
// the vendored uPlot (a global from uPlot.iife.min.js). Points are held by id, so one seen both in the listing
// that fills the chart and in the stream counts once, and updates and deletes find the point they change.

import { formatValue } from "./format.js";

const MAX_POINTS_PER_SERIES = 20000;

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function seriesLabel(tags) {
  return tags.length ? tags.join(" ") : "(no tags)";
}

export class LiveChart {
  constructor(element) {
    this.element = element;
    this.windowSeconds = 300;
    this.series = new Map(); // label → Map(id → [seconds, value])
    this.where = new Map(); // point id → label
    this.plot = null;
    this.plotLabels = "";
    this.frame = 0;
    this.lastValue = null;
    this.latest = new Map(); // label → its newest point's value, for the legend
    new ResizeObserver(() => this.plot && this.plot.setSize(this.size())).observe(element);
    setInterval(() => this.tick(), 1000);
    this.showEmpty("Pick a metric to follow it live.");
  }

  reset(windowSeconds) {
    this.windowSeconds = windowSeconds;
    this.series.clear();
    this.where.clear();
    this.lastValue = null;
    this.destroy();
    this.showEmpty("Waiting for points…");
    this.update();
  }

  // `op` as the stream sends it: create, update or delete.
  apply(op, metric) {
    this.remove(metric.id);
    if (op !== "delete") this.add(metric);
    this.update();
  }

  addAll(metrics) {
    for (const metric of metrics) this.add(metric);
    this.update();
  }

  add(metric) {
    const seconds = Date.parse(metric.timestamp) / 1000;
    if (seconds < Date.now() / 1000 - this.windowSeconds) return;
    const label = seriesLabel(metric.tags);
    let points = this.series.get(label);
    if (!points) this.series.set(label, (points = new Map()));
    if (points.size >= MAX_POINTS_PER_SERIES) return;
    points.set(metric.id, [seconds, metric.value]);
    this.where.set(metric.id, label);
    this.lastValue = metric.value;
  }

  remove(id) {
    const label = this.where.get(id);
    if (label === undefined) return;
    this.series.get(label).delete(id);
    this.where.delete(id);
  }

  tick() {
    const oldest = Date.now() / 1000 - this.windowSeconds;
    for (const [label, points] of this.series) {
      for (const [id, [seconds]] of points) {
        if (seconds < oldest) {
          points.delete(id);
          this.where.delete(id);
        }
      }
      if (!points.size) this.series.delete(label);
    }
    this.update();
  }

  // Drawn once per animation frame however many points arrive in it.
  update() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
  }

  draw() {
    this.frame = 0;
    const labels = [...this.series.keys()].sort();
    const count = this.where.size;
    this.element.dataset.points = String(count);
    this.element.dataset.series = String(labels.length);
    if (this.lastValue !== null) this.element.dataset.lastValue = String(this.lastValue);
    if (!labels.length) {
      this.destroy();
      if (!this.element.querySelector(".empty")) this.showEmpty("No points in this window yet.");
      return;
    }
    const data = this.align(labels);
    if (this.plot && this.plotLabels === labels.join("\n")) {
      this.plot.setData(data);
      return;
    }
    this.destroy();
    this.element.replaceChildren();
    this.plotLabels = labels.join("\n");
    this.plot = new uPlot(this.options(labels), data, this.element);
  }

  // uPlot wants one x array and, per series, a y array of the same length: nulls where a series has no point.
  align(labels) {
    const times = new Set();
    for (const label of labels) for (const [seconds] of this.series.get(label).values()) times.add(seconds);
    const xs = Float64Array.from(times).sort();
    const position = new Map();
    xs.forEach((seconds, i) => position.set(seconds, i));
    this.latest = new Map();
    const columns = labels.map((label) => {
      const ys = new Array(xs.length).fill(null);
      let newest = -Infinity;
      for (const [seconds, value] of this.series.get(label).values()) {
        ys[position.get(seconds)] = value;
        if (seconds >= newest) {
          newest = seconds;
          this.latest.set(label, value);
        }
      }
      return ys;
    });
    return [Array.from(xs), ...columns];
  }

  options(labels) {
    const text = cssVar("--muted");
    const grid = cssVar("--line");
    const colours = cssVar("--series").split(/\s+/);
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    return {
      ...this.size(),
      scales: {
        x: { time: true, range: () => [Date.now() / 1000 - this.windowSeconds, Date.now() / 1000] },
      },
      axes: [axis, { ...axis, size: 60 }],
      series: [
        {},
        ...labels.map((label, i) => ({
          label,
          stroke: colours[i % colours.length],
          width: 1.5,
          spanGaps: true,
          points: { size: 5 },
          // Under the cursor, the value there; elsewhere the series' newest.
          value: (u, value) => formatValue(value ?? this.latest.get(label)),
        })),
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
  }

  size() {
    return { width: Math.max(this.element.clientWidth, 200), height: 320 };
  }

  // The theme changed: the canvas is drawn with the colours of the moment, so draw it again.
  restyle() {
    this.destroy();
    this.update();
  }

  destroy() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.plotLabels = "";
  }

  showEmpty(message) {
    const empty = document.createElement("div");
    empty.className = "empty";
    empty.textContent = message;
    this.element.replaceChildren(empty);
  }
}
