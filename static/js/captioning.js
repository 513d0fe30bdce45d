// Captioning a run's results with a vision model: the dialog that starts a job (API preset, model,
// instruction, scope), and the job's progress in the run bar (cancel, failures with their reasons),
// found again after a reload.

import { fetchJSON, query } from "./api.js";
import { said, t } from "./i18n.js";
import { readProfile } from "./profile.js";
import { spendText } from "./spend.js";
import { $, attempt, fillSelect, toast } from "./ui.js";

const POLL_MS = 700;
const DRAFT_KEY = "ibc.captioning"; // the dialog's last choices (preset, model, instruction), in this browser

let page = null; // { runId(), tasks(), changed() }
let presets = { instructions: [], long_side: 1024 };
let apiPresets = {}; // the stored API presets, by name (their models show as the model's placeholder)
let shown = null; // the snapshot of the job the run bar shows
let following = null; // the id of the job being polled

const jobUrl = (id, action = "") => `/api/caption-jobs/${encodeURIComponent(id)}${action ? `/${action}` : ""}`;

/** Wire the toolbar button, the dialog and the run bar's job row; `page` gives runId(), tasks() and changed(). */
export function initCaptioning(pageState) {
  page = pageState;
  const form = $("caption-form");
  $("captions-generate").addEventListener("click", openDialog);
  form.elements.instruction_preset.addEventListener("change", fillInstruction);
  form.elements.instruction.addEventListener("input", () => {
    const preset = presets.instructions.find((p) => p.instruction === form.elements.instruction.value);
    form.elements.instruction_preset.value = preset ? preset.id : "";
  });
  form.addEventListener("change", showScope);
  form.elements.api_preset.addEventListener("change", showModel);
  form.addEventListener("submit", (event) => {
    if (event.submitter?.value !== "ok") return; // Cancel (or Escape) closes the dialog, nothing else
    event.preventDefault();
    start();
  });
  $("caption-cancel").addEventListener("click", cancel);
  $("caption-job-close").addEventListener("click", () => {
    shown = null;
    $("caption-job").hidden = true;
  });
  fetchJSON("/api/caption-presets").then((answer) => (presets = answer)).catch(() => {});
}

/** Show the open run's running captioning job, if any (after a reload, or when switching runs). */
export async function findCaptionJob(runId) {
  if (shown && shown.run_id !== runId) {
    shown = null;
    $("caption-job").hidden = true;
  }
  if (!runId) return;
  const answer = await fetchJSON(`/api/caption-jobs${query({ run: runId })}`).catch(() => null);
  const running = answer?.jobs?.find((job) => !job.finished);
  if (running && page.runId() === runId) follow(running);
}

/** Redraw the job row in the page's language. */
export function translateCaptioning() {
  if (shown) showJob(shown);
}

async function openDialog() {
  if (!page.runId()) return;
  const form = $("caption-form");
  const draft = JSON.parse(localStorage.getItem(DRAFT_KEY) || "{}");
  const all = await attempt(() => fetchJSON("/api/presets"));
  apiPresets = all?.api || {};
  fillSelect(form.elements.api_preset, Object.keys(apiPresets).map((name) => [name, name]), t("captioning_current"));
  form.elements.api_preset.value = draft.api_preset in apiPresets ? draft.api_preset : "";
  form.elements.model.value = draft.model || "";
  showModel();
  if (draft.instruction) {
    form.elements.instruction.value = draft.instruction;
    form.elements.instruction.dispatchEvent(new Event("input"));
  } else {
    form.elements.instruction_preset.value = "sentence";
    fillInstruction();
  }
  $("caption-intro").textContent = t("captioning_intro", { side: presets.long_side || 1024 });
  showScope();
  $("caption-dialog").showModal();
}

/** Show the model the chosen API would use (the preset's, or the profile's on the page) as the field's placeholder. */
function showModel() {
  const form = $("caption-form");
  const preset = apiPresets[form.elements.api_preset.value];
  const model = preset ? preset.model : $("api-form").elements.model.value;
  form.elements.model.placeholder = model || t("captioning_model_hint");
}

function fillInstruction() {
  const form = $("caption-form");
  const preset = presets.instructions.find((p) => p.id === form.elements.instruction_preset.value);
  if (preset) form.elements.instruction.value = preset.instruction;
}

/** Say what the choices reach: results in scope, and those kept because they have a caption already. */
function showScope() {
  const form = $("caption-form");
  const results = [...page.tasks()].flatMap((task) => task.results);
  const scope = form.elements.only_selected.checked ? results.filter((r) => r.selected) : results;
  const captioned = scope.filter((r) => r.caption).length;
  const kept = form.elements.overwrite.checked ? 0 : captioned;
  const parts = [t("captioning_scope", { count: scope.length - kept })];
  if (kept) parts.push(t("captioning_kept", { count: kept }));
  $("caption-scope").textContent = parts.join(" · ");
}

