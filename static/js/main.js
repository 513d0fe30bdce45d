// The review page: state of the current run, incremental polling (?since=), the grid, the
// viewer and the run bar. Panels live in their own modules.

import { onAddressChange, parseAddress, writeAddress } from "./address.js";
import { fetchJSON, onAccess, onConnection, urls } from "./api.js";
import { showBatches } from "./batches.js";
import { initReplace } from "./captions.js";
import { findCaptionJob, initCaptioning, translateCaptioning } from "./captioning.js";
import { initDraft } from "./draft.js";
import {
  clockTime, duration, flaggedFirst, hasFlag, insertSorted, matches, oneDecimal, uncheckedCount, unreviewed,
} from "./format.js";
import { CARD_SIZES, TaskGrid } from "./grid.js";
import { guideKnowsRuns, initGuide } from "./guide.js";
import { LANGUAGES, language, message, said, setLanguage, t, translate, pickLanguage } from "./i18n.js";
import { initProfilePanel, readProfile, retranslateProfile } from "./profile.js";
import { loadRules } from "./rules.js";
import { initRunPanel, showHistory } from "./runpanel.js";
import { initSavePanel, openSave, translateSavePanel } from "./savepanel.js";
import { initSelection } from "./selection.js";
import { initRelease, showRelease } from "./release.js";
import { runTitle } from "./sources.js";
import { refreshDaySpend, showRunSpend } from "./spend.js";
import { $, attempt, confirmed, redrawTexts, toast } from "./ui.js";
import { Viewer } from "./viewer.js";

// A since= poll with nothing new is ~200 bytes and a few ms (BENCHMARKS.md), so poll every second
// (a change must show within 1.5 s, a budget in docs/development.md); a hidden tab polls less.
const POLL_MS = 1000;
const POLL_HIDDEN_MS = 5000;
const RUNS_EVERY_MS = 5000;
const PAGE = 2000;
const STATUSES = ["pending", "running", "done", "failed", "stopped", "held"];
// Without a run to poll, ask /api/health so a stopped server still shows within 5 s.
const HEALTH_MS = 2000;
const OFFLINE_RETRY_MS = 1000;
const CARD_SIZE_KEY = "ibc.cardSize";
// A batch run's batches come with the run object; while it runs, read them this often.
const BATCHES_MS = 2000;

const state = {
  runId: null,
  tasks: new Map(),
  order: [], // every task id of the run, by index
  view: [], // the ids that pass the filters, by index
  rev: 0,
  running: false,
  progress: null,
  cooling: null, // the run's last cooldown or pause, and its keys, as the server said them
  keys: [],
  flagCounts: {}, // results carrying each flag, and "any", as the server counted them last
  flagsLooking: false, // the server looks at results for flags (REVIEW_FLAGS is on)
  runs: [],
  delivery: null, // the run's delivery ("live" | "batch"), null until its run object is read
  batches: null, // a batch run's batches as the run object lists them (newest first)
  batchesAt: 0, // when they were last read (ms)
  batchEta: null, // a batch run's ETA from the provider's counts, as its run object gives it (s)
  filters: { status: "", q: "", selection: "", hasResults: false, unsaved: false, flag: "", flaggedFirst: false },
  pollTimer: null,
  generation: 0, // bumps when the run changes, so stale answers are dropped
};

const connection = { online: true, lastAnswer: Date.now() };

const grid = new TaskGrid($("grid"), (id) => state.tasks.get(id), localStorage.getItem(CARD_SIZE_KEY) || "medium");
const viewer = new Viewer($("viewer"), {
  task: (id) => state.tasks.get(id),
  move: (id, delta) => state.view[state.view.indexOf(id) + delta] || null,
  nextUnreviewed: (id) => nextInView(id, unreviewed),
  nextFlagged: (id) => nextInView(id, (task) => hasFlag(task, "any")),
  toggle: (result) => setSelected(result.id, !result.selected),
  retry: (task) => retryTask(task.id, true),
  remove: (result) => deleteResult(result.id),
  reprompt: (task, prompt) => repromptTask(task.id, prompt),
  continueFrom: (result, prompt) => continueFrom(result.id, prompt),
  captioned: () => schedulePoll(0),
});
const selection = initSelection({
  runId: () => state.runId,
  filters: () => state.filters,
  view: () => state.view,
  task: (id) => state.tasks.get(id),
  tasks: () => state.tasks.values(),
  changed: () => schedulePoll(0),
});

