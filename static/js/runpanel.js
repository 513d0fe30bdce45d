// The run panel (the mode switch and its sources, scan preview, prompt and saved prompts, start)
// and the run history. Saved prompts live on the server; the ones an older version
// kept in this browser's localStorage are handed over once.

import { fetchJSON } from "./api.js";
import { initCompare } from "./compare.js";
import { when } from "./format.js";
import { said, t } from "./i18n.js";
import { readProfile } from "./profile.js";
import { money } from "./spend.js";
import { currentMode, initSources, problemLines, runTitle, showTable, sidecarLines, sourceFields, updateTaskCount } from "./sources.js";
import { $, attempt, confirmed, fillSelect, showText, toast } from "./ui.js";
import { initUpload } from "./upload.js";

const LEGACY_SNIPPETS_KEY = "ibc.snippets";
let snippets = {}; // name -> text, as the server has them

async function loadSnippets() {
  const answer = await fetchJSON("/api/snippets").catch(() => null);
  if (!answer) return;
  snippets = Object.fromEntries(answer.snippets.map((item) => [item.name, item.text]));
  fillSelect($("snippets"), answer.snippets.map((item) => [item.name, item.name]), t("snippets"));
  $("snippets").options[0].dataset.i18n = "snippets"; // so a language switch renames it
}

/** Hand the prompts an older version kept in this browser to the server, once; then forget them here. */
async function migrateSnippets() {
  let legacy = null;
  try {
    legacy = JSON.parse(localStorage.getItem(LEGACY_SNIPPETS_KEY));
  } catch {
    legacy = null;
  }
  if (!legacy || typeof legacy !== "object" || !Object.keys(legacy).length) return;
  const kept = Object.fromEntries(Object.entries(legacy).filter(([name, text]) => name.trim() && typeof text === "string" && text.trim()));
  const answer = await attempt(() => fetchJSON("/api/snippets/migrate", { method: "POST", body: { snippets: kept } }));
  if (!answer) return; // kept in the browser: the next start tries again
  localStorage.removeItem(LEGACY_SNIPPETS_KEY);
  if (answer.added) toast(t("snippets_moved", { count: answer.added }));
}

async function saveSnippet() {
  const text = $("run-form").elements.prompt.value.trim();
  if (!text) return;
  const current = $("snippets").value;
  const name = window.prompt(t("snippet_name"), current || text.slice(0, 40));
  if (!name || !name.trim()) return;
  if (name.trim() !== current && snippets[name.trim()] !== undefined && !confirmed("confirm_replace_snippet", { name })) return;
  const answer = await attempt(() => fetchJSON(`/api/snippets/${encodeURIComponent(name.trim())}`, { method: "PUT", body: { text } }), t("saved"));
  if (!answer) return;
  await loadSnippets();
  $("snippets").value = answer.name;
}

async function renameSnippet() {
  const name = $("snippets").value;
  if (!name) return;
  const next = window.prompt(t("snippet_name"), name);
  if (!next || !next.trim() || next.trim() === name) return;
  const answer = await attempt(() => fetchJSON(`/api/snippets/${encodeURIComponent(name)}/rename`, { method: "POST", body: { name: next } }), t("saved"));
  if (!answer) return;
  await loadSnippets();
  $("snippets").value = answer.name;
}

async function deleteSnippet() {
  const name = $("snippets").value;
  if (!name || !confirmed("confirm_delete_preset", { name })) return;
  await attempt(() => fetchJSON(`/api/snippets/${encodeURIComponent(name)}`, { method: "DELETE" }), t("deleted"));
  await loadSnippets();
}

function useSnippet() {
  const text = snippets[$("snippets").value];
  if (text === undefined) return;
  const prompt = $("run-form").elements.prompt;
  prompt.value = text;
  prompt.dispatchEvent(new Event("input")); // generate mode follows the prompt's {variables}
}

async function scanPreview() {
  const output = $("scan-output");
  const fields = sourceFields("edit");
  let failure = null;
  const answer = await fetchJSON("/api/scan", {
    method: "POST", body: { input_path: fields.input_path, recursive: fields.recursive, prompt: fields.prompt,
                            sidecar: fields.sidecar, reference_dirs: fields.reference_dirs },
  }).catch((err) => { failure = err; return null; });
  output.hidden = false;
  output.classList.toggle("is-error", Boolean(failure));
  if (failure) {
    showText(output, () => [refusalHead(failure, "summary"), ...problemLines(failure.data)].join("\n"));
    return;
  }
  const found = () => {
    const lines = [t("count_found", { count: answer.count }), ...answer.sample.slice(0, 8).map((name) => `· ${name}`)];
    if (answer.truncated) lines.splice(1, 0, `⚠ ${scanCutNote(answer.truncated)}`);
    lines.push(...sidecarLines(answer));
    if (answer.skipped_count) {
      lines.push(t("skipped", { count: answer.skipped_count }));
      lines.push(...answer.skipped.slice(0, 5).map((s) => `× ${s.name}: ${said(s, "reason")}`));
    }
    return lines;
  };
  showText(output, () => found().join("\n"));
  const estimate = await fetchEstimate(fields);
  if (estimate) showText(output, () => [...found(), "", ...estimateLines(estimate)].join("\n"));
}

/** Return what a refusal says first, in the page's language: its `field` (summary) or its error. */
function refusalHead(err, field = "error") {
  return (err.data && (said(err.data, field) || said(err.data))) || err.message;
}

