// A batch run's batches in the run bar: one chip per batch (its number, the provider's status and
// how many of its lines are answered), shown instead of the live rate.

import { when } from "./format.js";
import { said, t } from "./i18n.js";
import { $ } from "./ui.js";

// Chips shown before the older batches fold into one summary chip: a run of 50,000 images in
// batches of 1,000 would otherwise fill the run bar.
const CHIPS_SHOWN = 4;
// The provider's words (OpenAI's and Gemini's, lower-case) and the console's own "preparing".
const STATUSES = ["preparing", "validating", "pending", "in_progress", "running", "finalizing", "completed",
  "succeeded", "failed", "expired", "cancelling", "cancelled"];
const ENDED_BADLY = new Set(["failed", "expired", "cancelled"]);

/** Return a batch status in the page's language ("in_progress" → "in progress"); an unknown word as the provider said it. */
export function batchStatus(status) {
  const word = String(status || "").toLowerCase();
  return STATUSES.includes(word) ? t(`batch_status_${word}`) : word.replace(/_/g, " ");
}

/** Return a chip's text: "batch 1 · in progress · 340/1000", with the failed lines when there are some. */
export function batchChipText(batch, number) {
  const text = t("batch_chip", { number, status: batchStatus(batch.status), completed: batch.completed, total: batch.total });
  return batch.failed ? `${text} · ${t("batch_failed_lines", { count: batch.failed })}` : text;
}

/** Return a chip's tooltip: the provider's id, when it was sent and ended, and why it ended badly. */
export function batchChipTitle(batch) {
  const lines = [batch.provider_id ? `${batch.service} · ${batch.provider_id}` : batch.service, t("batch_sent", { time: when(batch.created_at) })];
  if (batch.finished_at) lines.push(t("batch_ended", { time: when(batch.finished_at) }));
  if (batch.error) lines.push(said(batch));
  return lines.filter(Boolean).join("\n");
}

/** Return the batches in the order they were made, each with its number in the run (the API lists the newest first). */
export function numbered(batches) {
  return [...batches].reverse().map((batch, index) => ({ batch, number: index + 1 }));
}

/** Return the chips to draw: the newest few, and one chip summing up the older ones (null when none are left out). */
export function chipsToShow(batches) {
  const all = numbered(batches);
  const shown = all.slice(-CHIPS_SHOWN);
  const older = all.slice(0, -CHIPS_SHOWN).map((item) => item.batch);
  if (!older.length) return { shown, older: null };
  const sum = (key) => older.reduce((total, batch) => total + (batch[key] || 0), 0);
  return { shown, older: { count: older.length, completed: sum("completed"), total: sum("total"), failed: sum("failed") } };
}

function chip(text, title, className) {
  const item = document.createElement("span");
  item.className = className;
  item.dataset.testid = "batch-chip";
  item.textContent = text;
  item.title = title;
  return item;
}

let shownBatches = null; // the last ones drawn, drawn again when the language changes

/** Show a batch run's batches in the run bar (null: a live run, the box hides); no argument: the last ones again. */
export function showBatches(batches = shownBatches) {
  shownBatches = batches;
  const box = $("run-batches");
  box.hidden = !batches;
  if (!batches) return box.replaceChildren();
  if (!batches.length) return box.replaceChildren(chip(t("batch_none"), "", "batch-chip"));
  const { shown, older } = chipsToShow(batches);
  const chips = shown.map(({ batch, number }) => {
    const item = chip(batchChipText(batch, number), batchChipTitle(batch), `batch-chip${batch.done ? " is-done" : ""}`);
    item.dataset.status = batch.status;
    item.dataset.batchId = batch.id;
    if (ENDED_BADLY.has(batch.status) || batch.error) item.classList.add("is-bad");
    return item;
  });
  if (older) chips.unshift(chip(t("batch_older", older), "", "batch-chip is-done"));
  box.replaceChildren(...chips);
}
