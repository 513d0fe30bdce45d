// The save drawer: a save rule (presets, output folder, layout, template, captions), a dry-run
// preview of the files to be written, save selected or all, and the validation report.

import { fetchJSON, urls } from "./api.js";
import { t } from "./i18n.js";
import { PresetPicker } from "./presets.js";
import { entryDetail, groupByFolder, groupByReason, isRefused, reportCounts } from "./report.js";
import { $, attempt, toast } from "./ui.js";

const VARIABLES = ["{stem}", "{n}", "{index:04d}", "{run}", "{task}", "{result}", "{sha8}", "{date}"];
const FLAGS = ["only_selected", "sequential"];
let presets = null;
let target = null; // {runId} or {resultId}
let tasksOnPage = () => []; // the page's tasks, to name report entries by their source file

function readRule() {
  const rule = {};
  for (const el of $("save-form").elements) {
    if (!el.name) continue;
    if (FLAGS.includes(el.name)) rule[el.name] = el.checked;
    else if (el.name === "aspect_tolerance") rule[el.name] = el.value === "" ? 0.02 : Number(el.value);
    else rule[el.name] = el.value; // "" means: the layout's default
  }
  return rule;
}

function writeRule(rule) {
  for (const el of $("save-form").elements) {
    if (!el.name || !(el.name in rule)) continue;
    if (FLAGS.includes(el.name)) el.checked = Boolean(rule[el.name]);
    else el.value = rule[el.name];
  }
}

function endpoint() {
  return target.resultId ? `${urls.result(target.resultId)}/save` : `${urls.run(target.runId)}/save`;
}

const SHOWN = 100; // entries listed per group; the rest are counted

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Index the page's tasks by task id and by result id, to name every entry by its source file. */
function sourceIndex() {
  const byTask = new Map();
  const byResult = new Map();
  for (const task of tasksOnPage()) {
    byTask.set(task.id, task);
    task.results.forEach((result, number) => byResult.set(result.id, { task, number }));
  }
  return { byTask, byResult };
}

/** Return the source file an entry is about ("img1.png", "img1.png · 2/3" for one of several results). */
function sourceName(entry, index) {
  const found = index.byResult.get(entry.result_id);
  const task = found ? found.task : index.byTask.get(entry.task_id);
  const name = entry.source_name || (task && task.source_name) || entry.result_id || entry.task_id || "—";
  return found && found.task.results.length > 1 ? `${name} · ${found.number + 1}/${found.task.results.length}` : name;
}

function listItems(items, draw) {
  const list = element("ul", "report-list");
  list.append(...items.slice(0, SHOWN).map(draw));
  if (items.length > SHOWN) list.append(element("li", "muted", t("report_more", { count: items.length - SHOWN })));
  return list;
}

function reasonGroup(kind, entries, index) {
  const refused = isRefused(kind);
  const group = element("section", `report-group ${refused ? "is-refused" : "is-skipped"}`);
  group.dataset.reason = kind;
  const title = `${t(refused ? "report_refused" : "report_skipped")} · ${t(`reason_${kind}`)} (${entries.length})`;
  group.append(element("h4", "", title));
  if (t(`fix_${kind}`)) group.append(element("p", "report-fix", t(`fix_${kind}`)));
  group.append(listItems(entries, (entry) => {
    const item = element("li");
    item.append(element("b", "", sourceName(entry, index)));
    const detail = entryDetail(entry, kind);
    if (detail) item.append(" ", element("span", "muted", detail));
    return item;
  }));
  return group;
}

function folderGroup(folder, files, root, index) {
  const group = element("section", "report-folder");
  group.dataset.folder = folder;
  group.append(element("h5", "", `${folder || root || "./"} · ${t("report_files", { count: files.length })}`));
  group.append(listItems(files, ({ file, entry }) => {
    const item = element("li");
    item.append(element("span", "report-file", file), " ", element("span", "muted", t("report_from", { name: sourceName(entry, index) })));
    return item;
  }));
  return group;
}

