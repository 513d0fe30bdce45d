// Comparisons: the same sample of the folder through 2 to 4 variants (a prompt, maybe another model),
// shown side by side; "Use this one" lets that variant's run go on to the rest of the folder.

import { fetchJSON, urls } from "./api.js";
import { t, translate } from "./i18n.js";
import { readProfile } from "./profile.js";
import { rule } from "./rules.js";
import { spendText, spendTitle } from "./spend.js";
import { $, attempt, toast } from "./ui.js";

const POLL_MS = 1000;
const LAST_KEY = "ibc.comparison";
const RESULTS_SHOWN = 4;

let shown = null; // the comparison as the server answered last
let pollTimer = null;

/** Wire the Compare button, its dialog and the comparison view; `onChosen(runId)` opens the chosen run. */
export function initCompare(onChosen) {
  const dialog = $("compare-dialog");
  const form = $("compare-form");
  $("compare-open").addEventListener("click", openDialog);
  $("compare-add").addEventListener("click", () => addVariant("", ""));
  $("compare-last").addEventListener("click", () => {
    dialog.close();
    openComparison(localStorage.getItem(LAST_KEY));
  });
  form.addEventListener("submit", async (event) => {
    if (event.submitter?.value !== "ok") return; // Cancel (or Escape) closes the dialog, nothing else
    event.preventDefault();
    const answer = await attempt(() => fetchJSON("/api/comparisons", { method: "POST", body: comparisonBody() }));
    if (!answer) return; // the error names the field; the dialog stays open to fix it
    dialog.close();
    toast(t("compare_started", { count: answer.runs.length }));
    localStorage.setItem(LAST_KEY, answer.comparison_id);
    openComparison(answer.comparison_id);
  });
  $("comparison-close").addEventListener("click", () => $("comparison-view").close());
  $("comparison-view").addEventListener("close", () => clearTimeout(pollTimer));
  $("comparison").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-choose]");
    if (!button) return;
    button.disabled = true;
    const name = button.dataset.choose;
    const answer = await attempt(() => fetchJSON(`/api/comparisons/${encodeURIComponent(shown.id)}/choose`,
                                                 { method: "POST", body: { variant: name } }));
    if (!answer) return load(shown.id);
    toast(t("compare_chosen", { name, count: answer.queued }));
    $("comparison-view").close();
    onChosen(answer.run_id);
  });
  // The language switch redraws after the page has switched (its own click handler may run later).
  $("lang-switch").addEventListener("click", () => setTimeout(() => shown && draw(shown), 0));
}

function openDialog() {
  const form = $("run-form").elements;
  const box = $("compare-variants");
  if (!box.children.length) {
    addVariant("A", form.prompt.value);
    addVariant("B", "");
  }
  const pilot = Number(form.pilot.value);
  const sample = $("compare-form").elements.sample;
  if (!sample.value) sample.value = pilot > 0 ? pilot : 3;
  const model = readProfile().model || "";
  for (const input of box.querySelectorAll("input.v-model")) input.placeholder = model;
  $("compare-folder").textContent = form.input_path.value.trim() || t("compare_no_folder");
  $("compare-last").hidden = !localStorage.getItem(LAST_KEY);
  $("compare-dialog").showModal();
}

function addVariant(name, prompt) {
  const box = $("compare-variants");
  if (box.children.length >= rule("compare.variants_max")) return;
  const row = document.createElement("fieldset");
  row.className = "compare-variant";
  row.dataset.testid = "compare-variant";
  row.innerHTML = `<div class="row"><label class="grow"><span data-i18n="compare_name">Name</span>
      <input class="v-name" data-testid="variant-name"></label>
    <label class="grow"><span data-i18n="compare_model">Model (empty: the profile's)</span>
      <input class="v-model" spellcheck="false" data-testid="variant-model"></label>
    <button type="button" class="icon danger v-remove" data-i18n-title="delete">✕</button></div>
    <label><span data-i18n="prompt">Prompt</span>
      <textarea class="v-prompt" rows="2" data-testid="variant-prompt"></textarea></label>`;
  row.querySelector(".v-name").maxLength = rule("compare.name_max_chars");
  row.querySelector(".v-name").value = name || String.fromCharCode(65 + box.children.length);
  row.querySelector(".v-prompt").value = prompt;
  row.querySelector(".v-model").placeholder = readProfile().model || "";
  row.querySelector(".v-remove").addEventListener("click", () => {
    row.remove();
    updateVariantButtons();
  });
  translate(row);
  box.append(row);
  updateVariantButtons();
}

function updateVariantButtons() {
  const rows = $("compare-variants").children;
  $("compare-add").disabled = rows.length >= rule("compare.variants_max");
  for (const row of rows) row.querySelector(".v-remove").hidden = rows.length <= rule("compare.variants_min");
}

