// The save drawer: a save rule (presets, the older console's presets, output folder, layout,
// templates, captions), a dry-run preview of the files to be written, the save itself with its
// progress and a cancel button, and the report.

import { fetchJSON, urls } from "./api.js";
import { pageLocale } from "./format.js";
import { t } from "./i18n.js";
import { PresetPicker } from "./presets.js";
import { rule as served } from "./rules.js";
import { entryDetail, groupByFolder, groupByReason, isRefused, progressLine, repairedLine, reportCounts } from "./report.js";
import { $, attempt, fillSelect, toast } from "./ui.js";

// Ours first, then the older console's names; the caption template sees the written image too.
const VARIABLES = ["{stem}", "{n}", "{index:04d}", "{run}", "{task}", "{result}", "{sha8}", "{date}",
  "{src_stem}", "{src_name}", "{src_ext}", "{task_id}", "{result_id}", "{result_index}", "{global_index:04d}"];
const CAPTION_VARIABLES = ["{prompt}", "{trigger}", "{image_name}", "{image_path}", "{src_name}", "{src_stem}", "{task_id}",
  "{answer_text}"];
const FLAGS = ["only_selected", "sequential", "first_only", "role_swap", "resave"];
const NOT_KEPT = ["resave"]; // asked for one save at a time: never stored in settings or presets
const POLL_MS = 250;
let presets = null;
let builtins = [];
let target = null; // {runId} or {resultId}
let tasksOnPage = () => []; // the page's tasks, to name report entries by their source file
let running = null; // the job id of the save under way

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

/** The rule as settings and presets keep it: without the one-off switches. */
function keptRule() {
  const rule = readRule();
  for (const name of NOT_KEPT) delete rule[name];
  return rule;
}

function writeRule(rule) {
  for (const el of $("save-form").elements) {
    if (!el.name || !(el.name in rule)) continue;
    if (FLAGS.includes(el.name)) el.checked = Boolean(rule[el.name]);
    else el.value = rule[el.name];
  }
  markIgnored();
}

// Fields a layout or another choice makes the server ignore: [field, test(rule), reason key]. A disabled
// field shows why, so that nothing in the drawer looks used when it is not.
// The layout groups are the server's (GET /api/rules): pairs, and trainers (which also use a dataset name).
const paired = (layout) => (served("save.pair_layouts") || []).includes(layout);
const trainer = (layout) => (served("save.trainer_layouts") || []).includes(layout);
const IGNORED = [
  ["name", (r) => !trainer(r.layout), "ignored_name"],
  ["sequential", (r) => !paired(r.layout), "ignored_sequential"],
  ["template", (r) => paired(r.layout) && r.sequential, "ignored_template"],
  ["role_swap", (r) => !paired(r.layout), "ignored_pairs_only"],
  ["conform", (r) => !paired(r.layout), "ignored_pairs_only"],
  ["aspect_tolerance", (r) => !paired(r.layout) || ["pad", "crop", "resize"].includes(r.conform), "ignored_tolerance"],
  ["caption_template", (r) => r.caption !== "template", "ignored_caption_template"],
  ["trigger", (r) => r.caption === "none" || (r.caption === "" && !trainer(r.layout)), "ignored_trigger"],
];

/** Disable each field the current rule ignores and say why next to it (data-testid="ignored-<field>"). */
function markIgnored() {
  const form = $("save-form");
  const rule = readRule();
  for (const [name, ignored, key] of IGNORED) {
    const field = form.elements[name];
    const label = field.closest("label");
    let reason = label.querySelector(".ignored-reason");
    const off = ignored(rule);
    field.disabled = off;
    label.classList.toggle("is-ignored", off);
    if (!off) {
      reason?.remove();
      continue;
    }
    if (!reason) {
      reason = element("small", "muted ignored-reason");
      reason.setAttribute("data-testid", `ignored-${name}`);
      label.append(reason);
    }
    reason.textContent = t(key);
    field.title = t(key);
  }
  showCaptionNote(rule);
}