function countsLine(answer, dryRun) {
  const counts = reportCounts(answer);
  const line = element("p", "report-counts", t(dryRun ? "report_counts_dry" : "report_counts", counts));
  line.dataset.saved = counts.saved;
  line.dataset.skipped = counts.skipped;
  line.dataset.refused = counts.refused;
  return line;
}

/** Draw the save answer: counts first, then refusals and skips by reason with their fix, then files by folder. */
function showReport(answer, dryRun) {
  const output = $("save-output");
  const index = sourceIndex();
  const report = answer.report || {};
  const root = report.output_dir || "";
  const files = answer.saved.flatMap((item) => item.paths || []);
  const parts = [countsLine(answer, dryRun),
    element("p", "muted", dryRun ? `${t("report_dry")} ${t("will_write", { count: files.length })}` : t("report_written", { count: files.length }))];
  const groups = groupByReason([...answer.errors, ...answer.skipped]);
  groups.sort(([a], [b]) => Number(isRefused(b)) - Number(isRefused(a)));
  parts.push(...groups.map(([kind, entries]) => reasonGroup(kind, entries, index)));
  const folders = groupByFolder(answer.saved, root);
  if (folders.length) {
    const section = element("section", "report-files");
    section.append(element("h4", "", t(dryRun ? "report_planned" : "report_saved")),
      ...folders.map(([folder, list]) => folderGroup(folder, list, root, index)));
    parts.push(section);
  }
  if (report.notes && report.notes.length) {
    const notes = element("section", "report-notes");
    notes.append(element("h4", "", t("report_notes")), listItems(report.notes, (note) => element("li", "", note)));
    parts.push(notes);
  }
  output.replaceChildren(...parts);
  output.hidden = false;
  output.classList.toggle("is-error", reportCounts(answer).refused > 0);
  output.scrollIntoView({ block: "nearest" });
}

async function save(dryRun) {
  const answer = await attempt(() => fetchJSON(endpoint(), { method: "POST", body: { ...readRule(), dry_run: dryRun } }));
  if (answer) {
    showReport(answer, dryRun);
    if (!dryRun) toast(t("wrote", { count: answer.saved.length }), answer.errors.length ? "error" : "ok");
  }
}

function insertVariable(variable) {
  const input = $("save-form").elements.template;
  const at = input.selectionStart ?? input.value.length;
  input.value = input.value.slice(0, at) + variable + input.value.slice(input.selectionEnd ?? at);
  input.focus();
  input.setSelectionRange(at + variable.length, at + variable.length);
}

/** Open the drawer for a whole run or for one result. */
export function openSave(what) {
  target = what;
  $("save-output").hidden = true;
  $("save-form").elements.only_selected.disabled = Boolean(what.resultId);
  $("save-drawer").hidden = false;
}

/** Wire the drawer; restore the last rule from the stored "save" settings; `tasks()` lists the page's tasks. */
export async function initSavePanel(savedRule, tasks) {
  tasksOnPage = tasks;
  $("template-vars").replaceChildren(...VARIABLES.map((variable) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "small";
    button.textContent = variable;
    button.addEventListener("click", () => insertVariable(variable));
    return button;
  }));
  if (savedRule && Object.keys(savedRule).length) writeRule(savedRule);
  $("save-close").addEventListener("click", () => ($("save-drawer").hidden = true));
  $("save-preview").addEventListener("click", () => save(true));
  $("save-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    await save(false);
    fetchJSON("/api/settings", { method: "PUT", body: { save: readRule() } }).catch(() => {});
  });
  presets = new PresetPicker("save", $("save-preset"), { read: readRule, write: writeRule });
  presets.wire($("save-preset-apply"), $("save-preset-save"), $("save-preset-delete"));
  await presets.load().catch((err) => toast(err.message, "error"));
}
