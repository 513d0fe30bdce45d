// Captions in review: the viewer's caption editor (with the text the model sent, to use as the
// caption), each card's caption line, and the run's find and replace dialog.

import { fetchJSON, urls } from "./api.js";
import { t } from "./i18n.js";
import { kib, rule } from "./rules.js";
import { $, attempt, toast } from "./ui.js";

const PREVIEW_DELAY_MS = 250;
const SAVED_SHOWN_MS = 2500;

/** Return a caption's first line, for a card ("" when the result has no caption of its own). */
export function firstLine(caption) {
  if (!caption) return "";
  const line = caption.split(/\r\n|\r|\n/).find((part) => part.trim()) || "";
  return line.trim();
}

/** The viewer's caption box: shows the shown result's own caption, saves it on blur or Ctrl+Enter. */
export class CaptionEditor {
  /** `saved(result)` is told after a caption was stored, so the page can poll at once. */
  constructor(root, saved) {
    this.box = root.querySelector("#caption-editor");
    this.state = root.querySelector("#caption-state");
    this.answerBox = root.querySelector("#answer-box");
    this.answer = root.querySelector("#answer-text");
    this.saved = saved;
    this.result = null; // the result shown
    this.shownFor = null; // the id of the result whose caption the box holds
    this.stored = ""; // that result's caption as the server has it ("" for none)
    this.sending = null; // "id\0text" of the save in flight: blur right after Ctrl+Enter sends nothing more
    this.stateTimer = null;
    this.box.addEventListener("blur", () => this.save());
    this.box.addEventListener("keydown", (event) => this.onKey(event));
    this.box.addEventListener("input", () => this.showState(this.dirty() ? "unsaved" : ""));
    this.answer.addEventListener("click", () => this.answer.classList.toggle("is-open"));
    this.answer.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      this.answer.classList.toggle("is-open");
    });
    root.querySelector("#use-answer-text").addEventListener("click", () => this.useAnswer());
  }

  /** Show `result` (or none): its caption, unless the box holds unsaved typing for it. */
  show(result) {
    this.result = result || null;
    const id = result ? result.id : null;
    const stored = result?.caption ?? "";
    if (id !== this.shownFor) {
      this.shownFor = id;
      this.stored = stored;
      this.box.value = stored;
      this.showState("");
    } else if (stored !== this.stored && !this.dirty()) { // changed elsewhere (another tab, find and replace)
      this.stored = stored;
      this.box.value = stored; // nothing typed here: a stale box would put the old caption back on blur
    }
    this.box.disabled = !result;
    const text = result?.answer_text || "";
    this.answerBox.hidden = !text;
    if (this.answer.textContent !== text) {
      this.answer.textContent = text;
      this.answer.classList.remove("is-open");
    }
  }

  /** Put the cursor at the end of the caption (Tab in the viewer). */
  focus() {
    if (this.box.disabled) return false;
    this.box.focus();
    this.box.setSelectionRange(this.box.value.length, this.box.value.length);
    return true;
  }

  dirty() {
    return this.shownFor !== null && this.box.value !== this.stored;
  }

  // Typing stays in the box: the review shortcuts ignore it; Esc leaves it (saving), Ctrl+Enter saves.
  onKey(event) {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      this.box.blur();
    } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      this.save();
    }
  }

  useAnswer() {
    if (!this.result?.answer_text) return;
    this.box.value = this.result.answer_text;
    this.save();
  }

  /** Store the box's text as the shown result's caption (empty: back to the save rule's caption). */
  async save() {
    const id = this.shownFor;
    const text = this.box.value;
    const key = `${id}\0${text}`;
    if (!id || text === this.stored || this.sending === key) return;
    const result = this.result;
    this.sending = key;
    this.showState("saving");
    try {
      const answer = await fetchJSON(urls.result(id), { method: "PATCH", body: { caption: text } });
      const caption = answer?.caption ?? null;
      if (result && result.id === id) result.caption = caption; // the poll brings it too; show it now
      if (this.shownFor === id) {
        this.stored = caption ?? "";
        if (this.box.value === text) this.box.value = this.stored; // the server trims
        this.showState("saved");
      }
      this.saved(result);
    } catch (err) {
      if (this.shownFor === id) this.showState("error", err.message);
      toast(t("caption_not_saved", { error: err.message }), "error", err.route);
    } finally {
      if (this.sending === key) this.sending = null;
    }
  }

  showState(kind, error = "") {
    clearTimeout(this.stateTimer);
    this.state.dataset.state = kind;
    this.state.textContent = kind ? t(`caption_${kind}`, { error }) : "";
    this.state.title = error;
    if (kind === "saved") this.stateTimer = setTimeout(() => this.showState(""), SAVED_SHOWN_MS);
  }
}