/** Return the next task after `id` in the view (wrapping round) that passes `test`, or null. */
function nextInView(id, test) {
  const start = state.view.indexOf(id);
  for (let i = 1; i <= state.view.length; i++) {
    const candidate = state.view[(start + i) % state.view.length];
    if (test(state.tasks.get(candidate))) return candidate;
  }
  return null;
}

// -- loading and polling ------------------------------------------------------------------

async function selectRun(runId, { push = false } = {}) {
  writeAddress({ runId, filters: state.filters }, { push });
  state.generation += 1;
  const generation = state.generation;
  clearTimeout(state.pollTimer);
  Object.assign(state, { runId, tasks: new Map(), order: [], view: [], rev: 0, flagCounts: {}, flagsLooking: false,
                         delivery: null, batches: null, batchesAt: 0, batchEta: null });
  showDelivery();
  localStorage.setItem("ibc.run", runId || "");
  $("runbar").hidden = !runId;
  grid.setView([]);
  showEmpty();
  selection.refresh();
  showFlagCounts();
  drawHistory();
  findCaptionJob(runId);
  if (!runId) return;
  for (let offset = 0; ; offset += PAGE) {
    const page = await attempt(() => fetchJSON(urls.tasks(runId, { offset, limit: PAGE })));
    if (!page || generation !== state.generation) return;
    if (offset === 0) state.rev = page.rev;
    state.flagCounts = page.flag_counts || state.flagCounts;
    state.flagsLooking = page.review_flags !== false;
    merge(page.tasks, []);
    showProgress(page);
    if (offset + PAGE >= page.total) break;
  }
  const run = state.runs.find((r) => r.id === runId);
  takeBatches(run);
  $("run-title").textContent = runTitle(run);
  linkDownloads(runId);
  $("run-concurrency").value = run ? run.concurrency : "";
  $("run-budget").value = run && run.budget !== null && run.budget !== undefined ? run.budget : "";
  schedulePoll(0);
}

/** Point the run's downloads at the run, in the page's language (a table's headers and statuses, the ZIP's notes). */
function linkDownloads(runId) {
  $("table-link-xlsx").href = urls.table(runId, "xlsx", language());
  $("table-link-csv").href = urls.table(runId, "csv", language());
  $("zip-link").href = urls.zip(runId, false, language());
}

function schedulePoll(delay) {
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(poll, delay);
}

async function poll() {
  const { runId, generation } = state;
  if (!runId) return;
  try {
    const answer = await fetchJSON(urls.tasks(runId, { since: state.rev }));
    if (generation !== state.generation) return;
    state.rev = answer.rev;
    state.flagCounts = answer.flag_counts || state.flagCounts; // an unchanged poll carries none
    state.flagsLooking = answer.review_flags !== false; // REVIEW_FLAGS=0: nothing is being looked at
    if (answer.tasks.length || answer.removed.length) merge(answer.tasks, answer.removed);
    showProgress(answer);
    const batchesMove = state.delivery === null || (state.delivery === "batch" && answer.running);
    if (!("batches" in answer) && batchesMove && Date.now() - state.batchesAt > BATCHES_MS) readBatches(generation);
  } catch (err) {
    if (err.status === 404) return selectRun(null);
  }
  if (generation === state.generation) schedulePoll(document.hidden ? POLL_HIDDEN_MS : POLL_MS);
}

/** Keep a run object's delivery and batches (a run object without them is a live run: an older server). */
function takeBatches(run) {
  if (!run) return;
  state.delivery = run.delivery || "live";
  state.batches = state.delivery === "batch" ? run.batches || [] : null;
  if (run.progress) state.batchEta = run.progress.eta_s ?? null;
  state.batchesAt = Date.now();
  showDelivery();
}

