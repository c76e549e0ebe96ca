// The dashboard's other panels: the server's health (GET /stats), prompts (GET /query) and the newest points.

import { call, describeError } from "./api.js";
import { formatTime, formatValue } from "./format.js";

const STATS_PERIOD_MS = 2000;
const MAX_ROWS = 50;

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

// The value under which a fraction `q` of a histogram's counts fall, read off its bucket bounds (the last
// count is past every bound).
export function percentile(bounds, counts, q) {
  const total = counts.reduce((sum, n) => sum + n, 0);
  if (!total) return null;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i];
    if (seen >= q * total) return i < bounds.length ? bounds[i] : Infinity;
  }
  return Infinity;
}

function sumHistograms(histograms) {
  let bounds = [];
  let counts = [];
  for (const histogram of histograms) {
    if (!counts.length) counts = new Array(histogram.counts.length).fill(0);
    bounds = histogram.bounds;
    histogram.counts.forEach((n, i) => (counts[i] += n));
  }
  return { bounds, counts };
}

function milliseconds(value) {
  if (value === null) return "–";
  if (value === Infinity) return "slow";
  return value < 1 ? `≤ ${value} ms` : `≤ ${formatValue(value)} ms`;
}

// Rates and percentiles of the last period: /stats counts since each worker started, so two readings are
// subtracted. The first reading shows the figures since start.
export class HealthPanel {
  constructor(figures, scope) {
    this.figures = figures;
    this.scope = scope;
    this.previous = null;
  }

  start() {
    this.refresh();
    setInterval(() => document.visibilityState === "visible" && this.refresh(), STATS_PERIOD_MS);
  }

