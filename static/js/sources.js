// Prompt sources in the run form: the mode switch (edit a folder / generate / table),
// the variables editor with its live task count, the table check with its row errors, reference
// folders and the sidecar summary. Pure helpers first, then the DOM.

import { said, t } from "./i18n.js";
import { $, showText } from "./ui.js";

const PLACEHOLDER = /\{([\p{L}\p{N}_]+)\}/gu; // the server's \w: {动物} is a name too
const SHOWN = 12; // names listed before "… and N more"

// -- pure helpers ------------------------------------------------------------------------------

/** Return the non-blank lines of a textarea, trimmed (paths, one per line). */
export function lines(text) {
  return String(text || "").split(/\r?\n/).map((line) => line.trim()).filter(Boolean);
}

/** Return the values typed in a variable's box: separated by commas (, or ，) or line breaks. */
export function values(text) {
  return String(text || "").split(/[,，\n]/).map((value) => value.trim()).filter(Boolean);
}

/** Return the {names} a prompt uses, in order of first use. */
export function placeholders(prompt) {
  return [...new Set([...String(prompt || "").matchAll(PLACEHOLDER)].map((match) => match[1]))];
}

/** Return how many tasks variables ({name: [values]}) and a count make (every combination, count each). */
export function taskCount(variables, count) {
  return Object.values(variables).reduce((total, list) => total * list.length, 1) * count;
}

/** Return "a, b, c" or "a, b, … +12" for a list of names. */
export function shortList(names, shown = SHOWN) {
  return names.length <= shown ? names.join(", ") : `${names.slice(0, shown).join(", ")}, … +${names.length - shown}`;
}

/** Return the basename of a path (either slash). */
export function baseName(path) {
  return String(path || "").split(/[\\/]/).pop();
}

/** Return how a run is named in the history and the run bar: its prompt, or its table file. */
export function runTitle(run) {
  if (!run) return "";
  if (run.mode === "table") return t("table_run", { name: baseName(run.input_path) });
  return run.prompt;
}

/** Return the lines that describe a refusal's bad rows or files (`rows` / `files` of a 400), in the page's language. */
export function problemLines(data) {
  if (!data) return [];
  const rows = (data.rows || []).map((row) => t("row_error", { row: row.row, error: said(row) }));
  const files = (data.files || []).map((file) => `× ${file.name}: ${said(file)}`);
  return [...rows, ...files];
}

// -- the form ------------------------------------------------------------------------------------

/** Return the current mode of the run form. */
export function currentMode() {
  return $("run-form").querySelector("input[name=mode]:checked")?.value || "edit";
}

/** Show the parts of the form the mode uses. */
export function showMode(mode) {
  for (const el of $("run-form").querySelectorAll("[data-modes]")) {
    el.hidden = !el.dataset.modes.split(" ").includes(mode);
  }
  $("run-form").dataset.mode = mode;
  if (mode === "generate") updateTaskCount();
}

/** Read the variables editor: {name: [values]} (rows without a name are left out). */
export function readVariables() {
  const variables = {};
  for (const row of $("variables").querySelectorAll(".var-row")) {
    const name = row.querySelector(".var-name").value.trim();
    if (name) variables[name] = values(row.querySelector(".var-values").value);
  }
  return variables;
}

function addVariable(name = "", text = "") {
  const row = document.createElement("div");
  row.className = "row var-row";
  row.setAttribute("data-testid", "variable-row");
  const nameInput = document.createElement("input");
  nameInput.className = "var-name";
  nameInput.value = name;
  nameInput.placeholder = t("var_name");
  nameInput.setAttribute("aria-label", t("var_name"));
  const valuesInput = document.createElement("input");
  valuesInput.className = "var-values grow";
  valuesInput.value = text;
  valuesInput.placeholder = t("var_values");
  valuesInput.setAttribute("aria-label", t("var_values"));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "icon danger";
  remove.textContent = "✕";
  remove.title = t("delete");
  remove.addEventListener("click", () => {
    row.remove();
    updateTaskCount();
  });
  row.append(nameInput, valuesInput, remove);
  $("variables").append(row);
  return row;
}