/** Show a batch run's chips, and hide the run bar's concurrency: the provider paces a batch, not the console. */
function showDelivery() {
  showBatches(state.batches);
  $("run-concurrency").closest("label").hidden = state.delivery === "batch";
}

/** Read the run object for its batches (their counts move at the provider, not in the task list). */
async function readBatches(generation) {
  state.batchesAt = Date.now();
  const run = await fetchJSON(urls.run(state.runId)).catch(() => null);
  if (run && generation === state.generation) takeBatches(run);
}

/** Fold changed and removed tasks into the state; touch only what changed on screen. */
function merge(changed, removed) {
  let membership = removed.length > 0;
  for (const task of changed) {
    const known = state.tasks.get(task.id);
    state.tasks.set(task.id, task);
    if (!known) {
      insertSorted(state.order, state.tasks, task);
      membership = true;
    }
  }
  for (const id of removed) {
    if (state.tasks.delete(id)) state.order.splice(state.order.indexOf(id), 1);
  }
  if (state.openWhenSeen && state.tasks.has(state.openWhenSeen)) {
    viewer.open(state.openWhenSeen); // a continuation: show the new task, its source the chosen result
    state.openWhenSeen = null;
  }
  if (membership || filtersActive()) refilter();
  else grid.update(changed.map((task) => task.id));
  selection.refresh();
  showFlagCounts();
  if (viewer.isOpen) viewer.show();
}

function filtersActive() {
  const f = state.filters;
  return Boolean(f.status || f.q || f.selection || f.hasResults || f.unsaved || f.flag || f.flaggedFirst);
}

function refilter() {
  if (state.runId) writeAddress({ runId: state.runId, filters: state.filters });
  const shown = filtersActive() ? state.order.filter((id) => matches(state.tasks.get(id), state.filters)) : state.order.slice();
  state.view = state.filters.flaggedFirst ? flaggedFirst(shown, state.tasks) : shown;
  grid.setView(state.view);
  showEmpty();
}

/** Put the run's flag counts (results carrying each flag) in the flag filter's options, and say while results wait for a look. */
function showFlagCounts() {
  for (const option of $("filter-flag").querySelectorAll("[data-flag-option]")) {
    const flag = option.dataset.flagOption;
    option.textContent = t("flag_option", { label: t(`flag_${flag}`), count: state.flagCounts[flag] ?? 0 });
  }
  // Said only once the server was seen looking: with REVIEW_FLAGS=0 results wait for good.
  const unchecked = state.flagsLooking ? uncheckedCount(state.tasks.values()) : 0;
  const checking = $("flags-checking");
  checking.hidden = !unchecked;
  checking.textContent = unchecked ? t("flags_checking", { count: unchecked }) : "";
  checking.title = t("flags_checking_hint");
}

function showEmpty() {
  const empty = $("empty");
  empty.hidden = state.view.length > 0;
  empty.textContent = t(state.runId ? "nothing_matches" : "no_task");
}

// -- progress and run bar -------------------------------------------------------------------

function showProgress(answer) {
  state.progress = answer.progress;
  state.cooling = answer.cooling ?? null; // kept to say again in another language
  state.keys = answer.keys || [];
  const wasRunning = state.running;
  state.running = answer.running;
  const p = answer.progress;
  const total = p.total || 1;
  const box = $("progress");
  box.querySelector(".bar-done").style.width = `${(100 * p.done) / total}%`;
  box.querySelector(".bar-failed").style.width = `${(100 * p.failed) / total}%`;
  box.dataset.running = String(answer.running);
  // Held (a pilot's rest) shows only when a run has some, or it is the filter in use.
  const shown = STATUSES.filter((status) => status !== "held" || p.held || state.filters.status === "held");
  $("counts").replaceChildren(...["", ...shown].map((status) => {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = `chip status-${status || "all"}${state.filters.status === status ? " is-active" : ""}`;
    chip.dataset.status = status;
    chip.textContent = `${t(status || "all")} ${status ? p[status] ?? 0 : p.total}`;
    return chip;
  }));
  if ("batches" in answer) takeBatches({ delivery: state.delivery, ...answer });
  // A batch run has no rate of its own: its chips say how far each batch is at the provider.
  const rate = p.rate_per_min && state.delivery !== "batch" ? t("rate", { rate: oneDecimal(p.rate_per_min) }) : "";
  const etaS = state.delivery === "batch" ? state.batchEta : p.eta_s;
  const eta = answer.running && etaS !== null && etaS !== undefined ? t("eta", { eta: duration(etaS, durationUnits()) }) : "";
  $("rate").textContent = [`${oneDecimal(p.percent)}%`, rate, eta].filter(Boolean).join(" · ");
  showCooling(answer.cooling, answer.running);
  showKeys(answer.keys || []);
  if (answer.spend) showRunSpend(answer.spend); // an unchanged poll carries none: the last one stays
  showRelease(p);
  if (wasRunning !== answer.running) refreshRuns();
}

