// The dashboard's wiring: theme, API key, the metric picker with autocompletion, and what follows a selection
// (the live chart and the newest points, filled from GET /metrics and then kept by the stream). The selection
// lives in the URL's fragment, so a view can be bookmarked and shared.

import { call, describeError, saveKey, savedKey, selectionParams } from "./api.js";
import { LiveChart } from "./chart.js";
import { LiveStream } from "./live.js";
import { HealthPanel, PointsTable, QueryPanel } from "./panels.js";

const THEME_ITEM = "telemetry-server.theme";
const FILL_PAGE = 1000;
const FILL_PAGES = 5; // at most this many pages fill a window; the stream brings the rest
const SUGGESTIONS = 20;

const $ = (id) => document.getElementById(id);

const chart = new LiveChart($("chart"));
const points = new PointsTable($("points-body"), $("points-summary"));
const health = new HealthPanel($("health"), $("health-scope"));
new QueryPanel({
  form: $("query-form"),
  input: $("prompt"),
  interpretation: $("interpretation"),
  equivalent: $("equivalent"),
  answer: $("answer"),
  meta: $("answer-meta"),
});

let selection = { name: "", tags: [] };

const stream = new LiveStream({
  onPoint: ({ op, metric }) => {
    if (selection.name) chart.apply(op, metric);
    points.apply(op, metric);
  },
  onState: (state, text) => {
    $("stream-state").dataset.state = state;
    $("stream-state").textContent = text;
  },
  onResync: () => fill(),
});

function notice(text) {
  $("notice").hidden = !text;
  $("notice").textContent = text || "";
}

// ---- theme: the system's unless the toggle chose one (remembered)

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  chart.restyle();
}

function currentTheme() {
  return document.documentElement.dataset.theme || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
}

$("theme").addEventListener("click", () => {
  const theme = currentTheme() === "dark" ? "light" : "dark";
  localStorage.setItem(THEME_ITEM, theme);
  applyTheme(theme);
});
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => chart.restyle());
applyTheme(localStorage.getItem(THEME_ITEM));

// ---- API key

$("api-key").value = savedKey();
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  saveKey($("api-key").value.trim());
  notice("");
  health.refresh();
  follow();
});

// ---- picker: names and tags suggested by the server as they are typed

function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function suggest(datalist, values) {
  datalist.replaceChildren(
    ...values.map((value) => {
      const option = document.createElement("option");
      option.value = value;
      return option;
    }),
  );
}

const suggestNames = debounce(async () => {
  try {
    const prefix = $("metric-name").value.trim();
    suggest($("metric-names"), await call("/series/names", { params: [["prefix", prefix], ["limit", SUGGESTIONS]] }));
  } catch (error) {
    notice(describeError(error));
  }
}, 150);

const suggestTags = debounce(async () => {
  const name = $("metric-name").value.trim();
  if (!name) return;
  try {
    const prefix = $("metric-tag").value.trim();
    const params = [["name", name], ["prefix", prefix], ["limit", SUGGESTIONS]];
    suggest($("metric-tags"), (await call("/series/tags", { params })).filter((tag) => !selection.tags.includes(tag)));
  } catch (error) {
    if (error.status !== 422) notice(describeError(error)); // a name still being typed
  }
}, 150);

$("metric-name").addEventListener("input", suggestNames);
$("metric-name").addEventListener("focus", suggestNames);
$("metric-tag").addEventListener("input", suggestTags);
$("metric-tag").addEventListener("focus", suggestTags);
$("metric-tag").addEventListener("keydown", (event) => {
  if (event.key !== "Enter") return;
  event.preventDefault();
  const tag = $("metric-tag").value.trim();
  if (tag && !selection.tags.includes(tag)) select({ ...selection, tags: [...selection.tags, tag] });
  $("metric-tag").value = "";
});

$("picker").addEventListener("submit", (event) => {
  event.preventDefault();
  select({ ...selection, name: $("metric-name").value.trim() });
});
$("window").addEventListener("change", () => select(selection));

function showChips() {
  $("tag-chips").replaceChildren(
    ...selection.tags.map((tag) => {
      const chip = document.createElement("li");
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.title = `stop filtering on ${tag}`;
      remove.addEventListener("click", () => select({ ...selection, tags: selection.tags.filter((t) => t !== tag) }));
      chip.append(tag, remove);
      return chip;
    }),
  );
}

// ---- following a selection

function select(next) {
  selection = next;
  const fragment = new URLSearchParams([...selectionParams(selection), ["window", $("window").value]]);
  history.replaceState(null, "", `#${fragment}`);
  follow();
}

function follow() {
  showChips();
  const windowSeconds = Number($("window").value);
  $("chart-summary").textContent = selection.name
    ? `${selection.name}${selection.tags.length ? " · " + selection.tags.join(" ") : ""} · last ${$("window").selectedOptions[0].text}`
    : "every metric: pick one to chart it";
  chart.reset(windowSeconds);
  stream.follow(selection); // first, so nothing written while the listing is read is missed
  fill();
}

// The window so far, newest first, from the listing; the chart and the table drop what they already hold.
async function fill() {
  const asked = selection;
  const from = new Date(Date.now() - Number($("window").value) * 1000).toISOString();
  const params = [...selectionParams(selection), ["from", from], ["limit", FILL_PAGE]];
  let cursor = null;
  try {
    for (let page = 0; page < FILL_PAGES; page++) {
      const listing = await call("/metrics", { params: cursor ? [...params, ["cursor", cursor]] : params });
      if (asked !== selection) return;
      if (page === 0) points.fill(listing.items);
      if (selection.name) chart.addAll(listing.items);
      cursor = listing.next;
      if (!cursor) break;
    }
    notice("");
  } catch (error) {
    notice(describeError(error));
  }
}

function restore() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const windowSeconds = fragment.get("window");
  if (windowSeconds && [...$("window").options].some((option) => option.value === windowSeconds)) {
    $("window").value = windowSeconds;
  }
  selection = { name: fragment.get("name") || "", tags: fragment.getAll("tag") };
  $("metric-name").value = selection.name;
  follow();
}

health.start();
restore();