/** Return what the run the form would start costs (null when the estimate fails: Start says why the run
 *  cannot start). */
async function fetchEstimate(fields) {
  const form = $("run-form");
  const answer = await fetchJSON("/api/runs/estimate", {
    method: "POST", body: { ...fields, ...pilotField(form), api: readProfile() },
  }).catch(() => null);
  return answer && answer.tasks ? answer : null;
}

/** Return an estimate as lines for the preview. */
function estimateLines(answer) {
  const cost = answer.cost === null ? t("estimate_cost_unknown") : `≈ ${money(answer.cost, answer.currency)}`;
  const basis = answer.basis === "history" ? t("estimate_history", { count: answer.history_calls }) : t(`estimate_${answer.basis}`);
  const lines = [`${t("estimate_run", { calls: answer.calls, images: answer.images })} · ${cost} ${basis}`];
  if (answer.pilot && answer.pilot.cost !== null) {
    lines.push(t("estimate_pilot", { count: answer.pilot.tasks, cost: money(answer.pilot.cost, answer.currency) }));
  }
  return lines;
}

/** Say that a scan stopped early (too many entries, or too long) and what a run needs instead. */
function scanCutNote(cut) {
  return cut.reason === "time" ? t("scan_cut_time", { seconds: cut.limit }) : t("scan_cut_entries", { visited: cut.visited });
}

async function checkTable() {
  const fields = sourceFields("table");
  try {
    showTable(await fetchJSON("/api/tables/check", { method: "POST", body: fields }), null);
  } catch (err) {
    showTable(null, err);
  }
}

/** Show a refused start where the user looks: the rows or files next to the part of the form they came from. */
function showRefusal(mode, err) {
  const lines = problemLines(err.data);
  if (mode === "table") return showTable(null, err);
  const box = mode === "generate" ? $("task-count") : $("scan-output");
  if (!lines.length && mode === "generate") return updateTaskCount();
  if (!lines.length) return;
  box.hidden = false;
  box.classList.add("is-error");
  showText(box, () => [refusalHead(err, "summary"), ...problemLines(err.data)].join("\n"));
}

/** The form's "Try on N first" as a body field: none when empty; any other value goes as typed, for the server to judge. */
function pilotField(form) {
  const raw = form.elements.pilot.value.trim();
  return raw ? { pilot: Number(raw) } : {};
}

/** The form's budget as a body field: none when empty; any other value goes as typed, for the server to judge. */
function budgetField(form) {
  const raw = form.elements.budget.value.trim();
  return raw ? { budget: Number(raw) } : {};
}

/** Wire the run panel; `onStarted(runId)` is called after a run is created. */
export function initRunPanel(onStarted) {
  const form = $("run-form");
  initSources();
  initUpload();
  migrateSnippets().then(loadSnippets);
  $("snippets").addEventListener("change", useSnippet);
  $("snippet-save").addEventListener("click", saveSnippet);
  $("snippet-rename").addEventListener("click", renameSnippet);
  $("snippet-delete").addEventListener("click", deleteSnippet);
  $("scan").addEventListener("click", scanPreview);
  $("table-check").addEventListener("click", checkTable);
  document.addEventListener("ibc:config-imported", loadSnippets);
  initCompare(onStarted); // the chosen variant's run is opened as a started run is
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("[type=submit]");
    const mode = currentMode();
    button.disabled = true;
    const answer = await attempt(() => fetchJSON("/api/runs", {
      method: "POST", body: { ...sourceFields(mode), ...pilotField(form), ...budgetField(form), api: readProfile() },
    }).catch((err) => {
      showRefusal(mode, err);
      throw err;
    }), (run) => (run.held ? t("started_pilot", { count: run.task_count - run.held, held: run.held })
                           : t("started", { count: run.task_count })));
    button.disabled = false;
    if (answer) onStarted(answer.run_id);
  });
}

/** Draw the run history; clicking a run calls onSelect(id), its delete button onDelete(id). */
export function showHistory(runs, currentId, onSelect, onDelete) {
  const list = $("history");
  if (!runs.length) {
    const empty = document.createElement("li");
    empty.className = "muted";
    empty.textContent = t("no_runs");
    list.replaceChildren(empty);
    return;
  }
  list.replaceChildren(...runs.map((run) => {
    const item = document.createElement("li");
    item.className = `history-item${run.id === currentId ? " is-current" : ""}${run.running ? " is-running" : ""}`;
    item.dataset.runId = run.id;
    const title = document.createElement("button");
    title.type = "button";
    title.className = "link";
    const name = runTitle(run);
    title.textContent = name.length > 60 ? name.slice(0, 60) + "…" : name;
    title.title = name;
    title.addEventListener("click", () => onSelect(run.id));
    const meta = document.createElement("div");
    meta.className = "muted small";
    const p = run.progress;
    meta.textContent = `${when(run.created_at)} · ${p.done}/${p.total} ${t("done")}${p.failed ? ` · ${p.failed} ${t("failed")}` : ""}`
      + (p.held ? ` · ${p.held} ${t("held")}` : "") + (run.delivery === "batch" ? ` · ${t("history_batch")}` : "");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "icon danger";
    remove.textContent = "✕";
    remove.title = t("delete");
    remove.addEventListener("click", async () => {
      if (confirmed("confirm_delete_run")) await attempt(() => onDelete(run.id), t("deleted"));
    });
    item.append(title, remove, meta);
    return item;
  }));
}