/** What holds the run back: a 429 cooldown with fewer calls at once, or a pause on an exhausted quota. */
function showCooling(cooling, running) {
  const box = $("cooling");
  let text = "";
  if (cooling?.paused) text = t("run_paused", { reason: pausedReason(cooling) });
  else if (cooling?.retrying && running) text = said(cooling, "reason"); // a batch the provider does not answer
  else if (cooling && running && cooling.until * 1000 > Date.now()) {
    text = t("cooling_until", { time: clockTime(cooling.until), reason: said(cooling, "reason"), now: cooling.concurrency, target: cooling.target });
  } else if (cooling && running) text = t("cooling_slower", { now: cooling.concurrency, target: cooling.target });
  box.textContent = text;
  box.hidden = !text;
}

/** Why a run paused, in the page's language, without the server's "paused: " (the bar says "Paused — " itself). */
function pausedReason(cooling) {
  const msg = cooling.paused_msg;
  const reason = msg?.code === "engine.paused" ? msg.params?.reason : null;
  if (reason && typeof reason === "object") return message(reason.text, reason);
  return said(cooling, "paused").replace(/^paused: /, "");
}

/** A key pool's keys (masked) with their calls, errors, calls at once and state. */
function showKeys(keys) {
  const table = $("keys");
  table.hidden = !keys.length;
  table.tBodies[0].replaceChildren(...keys.map((key) => {
    const row = document.createElement("tr");
    row.dataset.state = key.state;
    const cells = [key.number, said(key, "key"), key.calls, key.errors, `${key.in_flight}/${key.concurrency}`, keyState(key)];
    cells.forEach((value, index) => {
      const cell = row.insertCell();
      cell.textContent = value;
      if (index >= 2 && index <= 4) cell.className = "num";
    });
    row.lastChild.className = `key-${key.state}`;
    return row;
  }));
}

function keyState(key) {
  if (key.state === "parked") return t("key_parked", { reason: said(key, "reason") });
  if (key.state === "cooling" && key.until * 1000 > Date.now()) return t("key_cooling", { time: clockTime(key.until), reason: said(key, "reason") });
  return t(key.state === "cooling" ? "key_slower" : "key_ready");
}

async function refreshRuns() {
  refreshDaySpend();
  const runs = await fetchJSON("/api/runs").catch(() => null);
  if (!runs) return;
  state.runs = runs;
  takeBatches(runs.find((run) => run.id === state.runId));
  drawHistory();
}

function drawHistory() {
  showHistory(state.runs, state.runId, (id) => id !== state.runId && selectRun(id, { push: true }), async (id) => {
    await fetchJSON(urls.run(id), { method: "DELETE" });
    if (id === state.runId) selectRun(null);
    await refreshRuns();
  });
}

function durationUnits() {
  return { h: t("unit_h"), min: t("unit_min"), s: t("unit_s") };
}

/** Say what a control did; a batch run's resume may queue nothing yet wake the batches it follows. */
function actionToast(answer) {
  if (answer.stopped !== undefined) {
    return answer.at_provider ? t("stopped_cancelling", { count: answer.stopped, waiting: answer.at_provider })
      : t("stopped_n", { count: answer.stopped });
  }
  if (!answer.at_provider) return t("queued_n", { count: answer.queued });
  if (!answer.queued) return t("resumed_at_provider", { count: answer.at_provider });
  return t("queued_and_at_provider", { count: answer.queued, waiting: answer.at_provider });
}