function requestBody() {
  const form = $("caption-form");
  const preset = form.elements.api_preset.value;
  const model = form.elements.model.value.trim();
  // No preset: the profile as the page shows it (as runs take it), else the preset as stored.
  let api = preset ? null : readProfile();
  if (model) api = { ...(api || {}), model };
  return {
    api_preset: preset || null, api, instruction: form.elements.instruction.value,
    only_selected: form.elements.only_selected.checked, overwrite: form.elements.overwrite.checked,
    source: form.elements.source.value,
  };
}

async function start() {
  const form = $("caption-form");
  const body = requestBody();
  localStorage.setItem(DRAFT_KEY, JSON.stringify({
    api_preset: body.api_preset || "", model: form.elements.model.value.trim(), instruction: body.instruction }));
  try {
    const snapshot = await fetchJSON(`/api/runs/${encodeURIComponent(page.runId())}/captions/generate`, { method: "POST", body });
    $("caption-dialog").close();
    toast(t("captioning_started", { count: snapshot.total }));
    follow(snapshot);
  } catch (err) {
    toast(err.message, "error", err.route); // the dialog stays open so the choice can be fixed
    if (err.status === 409) findCaptionJob(page.runId());
  }
}

/** Show a job and ask how it goes until it ends; captions reach the cards through the page's polls. */
async function follow(snapshot) {
  const id = snapshot.job;
  const fresh = following !== id;
  following = id;
  showJob(snapshot);
  if (!fresh) return;
  let captioned = snapshot.captioned;
  let last = snapshot;
  while (following === id && !last.finished) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    const next = await fetchJSON(jobUrl(id)).catch((err) => (err.status === 404 ? { ...last, finished: true, gone: true } : null));
    if (following !== id || !next) continue;
    last = next;
    if (shown?.job === id) showJob(next);
    if (next.captioned !== captioned) page.changed();
    captioned = next.captioned;
  }
  if (following !== id) return;
  following = null;
  page.changed();
  if (!last.gone && page.runId() === last.run_id) toast(jobLine(last), last.failed ? "error" : "ok");
}

async function cancel() {
  if (!shown || shown.finished) return;
  $("caption-cancel").disabled = true;
  const answer = await attempt(() => fetchJSON(jobUrl(shown.job, "cancel"), { method: "POST", body: {} }));
  if (answer && shown?.job === answer.job) showJob(answer);
}

/** Return the job's one-line state: "12 / 40 captioned · 1 failed", led by how it ended. */
function jobLine(job) {
  const parts = [t("caption_progress", { captioned: job.captioned, total: job.total })];
  if (job.failed) parts.push(t("caption_failed_n", { count: job.failed }));
  if (job.skipped) parts.push(t("caption_skipped_n", { count: job.skipped }));
  if (job.finished && job.reason) parts.push(said(job, "reason")); // why it stopped early (a quota, every key parked)
  const line = parts.join(" · ");
  if (!job.finished) return line;
  return t(job.cancelled ? "caption_job_cancelled" : "caption_job_done", { line });
}

function showJob(job) {
  shown = job;
  const row = $("caption-job");
  row.hidden = false;
  row.dataset.finished = String(Boolean(job.finished));
  const total = job.total || 1;
  row.querySelector(".bar-done").style.width = `${(100 * job.captioned) / total}%`;
  row.querySelector(".bar-failed").style.width = `${(100 * job.failed) / total}%`;
  const progress = $("caption-progress");
  progress.textContent = jobLine(job);
  progress.title = [job.model, job.api_host].filter(Boolean).join(" · ");
  $("caption-spend").textContent = spendText(job.spend); // the job's calls, counted in the run's spend too
  $("caption-cancel").hidden = Boolean(job.finished);
  $("caption-cancel").disabled = Boolean(job.cancelled);
  $("caption-job-close").hidden = !job.finished;
  showFailures(job.failures || [], job.failed);
}

function showFailures(failures, count) {
  const box = $("caption-failures");
  box.hidden = !failures.length;
  if (!failures.length) return;
  box.querySelector("summary").textContent = t("caption_failures", { count });
  const signature = failures.map((f) => `${f.result_id}:${said(f)}`).join("\n");
  const list = box.querySelector("ul");
  if (list.dataset.signature === signature) return;
  list.dataset.signature = signature;
  list.replaceChildren(...failures.map((failure) => { // the server lists the first few; `count` says how many
    const item = document.createElement("li");
    item.setAttribute("data-testid", "caption-failure");
    const name = document.createElement("b");
    name.textContent = failure.source_name || failure.result_id;
    item.append(name, ` ${said(failure)}`);
    return item;
  }));
}
