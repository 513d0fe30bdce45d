// The run panel (path, scan preview, prompt and saved prompts, start) and the run history.

import { fetchJSON } from "./api.js";
import { when } from "./format.js";
import { t } from "./i18n.js";
import { readProfile } from "./profile.js";
import { $, attempt, confirmed, fillSelect, toast } from "./ui.js";

const SNIPPETS_KEY = "ibc.snippets";

function snippets() {
  try {
    return JSON.parse(localStorage.getItem(SNIPPETS_KEY)) || {};
  } catch {
    return {};
  }
}

function showSnippets() {
  fillSelect($("snippets"), Object.keys(snippets()).map((name) => [name, name]), t("snippets"));
  $("snippets").options[0].dataset.i18n = "snippets"; // so a language switch renames it
}

function saveSnippet() {
  const text = $("run-form").elements.prompt.value.trim();
  if (!text) return;
  const name = window.prompt(t("snippet_name"), text.slice(0, 40));
  if (!name) return;
  localStorage.setItem(SNIPPETS_KEY, JSON.stringify({ ...snippets(), [name]: text }));
  showSnippets();
  $("snippets").value = name;
  toast(t("saved"));
}

function deleteSnippet() {
  const name = $("snippets").value;
  if (!name || !confirmed("confirm_delete_preset", { name })) return;
  const all = snippets();
  delete all[name];
  localStorage.setItem(SNIPPETS_KEY, JSON.stringify(all));
  showSnippets();
}

function useSnippet() {
  const text = snippets()[$("snippets").value];
  if (text) $("run-form").elements.prompt.value = text;
}

async function scanPreview() {
  const form = $("run-form");
  const output = $("scan-output");
  const answer = await attempt(() => fetchJSON("/api/scan", {
    method: "POST", body: { input_path: form.elements.input_path.value.trim(), recursive: form.elements.recursive.checked },
  }));
  output.hidden = !answer;
  if (!answer) return;
  const lines = [t("count_found", { count: answer.count }), ...answer.sample.slice(0, 8).map((name) => `· ${name}`)];
  if (answer.skipped_count) {
    lines.push(t("skipped", { count: answer.skipped_count }));
    lines.push(...answer.skipped.slice(0, 5).map((s) => `× ${s.name}: ${s.reason}`));
  }
  output.textContent = lines.join("\n");
}

/** Wire the run panel; `onStarted(runId)` is called after a run is created. */
export function initRunPanel(onStarted) {
  const form = $("run-form");
  showSnippets();
  $("snippets").addEventListener("change", useSnippet);
  $("snippet-save").addEventListener("click", saveSnippet);
  $("snippet-delete").addEventListener("click", deleteSnippet);
  $("scan").addEventListener("click", scanPreview);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("[type=submit]");
    button.disabled = true;
    const answer = await attempt(() => fetchJSON("/api/runs", {
      method: "POST",
      body: { input_path: form.elements.input_path.value.trim(), recursive: form.elements.recursive.checked,
              prompt: form.elements.prompt.value, api: readProfile() },
    }), (run) => t("started", { count: run.task_count }));
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
    title.textContent = run.prompt.length > 60 ? run.prompt.slice(0, 60) + "…" : run.prompt;
    title.title = run.prompt;
    title.addEventListener("click", () => onSelect(run.id));
    const meta = document.createElement("div");
    meta.className = "muted small";
    const p = run.progress;
    meta.textContent = `${when(run.created_at)} · ${p.done}/${p.total} ${t("done")}${p.failed ? ` · ${p.failed} ${t("failed")}` : ""}`;
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

