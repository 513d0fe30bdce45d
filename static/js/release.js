// "Run the rest" of a pilot run: the run bar's button (shown while the run has held tasks) and its
// dialog, where the prompt can be edited before the held tasks are queued.

import { fetchJSON, urls } from "./api.js";
import { t } from "./i18n.js";
import { readProfile } from "./profile.js";
import { $, attempt, toast } from "./ui.js";

let held = 0;
let shownPrompt = null; // the run's prompt as the dialog opened with it: unchanged, none is sent

/** Show the run bar's "Run the rest (N)" while the run has held tasks. */
export function showRelease(progress) {
  held = progress?.held || 0;
  const button = $("run-rest");
  button.hidden = !held;
  button.textContent = t("run_rest", { count: held });
}

/** Wire the button and its dialog; `runId()` names the open run, `released()` follows a release. */
export function initRelease(runId, released) {
  const dialog = $("release-dialog");
  const form = $("release-form");
  $("run-rest").addEventListener("click", () => openDialog(runId()));
  form.addEventListener("submit", async (event) => {
    if (event.submitter?.value !== "ok") return; // Cancel (or Escape) closes the dialog, nothing else
    event.preventDefault();
    const id = runId();
    const body = { api: readProfile() };
    const prompt = form.elements.prompt.value;
    if (shownPrompt !== null && prompt !== shownPrompt) body.prompt = prompt;
    const answer = await attempt(() => fetchJSON(urls.runAction(id, "release"), { method: "POST", body }));
    if (!answer) return; // the error is shown; the dialog stays open so the prompt can be fixed
    dialog.close();
    toast(t("queued_n", { count: answer.queued }));
    released();
  });
}

async function openDialog(id) {
  const run = await attempt(() => fetchJSON(urls.run(id)));
  if (!run) return;
  const form = $("release-form");
  // A table run has no prompt of its own: each row brings one, so there is nothing to edit.
  shownPrompt = run.mode === "table" ? null : run.prompt;
  form.elements.prompt.value = shownPrompt ?? "";
  $("release-prompt-label").hidden = shownPrompt === null;
  $("release-count").textContent = t("run_rest_count", { count: run.progress.held, tried: run.progress.total - run.progress.held });
  $("release-dialog").showModal();
  form.elements.prompt.focus();
}
