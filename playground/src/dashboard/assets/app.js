// The page's only script: every 2 s it asks the playground server for each view's
// HTML fragment (charts are SVG drawn by the server) and swaps it in. The browser
// never talks to InfluxDB.
"use strict";
const REFRESH_MS = 2000;
const range = document.getElementById("range");
const run = document.getElementById("run");

// `?range=5m&run=NAME` preselects (and the address keeps the current choice), so a
// view can be linked to or bookmarked.
const initial = new URLSearchParams(location.search);
if (initial.get("range")) range.value = initial.get("range");
if (initial.get("run")) {
  const option = document.createElement("option");
  option.value = option.textContent = initial.get("run");
  run.append(option);
  run.value = option.value;
}
function remember() {
  history.replaceState(null, "", "?" + params());
}

function params() {
  return "range=" + encodeURIComponent(range.value) + "&run=" + encodeURIComponent(run.value);
}

async function fetchText(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error("HTTP " + response.status);
  return response.text();
}

// Replaces an element by the fragment's element; on failure keeps the old one, greyed,
// and returns false.
async function swap(selector, url) {
  const old = document.querySelector(selector);
  if (!old) return false;
  try {
    const html = await fetchText(url);
    const holder = document.createElement("div");
    holder.innerHTML = html;
    if (holder.firstElementChild) old.replaceWith(holder.firstElementChild);
    return true;
  } catch (e) {
    old.classList.add("stale");
    return false;
  }
}

// The run chooser lists the runs the status line names (most recent first).
function refreshRuns() {
  let runs = [];
  try {
    runs = JSON.parse(document.getElementById("status").dataset.runs || "[]");
  } catch (e) { return; }
  const chosen = run.value;
  const options = [""].concat(runs);
  if (chosen && !runs.includes(chosen)) options.push(chosen);
  const current = Array.from(run.options).map((o) => o.value);
  if (current.join("\n") === options.join("\n")) return;
  run.replaceChildren(...options.map((name) => {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name || "most recent";
    return option;
  }));
  run.value = chosen;
}

async function refresh() {
  if (!(await swap("#status", "/status?" + params()))) {
    const status = document.getElementById("status");
    status.textContent = "The dashboard server is not answering — retrying every 2 s.";
    status.dataset.state = "unreachable";
  }
  refreshRuns();
  const views = Array.from(document.querySelectorAll("section.view"));
  await Promise.all(views.map((v) =>
    swap('section.view[data-view="' + v.dataset.view + '"]', "/view/" + v.dataset.view + "?" + params())));
}

async function loop() {
  await refresh();
  setTimeout(loop, REFRESH_MS);
}

for (const select of [range, run]) {
  select.addEventListener("change", () => { remember(); refresh(); });
}
loop();
