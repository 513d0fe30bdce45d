// The save drawer: a save rule (presets, output folder, layout, template, captions), a dry-run
// preview of the files to be written, save selected or all, and the validation report.

import { fetchJSON, urls } from "./api.js";
import { t } from "./i18n.js";
import { PresetPicker } from "./presets.js";
import { $, attempt, toast } from "./ui.js";

const VARIABLES = ["{stem}", "{n}", "{index:04d}", "{run}", "{task}", "{result}", "{sha8}", "{date}"];
const FLAGS = ["only_selected", "sequential"];
let presets = null;
let target = null; // {runId} or {resultId}

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

function showReport(answer, dryRun) {
  const output = $("save-output");
  output.hidden = false;
  const lines = [];
  const files = answer.saved.flatMap((item) => item.paths || []);
  lines.push(dryRun ? t("will_write", { count: files.length }) : t("wrote", { count: answer.saved.length }));
  lines.push(...files.slice(0, 200).map((path) => `· ${path}`));
  if (files.length > 200) lines.push(`… +${files.length - 200}`);
  for (const item of answer.skipped) lines.push(`– ${item.result_id || item.task_id || ""} ${item.reason}`);
  if (answer.errors.length) lines.push(t("errors_n", { count: answer.errors.length }));
  for (const item of answer.errors) lines.push(`× ${item.result_id || ""} ${item.error}`);
  if (answer.report) lines.push("", `${t("report")}: ${JSON.stringify(answer.report, null, 1)}`);
  output.textContent = lines.join("\n");
  output.classList.toggle("is-error", answer.errors.length > 0);
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

/** Wire the drawer; restore the last rule from the stored "save" settings. */
export async function initSavePanel(savedRule) {
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