  async refresh() {
    let stats;
    try {
      stats = await call("/stats");
    } catch (error) {
      this.scope.textContent = describeError(error);
      return;
    }
    const now = performance.now();
    const reading = { at: now, stats };
    const before = this.previous;
    this.previous = reading;
    const seconds = before ? (now - before.at) / 1000 : null;

    const total = (s, errorsOnly) =>
      s.requests.filter((r) => !errorsOnly || r.status >= 500).reduce((sum, r) => sum + r.count, 0);
    const latency = sumHistograms(Object.values(stats.latency_ms));
    let rate = null;
    let errors = null;
    if (before) {
      rate = (total(stats) - total(before.stats)) / seconds;
      errors = (total(stats, true) - total(before.stats, true)) / seconds;
      const earlier = sumHistograms(Object.values(before.stats.latency_ms));
      if (earlier.counts.length === latency.counts.length) {
        latency.counts = latency.counts.map((n, i) => n - earlier.counts[i]);
      }
    }
    const ratio = (value) => (value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)} %`);
    this.show("rate", rate === null ? "…" : formatValue(Math.round(rate * 10) / 10));
    this.show("errors", errors === null ? "…" : formatValue(Math.round(errors * 10) / 10));
    this.show("p50", milliseconds(percentile(latency.bounds, latency.counts, 0.5)));
    this.show("p95", milliseconds(percentile(latency.bounds, latency.counts, 0.95)));
    this.show("p99", milliseconds(percentile(latency.bounds, latency.counts, 0.99)));
    this.show("l1", ratio(stats.cache.l1_hit_ratio));
    this.show("l2", ratio(stats.cache.l2_hit_ratio));
    this.show("limited", formatValue(stats.rate_limited));
    this.scope.textContent = `${stats.scope} (${stats.workers.length})`;
    this.figures.dataset.state = before ? "rates" : "shown"; // rates need two readings
  }

  show(figure, text) {
    this.figures.querySelector(`[data-figure="${figure}"]`).textContent = text;
  }
}

export class QueryPanel {
  constructor({ form, input, interpretation, equivalent, answer, meta }) {
    Object.assign(this, { form, input, interpretation, equivalent, answer, meta });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run(input.value.trim());
    });
  }

  async run(prompt) {
    if (!prompt) return;
    this.answer.dataset.state = "running";
    this.meta.textContent = "running…";
    let reply;
    try {
      reply = await call("/query", { params: [["prompt", prompt]] });
    } catch (error) {
      this.interpretation.textContent = "–";
      this.equivalent.textContent = "";
      this.answer.className = "answer muted";
      this.answer.textContent = describeError(error);
      this.answer.dataset.state = "error";
      this.meta.textContent = "";
      return;
    }
    this.interpretation.replaceChildren(renderInterpretation(reply.interpretation));
    this.interpretation.classList.remove("muted");
    this.equivalent.textContent = reply.equivalent;
    this.meta.textContent = `${formatValue(reply.took_ms)} ms${reply.cached ? ", cached" : ""}`;
    this.answer.className = "answer";
    this.answer.replaceChildren(renderResults(reply.results));
    this.answer.dataset.state = "done";
  }
}

// How the prompt was read: the query's fields that are set, the name as matched, the time phrase, and what
// was corrected or assumed.
function renderInterpretation(reading) {
  const list = document.createElement("dl");
  list.className = "reading";
  const add = (term, text) => {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = text;
    list.append(dt, dd);
  };
  add("kind", `${reading.kind} (parser: ${reading.parser})`);
  if (reading.name && reading.name.text !== reading.name.name) {
    add("name", `“${reading.name.text}” read as ${reading.name.name} (${reading.name.match})`);
  }
  if (reading.time) add("time", `${reading.time.phrase}: ${reading.time.from} → ${reading.time.to ?? "now"}`);
  for (const [field, value] of Object.entries(reading.query)) {
    const shown = Array.isArray(value) ? value.join(" ") : value;
    if (shown === null || shown === "" || field === "from" || field === "to" || field === "tz") continue;
    add(field, typeof shown === "object" ? JSON.stringify(shown) : String(shown));
  }
  for (const { typed, read_as: readAs } of reading.corrections) add("corrected", `${typed} → ${readAs}`);
  if (reading.defaults.length) add("assumed", reading.defaults.join(", "));
  return list;
}

// One figure when the answer is one number; otherwise a table of the rows' fields.
function renderResults(rows) {
  if (!rows.length) {
    const none = document.createElement("p");
    none.className = "muted";
    none.textContent = "No rows.";
    return none;
  }
  const keys = Object.keys(rows[0]);
  if (rows.length === 1 && !keys.some((key) => key === "bucket" || key === "group" || key === "id")) {
    const big = document.createElement("p");
    big.innerHTML = '<span class="big"></span> <span class="muted"></span>';
    big.firstChild.textContent = formatValue(rows[0].value);
    big.lastChild.textContent = rows[0].count === undefined ? "" : `from ${formatValue(rows[0].count)} points`;
    return big;
  }
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const key of keys) {
    const th = document.createElement("th");
    th.textContent = key;
    if (key === "value" || key === "count") th.className = "num";
    head.append(th);
  }
  const body = table.createTBody();
  for (const row of rows.slice(0, 500)) {
    const tr = body.insertRow();
    for (const key of keys) {
      const value = row[key];
      if (key === "value" || key === "count") tr.append(cell(formatValue(value), "num"));
      else if (key === "bucket" || key === "timestamp") tr.append(cell(formatTime(value)));
      else tr.append(cell(Array.isArray(value) ? value.join(" ") : String(value ?? "")));
    }
  }
  return table;
}

// The newest points of what is followed, newest first: filled from the listing, then kept by the stream.
export class PointsTable {
  constructor(body, summary) {
    this.body = body;
    this.summary = summary;
    this.pending = [];
    this.frame = 0;
  }

  fill(metrics) {
    this.body.replaceChildren(...metrics.slice(0, MAX_ROWS).map((metric) => this.row(metric, false)));
    this.count();
  }

  // Changes are applied once per animation frame: a busy stream (every metric, thousands of points a second)
  // costs the page the newest rows only.
  apply(op, metric) {
    this.pending.push([op, metric]);
    if (this.pending.length > 4 * MAX_ROWS) this.pending.splice(0, this.pending.length - 2 * MAX_ROWS);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    for (const [op, metric] of this.pending.splice(0)) this.change(op, metric);
    this.count();
  }

  change(op, metric) {
    const existing = this.body.querySelector(`tr[data-id="${CSS.escape(metric.id)}"]`);
    if (op === "delete") {
      if (existing) existing.remove();
    } else if (existing) {
      existing.replaceWith(this.row(metric, true));
    } else {
      this.body.prepend(this.row(metric, true));
      while (this.body.rows.length > MAX_ROWS) this.body.lastElementChild.remove();
    }
  }

  row(metric, fresh) {
    const tr = document.createElement("tr");
    tr.dataset.id = metric.id;
    if (fresh) tr.className = "fresh";
    tr.append(
      cell(formatTime(metric.timestamp)),
      cell(metric.name),
      cell(metric.tags.join(" "), "tags"),
      cell(formatValue(metric.value), "num"),
    );
    return tr;
  }

  count() {
    this.summary.textContent = `${this.body.rows.length} shown`;
  }
}