/** Fill a card's caption lines: one per result with a caption of its own, its first line (the whole as the tooltip). */
export function fillCardCaptions(box, task) {
  const captioned = task.results.map((result, number) => ({ result, number })).filter(({ result }) => result.caption);
  const signature = captioned.map(({ result }) => `${result.id}:${result.caption}`).join("\0");
  if (box.dataset.signature === signature) return;
  box.dataset.signature = signature;
  const numbered = task.results.length > 1;
  box.replaceChildren(...captioned.map(({ result, number }) => {
    const line = document.createElement("div");
    line.className = "card-caption";
    line.setAttribute("data-testid", "card-caption");
    line.dataset.resultId = result.id;
    line.dataset.action = "edit-caption";
    line.dataset.number = String(number);
    line.textContent = `${numbered ? `${number + 1}. ` : ""}${firstLine(result.caption)}`;
    line.title = result.caption;
    return line;
  }));
  box.hidden = !captioned.length;
}

// -- find and replace -------------------------------------------------------------------------

/** Wire the run's find and replace dialog; `runId()` names the open run, `changed()` polls at once. */
export function initReplace(runId, changed) {
  const dialog = $("replace-dialog");
  const form = $("replace-form");
  let timer = null;
  let asked = 0; // the newest preview asked for: older answers are dropped
  let valid = false;

  const body = (preview) => ({
    find: form.elements.find.value, replace: form.elements.replace.value, regex: form.elements.regex.checked,
    ignore_case: form.elements.ignore_case.checked, only_selected: form.elements.only_selected.checked, preview,
  });

  async function preview() {
    clearTimeout(timer);
    const number = ++asked;
    if (!form.elements.find.value) {
      valid = false;
      showPreview(null, t("replace_type_find"));
      return;
    }
    try {
      const answer = await fetchJSON(urls.runAction(runId(), "captions/replace"), { method: "POST", body: body(true) });
      if (number !== asked) return;
      valid = true;
      showPreview(answer);
    } catch (err) {
      if (number !== asked) return;
      valid = false;
      showPreview(null, err.message, true);
    }
  }

  function showPreview(answer, message = "", failed = false) {
    const box = $("replace-preview");
    box.classList.toggle("is-error", failed);
    $("replace-apply").disabled = !valid || !answer?.changed;
    if (!answer) return void box.replaceChildren(element("p", "replace-counts", message));
    box.replaceChildren(...previewParts(answer));
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(preview, PREVIEW_DELAY_MS);
  }

  async function apply() {
    const answer = await attempt(() => fetchJSON(urls.runAction(runId(), "captions/replace"), { method: "POST", body: body(false) }));
    if (!answer) return;
    dialog.close();
    toast(t("replace_done", { count: answer.changed }));
    changed();
  }

  $("captions-replace").addEventListener("click", () => {
    if (!runId()) return;
    dialog.showModal();
    form.elements.find.focus();
    form.elements.find.select();
    preview();
  });
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  form.addEventListener("keydown", (event) => { // Enter looks again at once; only Replace writes
    if (event.key !== "Enter" || event.target.tagName !== "INPUT") return;
    event.preventDefault();
    if (event.ctrlKey || event.metaKey) return void (valid && apply());
    preview();
  });
  form.addEventListener("submit", (event) => {
    if (event.submitter?.value !== "ok") return; // Cancel (or Escape) closes the dialog, nothing else
    event.preventDefault();
    apply();
  });
}

/** Return the preview's counts and its first changes, each caption before and after. */
function previewParts(answer) {
  const counts = [t("replace_will_change", { count: answer.changed })];
  if (answer.too_long) counts.push(t("replace_too_long", { count: answer.too_long, limit: kib(rule("captions.caption_max_bytes")) }));
  if (answer.without_caption) counts.push(t("replace_without", { count: answer.without_caption }));
  const parts = [element("p", "replace-counts", counts.join("; "))];
  parts[0].dataset.changed = String(answer.changed);
  if (!answer.changes.length) return parts;
  const list = element("ul", "replace-changes");
  list.append(...answer.changes.map((change) => {
    const item = element("li");
    item.append(element("b", "", change.source_name), element("span", "replace-before", change.before),
      element("span", "replace-after", change.after ?? ""));
    if (change.after === null || change.after === "") item.lastChild.textContent = t("replace_emptied");
    return item;
  }));
  parts.push(list);
  if (answer.changed > answer.changes.length) {
    parts.push(element("p", "muted", t("replace_more", { count: answer.changed - answer.changes.length })));
  }
  return parts;
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}