// Resume and retry use the profile on the page now: whoever fixed the key then clicks Retry
// failed expects the fixed profile. Stop needs no profile.
async function runAction(action) {
  const answer = await attempt(() => fetchJSON(urls.runAction(state.runId, action), {
    method: "POST", body: action === "stop" ? {} : { api: readProfile() } }));
  if (!answer) return;
  toast(actionToast(answer));
  if (action === "retry-failed" && answer.queued && state.filters.status === "failed") {
    state.filters.status = ""; // the retried tasks are failed no more: keep them in sight as they run
    pushView();
    refilter();
    if (state.progress) { // the chips follow
      showProgress({ progress: state.progress, running: state.running, cooling: state.cooling, keys: state.keys });
    }
  }
  schedulePoll(0);
  refreshRuns();
}

// -- task and result actions ------------------------------------------------------------------

async function setSelected(resultId, selected) {
  await attempt(() => fetchJSON(urls.result(resultId), { method: "PATCH", body: { selected } }));
  schedulePoll(0);
}

async function deleteResult(resultId) {
  if (!confirmed("confirm_delete_result")) return;
  await attempt(() => fetchJSON(urls.result(resultId), { method: "DELETE" }), t("deleted"));
  schedulePoll(0);
}

async function retryTask(taskId, keepResults) {
  await attempt(() => fetchJSON(urls.taskAction(taskId, "retry"), {
    method: "POST", body: { keep_results: keepResults, api: readProfile() } }), t("retrying"));
  schedulePoll(0);
}

// Re-prompt: the task keeps the new prompt; its results keep the prompts that made them.
async function repromptTask(taskId, prompt) {
  await attempt(() => fetchJSON(urls.taskAction(taskId, "retry"), {
    method: "POST", body: { keep_results: true, prompt, api: readProfile() } }), t("reprompted"));
  schedulePoll(0);
}

// Continue: a new task at the end of the run whose source is this result, for a second adjustment.
async function continueFrom(resultId, prompt) {
  const answer = await attempt(() => fetchJSON(`${urls.result(resultId)}/continue`, {
    method: "POST", body: { prompt, api: readProfile() } }), t("continued"));
  if (!answer) return;
  state.openWhenSeen = answer.task_id;
  schedulePoll(0);
}

async function deleteTask(taskId) {
  if (!confirmed("confirm_delete_task")) return;
  await attempt(() => fetchJSON(urls.task(taskId), { method: "DELETE" }), t("deleted"));
  schedulePoll(0);
}

async function showDebug(taskId) {
  const answer = await attempt(() => fetchJSON(urls.taskAction(taskId, "debug")));
  if (!answer) return;
  $("debug-text").textContent = answer.log || "—";
  $("debug-drawer").hidden = false;
}

function onGridClick(event) {
  const target = event.target.closest("[data-action]");
  const card = event.target.closest(".task-card");
  if (!target || !card) return;
  const taskId = card.dataset.taskId;
  const resultId = target.closest("[data-result-id]")?.dataset.resultId;
  const actions = {
    "open-source": () => viewer.open(taskId, 0),
    "open-result": () => viewer.open(taskId, Number(target.dataset.number)),
    "edit-caption": () => viewer.open(taskId, Number(target.dataset.number), { editCaption: true }),
    "toggle-select": () => setSelected(resultId, target.checked),
    "save-result": () => openSave({ resultId }),
    "delete-result": () => deleteResult(resultId),
    "retry-keep": () => retryTask(taskId, true),
    "retry-clear": () => retryTask(taskId, false),
    reprompt: () => viewer.open(taskId, 0, { editPrompt: true }),
    "delete-task": () => deleteTask(taskId),
    debug: () => showDebug(taskId),
  };
  actions[target.dataset.action]?.();
}

// -- wiring -------------------------------------------------------------------------------------