/** Add a row for each {name} of the prompt that has none yet (never removes one). */
function followPrompt() {
  const known = new Set([...$("variables").querySelectorAll(".var-name")].map((input) => input.value.trim()));
  for (const name of placeholders($("run-form").elements.prompt.value)) {
    if (!known.has(name)) addVariable(name);
  }
}

/** Show how many tasks the variables and count make, and what is still missing. */
export function updateTaskCount() {
  const form = $("run-form");
  const variables = readVariables();
  const count = Math.max(1, Math.min(100, Number(form.elements.count.value) || 1));
  const total = taskCount(variables, count);
  const factors = [...Object.values(variables).map((list) => list.length), count].join(" × ");
  const missing = placeholders(form.elements.prompt.value).filter((name) => !(variables[name] || []).length);
  const box = $("task-count");
  showText(box, () => [t("task_count", { count: total, factors }),
    ...(missing.length ? [t("var_missing", { names: missing.map((n) => `{${n}}`).join(" ") })] : [])].join("\n"));
  box.classList.toggle("is-error", missing.length > 0);
  box.dataset.count = String(total);
}

/** Show a table check: its task count and ignored columns, or every bad row. */
export function showTable(answer, problem) {
  const box = $("table-output");
  box.hidden = false;
  box.classList.toggle("is-error", Boolean(problem));
  if (problem) {
    const rows = (problem.data && problem.data.rows) || [];
    // With rows, a short head line: the server's message repeats them all on one line.
    const head = () => (rows.length ? t("table_bad", { count: rows.length }) : (problem.data && said(problem.data)) || problem.message);
    showText(box, () => [head(), ...problemLines(problem.data)].join("\n"));
    return;
  }
  showText(box, () => {
    const lines = [t("table_ok", { count: answer.task_count, rows: answer.rows })];
    if (answer.ignored_columns.length) lines.push(t("table_ignored", { names: answer.ignored_columns.join(", ") }));
    lines.push(...answer.sample.slice(0, 6).map((task) => `· ${task.name}: ${task.prompt}`));
    return lines.join("\n");
  });
}

/** Return the scan preview lines about sidecars and references. */
export function sidecarLines(answer) {
  const lines = [];
  const sidecars = answer.sidecars;
  if (sidecars && (sidecars.used || sidecars.count)) { // no word about captions to someone not using them
    lines.push(t("sidecars_found", { count: sidecars.count, total: answer.count }));
    if (sidecars.missing_count) {
      lines.push(t(sidecars.required ? "sidecars_missing_required" : "sidecars_missing",
        { count: sidecars.missing_count, names: shortList(sidecars.missing.map((m) => m.name)) }));
    }
  }
  const refs = answer.references;
  if (refs) {
    lines.push(t("refs_matched", { count: refs.matched, total: answer.count, folders: refs.folders }));
    lines.push(...refs.missing.slice(0, 5).map((m) => `× ${m.name}: ${said(m)}`));
  }
  return lines;
}

/** Return the body fields the mode sends with POST /api/runs (and the scan preview). */
export function sourceFields(mode) {
  const form = $("run-form").elements;
  const fields = { mode };
  if (mode !== "table") fields.prompt = form.prompt.value;
  if (mode === "edit") {
    Object.assign(fields, { input_path: form.input_path.value.trim(), recursive: form.recursive.checked,
                            sidecar: form.sidecar.value });
  }
  if (mode === "edit" || mode === "table") fields.reference_dirs = lines(form.reference_dirs.value);
  if (mode === "generate") {
    Object.assign(fields, { variables: readVariables(), count: Number(form.count.value) || 1,
                            reference_paths: lines(form.reference_paths.value) });
  }
  if (mode === "table") fields.table_path = form.table_path.value.trim();
  return fields;
}

/** Wire the mode switch and the variables editor. */
export function initSources() {
  const form = $("run-form");
  for (const radio of form.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", () => showMode(currentMode()));
  }
  $("var-add").addEventListener("click", () => {
    addVariable().querySelector(".var-name").focus();
    updateTaskCount();
  });
  $("variables").addEventListener("input", updateTaskCount);
  form.elements.count.addEventListener("input", updateTaskCount);
  form.elements.prompt.addEventListener("input", () => {
    if (currentMode() !== "generate") return;
    followPrompt();
    updateTaskCount();
  });
  showMode(currentMode());
}
