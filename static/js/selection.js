// Bulk selection on the grid: Select all / None / Invert / First of each on what the filters
// show, Shift-click ranges, Ctrl/Cmd-click toggles, their keyboard shortcuts, and the count.

import { fetchJSON, urls } from "./api.js";
import { t } from "./i18n.js";
import { $, attempt } from "./ui.js";

// Shortcut keys (without Ctrl/Alt) → action; Ctrl/Cmd+A is "all" too. The viewer uses none of them.
const KEYS = { a: "all", u: "none", v: "invert", f: "first" };

/**
 * Wire the selection bar, the grid's modifier clicks and the shortcuts. `page` gives the state:
 * runId(), filters(), view() (the ids the grid shows), task(id), tasks() and changed() (poll now).
 * Return { refresh } to redraw the count after the tasks changed.
 */
export function initSelection(page) {
  let anchor = null; // the card a Shift-click range starts from: the last one clicked

  async function bulk(action, taskIds) {
    const runId = page.runId();
    if (!runId) return;
    const f = page.filters();
    const body = { action, status: f.status, q: f.q };
    if (f.flag) body.flag = f.flag;
    // Filters only the page knows (selected, has results, not yet saved) travel as the ids shown.
    if (taskIds) body.tasks = taskIds;
    else if (f.selection || f.hasResults || f.unsaved) body.tasks = page.view();
    const answer = await attempt(() => fetchJSON(`${urls.run(runId)}/selection`, { method: "POST", body }));
    if (answer) showCount(answer.selected);
    page.changed();
  }

  function selectRange(taskId) {
    const view = page.view();
    const end = view.indexOf(taskId);
    const start = anchor && view.includes(anchor) ? view.indexOf(anchor) : end;
    return bulk("all", view.slice(Math.min(start, end), Math.max(start, end) + 1));
  }

  /** Ctrl/Cmd-click: a result toggles itself; elsewhere on the card, the card's results toggle together. */
  function toggle(target, taskId) {
    const resultId = target.closest("[data-result-id]")?.dataset.resultId;
    const task = page.task(taskId);
    if (!task) return;
    const result = resultId && task.results.find((r) => r.id === resultId);
    if (result) {
      return attempt(() => fetchJSON(urls.result(result.id), { method: "PATCH", body: { selected: !result.selected } }))
        .then(() => page.changed());
    }
    if (task.results.length) return bulk(task.results.every((r) => r.selected) ? "none" : "all", [taskId]);
  }

  function showCount(selected) {
    let total = 0;
    let count = 0;
    for (const task of page.tasks()) {
      for (const result of task.results) {
        total += 1;
        if (result.selected) count += 1;
      }
    }
    const box = $("selected-count");
    box.textContent = t("selected_count", { count: selected ?? count, total });
    box.dataset.count = String(selected ?? count);
  }

  for (const button of document.querySelectorAll("[data-select]")) {
    button.addEventListener("click", () => bulk(button.dataset.select));
  }
  const grid = $("grid");
  // Shift-click would also start a text selection across the cards.
  grid.addEventListener("mousedown", (event) => event.shiftKey && event.preventDefault());
  // Capture: a modifier click must not also open the viewer or flip the checkbox it landed on.
  grid.addEventListener("click", (event) => {
    const card = event.target.closest(".task-card");
    if (!card || event.target.closest("button")) return;
    const taskId = card.dataset.taskId;
    if (event.shiftKey || event.ctrlKey || event.metaKey) {
      event.preventDefault();
      event.stopPropagation();
      if (event.shiftKey) return void selectRange(taskId);
      toggle(event.target, taskId);
    }
    anchor = taskId;
  }, true);
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || !page.runId()) return;
    if (event.target.closest?.("input, textarea, select, [contenteditable]")) return;
    if (document.querySelector("dialog[open]")) return; // a key pressed in a dialog is the dialog's
    const key = event.key.toLowerCase();
    const command = event.ctrlKey || event.metaKey;
    const action = command ? (key === "a" ? "all" : null) : KEYS[key];
    if (!action) return;
    event.preventDefault();
    bulk(action);
  });
  return { refresh: () => showCount() };
}