function wireFilters() {
  $("counts").addEventListener("click", (event) => {
    const chip = event.target.closest("[data-status]");
    if (!chip) return;
    state.filters.status = chip.dataset.status;
    pushView();
    refilter();
    if (state.progress) {
    showProgress({ progress: state.progress, running: state.running, cooling: state.cooling, keys: state.keys });
  }
  });
  $("filter-q").addEventListener("input", (event) => {
    state.filters.q = event.target.value.trim();
    refilter();
  });
  $("filter-selection").addEventListener("change", (event) => {
    state.filters.selection = event.target.value;
    pushView();
    refilter();
  });
  $("filter-has-results").addEventListener("change", (event) => {
    state.filters.hasResults = event.target.checked;
    pushView();
    refilter();
  });
  $("filter-unsaved").addEventListener("change", (event) => { // what no save has written yet
    state.filters.unsaved = event.target.checked;
    pushView();
    refilter();
  });
  $("filter-flag").addEventListener("change", (event) => {
    state.filters.flag = event.target.value;
    pushView();
    refilter();
  });
  $("sort-flagged").addEventListener("change", (event) => {
    state.filters.flaggedFirst = event.target.checked;
    pushView();
    refilter();
  });
}

/** Make a new history entry for a chosen filter, so Back returns to the view before it. */
function pushView() {
  if (state.runId) writeAddress({ runId: state.runId, filters: state.filters }, { push: true });
}

/** Put filters (from the address) into the state and the filter controls. */
function applyFilters(filters) {
  Object.assign(state.filters, filters);
  $("filter-q").value = filters.q;
  $("filter-selection").value = filters.selection;
  $("filter-has-results").checked = filters.hasResults;
  $("filter-unsaved").checked = filters.unsaved;
  $("filter-flag").value = filters.flag;
  $("sort-flagged").checked = filters.flaggedFirst;
}

/** Show the view Back or Forward landed on: its run (loaded again only when it changed) and its filters. */
function showView(view) {
  if (view.runId && !state.runs.some((run) => run.id === view.runId)) return selectRun(state.runId);
  applyFilters(view.filters);
  if (view.runId !== state.runId) return selectRun(view.runId);
  refilter();
  if (state.progress) {
    showProgress({ progress: state.progress, running: state.running, cooling: state.cooling, keys: state.keys });
  }
}

/** Return the run to open first: the address's, else the one open last in this browser, else the newest. */
function startingRun(view) {
  const known = (id) => state.runs.find((run) => run.id === id);
  if (view.runId && known(view.runId)) {
    applyFilters(view.filters);
    return view.runId;
  }
  const start = known(localStorage.getItem("ibc.run")) || state.runs[0];
  return start ? start.id : null;
}

function wireRunBar() {
  for (const el of document.querySelectorAll("[data-run]")) el.addEventListener("click", () => runAction(el.dataset.run));
  $("run-concurrency").addEventListener("change", async (event) => {
    const concurrency = Number(event.target.value);
    await attempt(() => fetchJSON(urls.run(state.runId), { method: "PATCH", body: { concurrency } }), t("saved"));
  });
  $("run-budget").addEventListener("change", async (event) => {
    const raw = event.target.value.trim();
    const budget = raw ? Number(raw) : null; // empty: no budget
    await attempt(() => fetchJSON(urls.run(state.runId), { method: "PATCH", body: { budget } }), t("saved"));
    refreshRuns();
  });
  $("open-save").addEventListener("click", () => openSave({ runId: state.runId }));
  initRelease(() => state.runId, async () => {
    schedulePoll(0);
    await refreshRuns();
    const run = state.runs.find((r) => r.id === state.runId);
    if (run) $("run-title").textContent = runTitle(run); // an edited prompt is the run's prompt now
  });
  $("stop-all").addEventListener("click", async () => {
    if (!confirmed("confirm_stop_all")) return;
    const answer = await attempt(() => fetchJSON("/api/stop", { method: "POST" }));
    if (answer) toast(t("stopped_n", { count: answer.stopped }));
    schedulePoll(0);
  });
  $("debug-close").addEventListener("click", () => ($("debug-drawer").hidden = true));
  $("debug-copy").addEventListener("click", async () => {
    await attempt(() => navigator.clipboard.writeText($("debug-text").textContent), t("copied"));
  });
  $("lang-switch").addEventListener("click", () => {
    setLanguage(LANGUAGES[(LANGUAGES.indexOf(language()) + 1) % LANGUAGES.length]);
    retranslate();
  });
  $("grid").addEventListener("click", onGridClick);
  initReplace(() => state.runId, () => schedulePoll(0));
  initCaptioning({ runId: () => state.runId, tasks: () => state.tasks.values(), changed: () => schedulePoll(0) });
}