/** Return the results a save of the current target would look at (the run's, or the one result). */
function targetResults() {
  const results = [...tasksOnPage()].flatMap((task) => task.results);
  return target?.resultId ? results.filter((r) => r.id === target.resultId) : results;
}

/** Say so when results have captions of their own but the rule writes no caption files. */
function showCaptionNote(rule) {
  const note = $("save-caption-note");
  const off = rule.caption === "none" || (rule.caption === "" && !trainer(rule.layout));
  const own = off && target ? targetResults().filter((r) => r.caption).length : 0;
  note.hidden = !own;
  note.textContent = own ? t("save_caption_note", { count: own }) : "";
}

// -- the output folder: a new one per run --------------------------------------------------------

let outputRoot = ""; // the folder new runs' folders go into: where the last output folder was
let autoFolder = null; // {runId, path} the drawer filled in itself

function parentOf(path) {
  const trimmed = path.replace(/[\\/]+$/, "");
  const at = Math.max(trimmed.lastIndexOf("/"), trimmed.lastIndexOf("\\"));
  return at > 0 ? trimmed.slice(0, at) : trimmed;
}

/** Return a run's folder name: its input folder's name (or "run") and its id, in characters any disk takes. */
export function runFolderName(run) {
  const base = (run.input_path || "").replace(/[\\/]+$/, "").split(/[\\/]/).pop() || "run";
  const slug = base.normalize("NFC").replace(/[^\p{L}\p{N}_-]+/gu, "-").replace(/^-+|-+$/g, "").slice(0, 40) || "run";
  return `${slug}-${run.id}`;
}

/** Fill the output folder with a new folder named after the run, unless the person chose one for this run. */
async function defaultFolder(runId) {
  const input = $("save-form").elements.output_dir;
  if (autoFolder && autoFolder.runId === runId) return;
  if (autoFolder && input.value === autoFolder.path) outputRoot = parentOf(autoFolder.path);
  const before = input.value;
  const run = await fetchJSON(urls.run(runId)).catch(() => null);
  // Typed into meanwhile, or the cursor is in it (text typed next would land after the default): theirs.
  if (!run || target?.runId !== runId || input.value !== before || document.activeElement === input) return;
  const path = `${(outputRoot || "~/datasets").replace(/[\\/]+$/, "")}/${runFolderName(run)}`;
  input.value = path;
  autoFolder = { runId, path };
}

/** Ask before adding this run's items to a folder that holds another run's dataset; true to go on. */
function appendConfirmed(err) {
  const runs = err.data?.other_run_details || (err.data?.other_runs || []).map((id) => ({ run_id: id }));
  const when = (r) => (typeof r.created_at === "number" ? ` (${new Date(r.created_at * 1000).toLocaleString(pageLocale())})` : "");
  const list = runs.map((r) => `· ${r.run_id}${r.prompt ? ` — ${r.prompt.slice(0, 60)}` : ""}${when(r)}`).join("\n");
  return window.confirm(t("append_confirm", { folder: readRule().output_dir, runs: list }));
}

/** Post the rule; when the folder holds another run's dataset, ask, and send it again with append (undefined: no). */
async function postRule(job, dryRun) {
  const body = { ...readRule(), dry_run: dryRun };
  try {
    return await fetchJSON(endpoint(job), { method: "POST", body });
  } catch (err) {
    if (err.status !== 409 || !err.data?.other_runs) throw err;
    if (!appendConfirmed(err)) {
      toast(t("append_declined", { folder: body.output_dir })); // the person's choice, not an error
      return undefined;
    }
    return fetchJSON(endpoint(job), { method: "POST", body: { ...body, append: true } });
  }
}