/** The dialog as a POST /api/comparisons body; values go as typed, for the server to judge. */
function comparisonBody() {
  const form = $("run-form").elements;
  const profile = readProfile();
  const variants = [...$("compare-variants").children].map((row) => {
    const model = row.querySelector(".v-model").value.trim();
    return { name: row.querySelector(".v-name").value, prompt: row.querySelector(".v-prompt").value,
             api: model ? { ...profile, model } : profile };
  });
  const raw = $("compare-form").elements.sample.value.trim();
  return { input_path: form.input_path.value.trim(), recursive: form.recursive.checked,
           sample: raw === "" ? null : Number(raw), variants };
}

/** Open the comparison view on a comparison, and follow it while its variants run. */
export async function openComparison(id) {
  if (!id) return;
  shown = null;
  $("comparison").replaceChildren();
  $("comparison-view").showModal();
  await load(id);
}

async function load(id) {
  clearTimeout(pollTimer);
  let answer;
  try {
    answer = await fetchJSON(`/api/comparisons/${encodeURIComponent(id)}`);
  } catch (err) {
    if (err.status === 404) localStorage.removeItem(LAST_KEY);
    toast(err.message, "error", err.route);
    $("comparison-view").close();
    return;
  }
  if (!$("comparison-view").open) return;
  shown = answer;
  draw(answer);
  const busy = answer.variants.some((v) => v.running || (v.progress && v.progress.pending));
  if (busy) pollTimer = setTimeout(() => load(id), POLL_MS);
}

function draw(comparison) {
  $("comparison-title").textContent = t("compare_title", { count: comparison.sample, folder: comparison.input_path });
  const table = document.createElement("table");
  table.className = "comparison-table";
  const head = table.createTHead().insertRow();
  const corner = document.createElement("th");
  corner.textContent = t("compare_source");
  head.append(corner, ...comparison.variants.map((variant) => header(variant, comparison.chosen)));
  const body = table.createTBody();
  for (const row of comparison.rows) {
    const line = body.insertRow();
    line.dataset.source = row.source_name;
    const source = line.insertCell();
    source.className = "comparison-source";
    source.append(picture(urls.source(row.source_task), row.source_name));
    const caption = document.createElement("div");
    caption.className = "muted small";
    caption.textContent = row.source_name;
    source.append(caption);
    for (const variant of comparison.variants) line.append(cell(variant, row));
  }
  if (!comparison.rows.length) {
    const empty = body.insertRow().insertCell();
    empty.colSpan = comparison.variants.length + 1;
    empty.className = "muted";
    empty.textContent = t("compare_empty");
  }
  $("comparison").replaceChildren(table);
}

function header(variant, chosen) {
  const th = document.createElement("th");
  th.dataset.variant = variant.name;
  const name = document.createElement("strong");
  name.textContent = variant.name;
  const prompt = document.createElement("div");
  prompt.className = "comparison-prompt small";
  prompt.textContent = variant.prompt;
  prompt.title = variant.prompt;
  const meta = document.createElement("div");
  meta.className = "muted small";
  meta.dataset.testid = "variant-spend";
  const parts = [variant.model];
  if (variant.gone) parts.push(t("compare_gone"));
  else {
    parts.push(spendText(variant.spend) || t("compare_no_calls"));
    meta.title = spendTitle(variant.spend);
  }
  meta.textContent = parts.filter(Boolean).join(" · ");
  const action = document.createElement("button");
  action.type = "button";
  action.className = "primary small";
  action.dataset.choose = variant.name;
  action.dataset.testid = "use-variant";
  action.textContent = chosen === variant.name ? t("compare_is_chosen") : t("compare_use");
  action.disabled = Boolean(chosen) || variant.gone;
  if (chosen && chosen !== variant.name) action.hidden = true;
  th.append(name, prompt, meta, action);
  return th;
}

function cell(variant, row) {
  const td = document.createElement("td");
  td.dataset.variant = variant.name;
  const ids = row.results[variant.name] || [];
  if (ids.length) {
    const shownIds = ids.slice(0, RESULTS_SHOWN);
    td.append(...shownIds.map((id) => picture(urls.image(id, true), variant.name, urls.image(id, false))));
    if (ids.length > shownIds.length) {
      const more = document.createElement("span");
      more.className = "muted small";
      more.textContent = `+${ids.length - shownIds.length}`; // the rest are in the variant's run
      td.append(more);
    }
    return td;
  }
  const status = variant.gone ? "gone" : row.status[variant.name];
  td.className = `comparison-empty status-${status || "none"}`;
  const words = { failed: t("failed"), gone: t("compare_gone"), done: t("compare_no_image") };
  td.textContent = words[status] || t("compare_waiting");
  return td;
}

function picture(src, alt, link = src) {
  const anchor = document.createElement("a");
  anchor.href = link;
  anchor.target = "_blank";
  anchor.rel = "noopener";
  const img = document.createElement("img");
  img.src = src;
  img.alt = alt;
  img.loading = "lazy";
  anchor.append(img);
  return anchor;
}