// -- connection -------------------------------------------------------------------------------

/** Show or hide the offline banner; when the server answers again, catch up at once. */
function setOnline(online) {
  if (online) connection.lastAnswer = Date.now();
  if (online === connection.online) return;
  connection.online = online;
  $("offline-banner").hidden = online;
  if (online) {
    refreshRuns();
    if (state.runId) schedulePoll(0);
    reloadBrokenImages();
  }
}

/** Load again the images that failed while the server was away (a broken <img> never retries). */
function reloadBrokenImages() {
  for (const img of document.querySelectorAll("img[src]")) {
    if (img.complete && img.naturalWidth === 0) img.src = img.getAttribute("src");
  }
}

/** Ask /api/health when nothing else has answered lately; every second while offline. */
async function healthCheck() {
  const quiet = Date.now() - connection.lastAnswer >= HEALTH_MS;
  if (!connection.online || (quiet && !document.hidden)) {
    await fetchJSON("/api/health").catch(() => {});
  }
  setTimeout(healthCheck, connection.online ? HEALTH_MS : OFFLINE_RETRY_MS);
}

function wireCardSize() {
  const select = $("card-size");
  select.value = grid.size;
  select.addEventListener("change", () => {
    if (!CARD_SIZES[select.value]) return;
    localStorage.setItem(CARD_SIZE_KEY, select.value);
    grid.setSize(select.value);
  });
}

// Folded, the profile waits at the bottom of the sidebar; opened from there, bring it into view.
function wireProfileBar() {
  const panel = $("api-panel");
  panel.querySelector("summary").addEventListener("click", () => {
    requestAnimationFrame(() => panel.open && panel.scrollIntoView({ block: "start" }));
  });
}

function retranslate() {
  translate();
  redrawTexts();
  translateSavePanel();
  retranslateProfile();
  showRunSpend();
  refreshDaySpend();
  grid.setView(state.view);
  for (const card of document.querySelectorAll(".task-card")) card.remove();
  grid.cards.clear();
  grid.render();
  showEmpty();
  selection.refresh();
  showFlagCounts();
  drawHistory();
  if (state.progress) {
    showProgress({ progress: state.progress, running: state.running, cooling: state.cooling, keys: state.keys });
  }
  showBatches();
  if (state.runId) linkDownloads(state.runId);
  if (viewer.isOpen) viewer.show();
  translateCaptioning();
}

async function main() {
  setLanguage(pickLanguage());
  translate();
  wireFilters();
  wireRunBar();
  wireCardSize();
  wireProfileBar();
  onConnection(setOnline);
  onAccess((allowed) => ($("access-banner").hidden = allowed)); // a new start made a new token
  fetchJSON("/api/health").then((health) => ($("version").textContent = health.version)).catch(() => {});
  await loadRules(); // the bounds of the inputs built below
  const settings = await initProfilePanel();
  initGuide(settings);
  await initSavePanel(settings ? settings.save : {}, () => state.tasks.values());
  initRunPanel(async (runId) => {
    document.dispatchEvent(new CustomEvent("ibc:run-started"));
    await refreshRuns();
    await selectRun(runId, { push: true });
  });
  initDraft($("run-form"));
  await refreshRuns();
  guideKnowsRuns(state.runs.length);
  onAddressChange(showView);
  await selectRun(startingRun(parseAddress(window.location.search)));
  setInterval(refreshRuns, RUNS_EVERY_MS);
  setTimeout(healthCheck, HEALTH_MS);
  document.addEventListener("visibilitychange", () => !document.hidden && schedulePoll(0));
  document.body.dataset.ready = "true";
}

main();