function endpoint(job) {
  const path = target.resultId ? `${urls.result(target.resultId)}/save` : `${urls.run(target.runId)}/save`;
  return `${path}?job=${encodeURIComponent(job)}`;
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

/**
 * Return the source file an entry is about ("img1.png", "img1.png · 2/3" for one of several results).
 * The server's entry says which result it is; the page's tasks only fill in for an entry that does not.
 */
function sourceName(entry, index) {
  const found = index.byResult.get(entry.result_id);
  const task = found ? found.task : index.byTask.get(entry.task_id);
  const name = entry.source_name || (task && task.source_name) || entry.result_id || entry.task_id || "—";
  const number = entry.result_number ?? (found && found.number + 1);
  const count = entry.result_count ?? (found && found.task.results.length);
  return count > 1 ? `${name} · ${number}/${count}` : name;
}

function listItems(items, draw) {
  const list = element("ul", "report-list");
  list.append(...items.slice(0, SHOWN).map(draw));
  if (items.length > SHOWN) list.append(element("li", "muted", t("report_more", { count: items.length - SHOWN })));
  return list;
}

function reasonGroup(kind, entries, index, root) {
  const refused = isRefused(kind);
  const group = element("section", `report-group ${refused ? "is-refused" : "is-skipped"}`);
  group.dataset.reason = kind;
  const title = `${t(refused ? "report_refused" : "report_skipped")} · ${t(`reason_${kind}`)} (${entries.length})`;
  group.append(element("h4", "", title));
  if (t(`fix_${kind}`)) group.append(element("p", "report-fix", t(`fix_${kind}`)));
  group.append(listItems(entries, (entry) => {
    const item = element("li");
    item.append(element("b", "", sourceName(entry, index)));
    const detail = entryDetail(entry, kind, (files) => t("report_earlier", { files }), root);
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

/** Return a report remark in the page's language (the server's English text when the code is unknown here). */
function noteText(code, english) {
  const key = code ? `note_${code.code}` : "";
  return key && t(key) !== key ? t(key, code.vars || {}) : english;
}

function countsLine(answer, dryRun) {
  const counts = reportCounts(answer);
  const line = element("p", "report-counts", t(dryRun ? "report_counts_dry" : "report_counts", counts));
  line.dataset.saved = counts.saved;
  line.dataset.skipped = counts.skipped;
  line.dataset.refused = counts.refused;
  return line;
}

/** Return the section listing the written (or planned) files by folder, under where they went. */
function writtenSection(answer, dryRun, root, index) {
  const files = answer.saved.flatMap((item) => item.paths || []);
  const section = element("section", "report-files");
  section.setAttribute("data-testid", "report-written");
  const where = root ? ` → ${root}` : "";
  section.append(element("h4", "", `${t(dryRun ? "report_planned" : "report_saved")}${where}`),
    element("p", "muted", dryRun ? `${t("report_dry")} ${t("will_write", { count: files.length })}` : t("report_written", { count: files.length })),
    ...groupByFolder(answer.saved, root).map(([folder, list]) => folderGroup(folder, list, root, index)));
  return section;
}

/** Return the expected skips (the rule's own choices), folded unless nothing was written: they need no action. */
function skipsSection(groups, index, root, open) {
  const count = groups.reduce((sum, [, entries]) => sum + entries.length, 0);
  const folded = element("details", "report-skips");
  folded.setAttribute("data-testid", "report-skips");
  folded.open = open; // nothing written: the skips are the whole answer
  folded.append(element("summary", "", t("report_skips_folded", { count })),
    ...groups.map(([kind, entries]) => reasonGroup(kind, entries, index, root)));
  return folded;
}

/** Copy text to the clipboard (a selection and execCommand where the Clipboard API is not allowed). */
async function copyText(text, source) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const range = document.createRange();
    range.selectNodeContents(source);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    document.execCommand("copy");
  }
  toast(t("snippet_copied"));
}

/** Return the trainer's config lines for this dataset, ready to copy. */
function snippetSection(snippet) {
  const section = element("section", "report-snippet");
  section.setAttribute("data-testid", "trainer-snippet");
  section.dataset.trainer = snippet.trainer;
  const code = element("code", "", snippet.text);
  const pre = element("pre", "snippet");
  pre.append(code);
  const button = element("button", "small", t("copy"));
  button.type = "button";
  button.setAttribute("data-testid", "copy-snippet");
  button.addEventListener("click", () => copyText(snippet.text, code));
  const head = element("div", "row");
  head.append(element("h4", "grow", t(`snippet_${snippet.language}`, { trainer: snippet.trainer })), button);
  section.append(head, pre);
  return section;
}

/** Draw the save answer: what was written and where, what was refused and why, the expected skips folded,
 * the remarks, then the lines the trainer's config needs. */
function showReport(answer, dryRun) {
  const output = $("save-output");
  const index = sourceIndex();
  const report = answer.report || {};
  const root = report.output_dir || "";
  const parts = [countsLine(answer, dryRun)];
  if (answer.cancelled) {
    const cancelled = element("p", "report-cancelled", t("save_cancelled", { count: report.counts?.not_written ?? 0 }));
    cancelled.setAttribute("data-testid", "save-cancelled");
    parts.push(cancelled);
  }
  const captions = answer.captions;
  if (captions && (captions.from_results || captions.from_rule)) {
    const line = element("p", "report-captions", t("report_captions", captions));
    line.setAttribute("data-testid", "save-captions");
    parts.push(line);
  }
  const repaired = repairedLine(report);
  if (repaired) {
    const line = element("p", "report-repaired", t("report_repaired", repaired));
    line.setAttribute("data-testid", "save-repaired");
    parts.push(line);
  }
  parts.push(writtenSection(answer, dryRun, root, index));
  const groups = groupByReason([...answer.errors, ...answer.skipped]);
  parts.push(...groups.filter(([kind]) => isRefused(kind)).map(([kind, entries]) => reasonGroup(kind, entries, index, root)));
  const skips = groups.filter(([kind]) => !isRefused(kind));
  if (skips.length) parts.push(skipsSection(skips, index, root, answer.saved.length === 0));
  if (report.notes && report.notes.length) {
    const notes = element("section", "report-notes");
    const texts = report.notes.map((text, at) => noteText(report.note_codes?.[at], text));
    notes.append(element("h4", "", t("report_notes")), listItems(texts, (note) => element("li", "", note)));
    parts.push(notes);
  }
  if (report.trainer_snippet && answer.saved.length) parts.push(snippetSection(report.trainer_snippet));
  output.replaceChildren(...parts);
  output.hidden = false;
  output.classList.toggle("is-error", reportCounts(answer).refused > 0);
  output.scrollIntoView({ block: "nearest" });
}

// -- the save under way ---------------------------------------------------------------------

function showProgress(job) {
  const box = $("save-progress");
  const line = progressLine(job);
  box.hidden = false;
  box.querySelector(".bar-done").style.width = `${line.percent}%`;
  box.querySelector(".save-progress-text").textContent = t(line.key, line.vars);
  box.dataset.phase = job.phase;
}

/** Ask how far the save got until it ends (the POST answers then). */
async function follow(job) {
  while (running === job) {
    const state = await fetchJSON(`/api/save-jobs/${encodeURIComponent(job)}`).catch(() => null);
    if (running !== job) return;
    if (state) showProgress(state);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function setBusy(busy) {
  $("save-preview").disabled = busy;
  $("save-submit").disabled = busy;
  $("save-cancel").disabled = !busy;
  if (!busy) $("save-progress").hidden = true;
}

async function save(dryRun) {
  if (running) return;
  running = "reserving";
  setBusy(true);
  try {
    // The server names the job first, so following it never asks about an id it has not heard of.
    const job = (await attempt(() => fetchJSON("/api/save-jobs", { method: "POST", body: {} })))?.job;
    if (!job) return undefined;
    running = job;
    follow(job);
    const answer = await attempt(() => postRule(job, dryRun));
    if (answer) {
      showReport(answer, dryRun);
      if (!dryRun) toast(t("wrote", { count: answer.saved.length }), answer.errors.length ? "error" : "ok");
    }
    return answer;
  } finally {
    running = null;
    setBusy(false);
  }
}

async function cancel() {
  if (!running || running === "reserving") return;
  $("save-cancel").disabled = true;
  await attempt(() => fetchJSON(`/api/save-jobs/${encodeURIComponent(running)}/cancel`, { method: "POST", body: {} }));
}

// -- templates and presets --------------------------------------------------------------------

function insertVariable(input, variable) {
  const at = input.selectionStart ?? input.value.length;
  input.value = input.value.slice(0, at) + variable + input.value.slice(input.selectionEnd ?? at);
  input.focus();
  input.setSelectionRange(at + variable.length, at + variable.length);
}

function variableButtons(box, input, variables) {
  box.replaceChildren(...variables.map((variable) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "small";
    button.textContent = variable;
    button.addEventListener("click", () => insertVariable(input, variable));
    return button;
  }));
}

/** Return a built-in preset's label in the page's language (the server's English one when there is none). */
function builtinLabel(preset) {
  const key = `preset_${preset.id}`;
  return t(key) === key ? preset.label : t(key);
}

/** The older console's presets: labelled in the page's language, applied into the form (output folder kept). */
async function loadBuiltins() {
  builtins = (await fetchJSON("/api/save-presets")).builtin;
  fillSelect($("save-builtin"), builtins.map((p) => [p.id, builtinLabel(p)]), "—");
}

function applyBuiltin() {
  const preset = builtins.find((p) => p.id === $("save-builtin").value);
  if (!preset) return;
  writeRule(preset.rule);
  toast(t("builtin_applied", { name: builtinLabel(preset) }));
}

/** Open the drawer for a whole run or for one result. */
export function openSave(what) {
  target = what;
  $("save-output").hidden = true;
  const single = Boolean(what.resultId);
  $("save-form").elements.only_selected.disabled = single;
  $("save-form").elements.first_only.disabled = single;
  $("save-drawer").hidden = false;
  markIgnored();
  if (what.runId) defaultFolder(what.runId);
  presets.load().catch((err) => toast(err.message, "error")); // an Import config may have brought new ones
}

/** Re-label what the drawer draws itself (the language changed). */
export function translateSavePanel() {
  if (builtins.length) fillSelect($("save-builtin"), builtins.map((p) => [p.id, builtinLabel(p)]), "—");
}

/** Wire the drawer; restore the last rule from the stored "save" settings; `tasks()` lists the page's tasks. */
export async function initSavePanel(savedRule, tasks) {
  tasksOnPage = tasks;
  const form = $("save-form");
  variableButtons($("template-vars"), form.elements.template, VARIABLES);
  variableButtons($("caption-vars"), form.elements.caption_template, CAPTION_VARIABLES);
  if (savedRule && Object.keys(savedRule).length) writeRule(savedRule);
  outputRoot = savedRule?.output_root || (savedRule?.output_dir ? parentOf(savedRule.output_dir) : "");
  form.elements.resave.checked = false;
  form.addEventListener("input", markIgnored);
  form.addEventListener("change", markIgnored);
  $("save-close").addEventListener("click", () => ($("save-drawer").hidden = true));
  $("save-preview").addEventListener("click", () => save(true));
  $("save-cancel").addEventListener("click", cancel);
  $("save-builtin-apply").addEventListener("click", applyBuiltin);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await save(false);
    outputRoot = parentOf(form.elements.output_dir.value) || outputRoot;
    fetchJSON("/api/settings", { method: "PUT", body: { save: { ...keptRule(), output_root: outputRoot } } }).catch(() => {});
  });
  presets = new PresetPicker("save", $("save-preset"), { read: keptRule, write: writeRule });
  presets.wire($("save-preset-apply"), $("save-preset-save"), $("save-preset-delete"));
  await Promise.all([presets.load(), loadBuiltins()]).catch((err) => toast(err.message, "error"));
}
