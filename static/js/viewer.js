// The viewer: source and result at full resolution, side by side or with a before/after
// slider, with zoom, driven by the keyboard.

import { urls } from "./api.js";
import { CaptionEditor } from "./captions.js";
import { errorLine, flagSignature, flagsOf } from "./format.js";
import { language, message, t } from "./i18n.js";

const ZOOM_STEP = 1.25;
const ADVANCE_KEY = "ibc.spaceAdvance";

export class Viewer {
  /** `actions` has: task(id), move(delta) -> id|null, nextUnreviewed() -> id|null, nextFlagged() -> id|null,
   * toggle, retry, remove, reprompt(task, prompt), continueFrom(result, prompt) and captioned(result). */
  constructor(root, actions) {
    this.root = root;
    this.actions = actions;
    this.taskId = null;
    this.number = 0;
    this.input = 0; // which input image the left side shows: the source, then each reference
    this.promptFor = null; // the task whose prompt the box holds (a poll must not overwrite typing)
    this.promptBox = root.querySelector("#viewer-prompt");
    this.zoom = 1;
    this.pan = { x: 0, y: 0 };
    this.mode = "side";
    this.sourceImg = root.querySelector(".viewer-source img");
    this.resultImg = root.querySelector(".viewer-result img");
    this.slider = root.querySelector(".viewer-slider");
    this.caption = new CaptionEditor(root, (result) => actions.captioned(result));
    // Space selects and shows the next task, unless the reviewer chose to stay (remembered).
    this.advance = root.querySelector("#viewer-advance");
    this.advance.checked = localStorage.getItem(ADVANCE_KEY) !== "0";
    this.advance.addEventListener("change", () => {
      localStorage.setItem(ADVANCE_KEY, this.advance.checked ? "1" : "0");
      this.advance.blur(); // a focused box would take the next Space itself
    });
    root.addEventListener("click", (event) => this.onClick(event));
    this.slider.addEventListener("input", () => this.applySlider());
    const stage = root.querySelector(".viewer-stage");
    stage.addEventListener("wheel", (event) => this.onWheel(event), { passive: false });
    stage.addEventListener("pointerdown", (event) => this.startPan(event));
    document.addEventListener("keydown", (event) => this.onKey(event));
  }

  get isOpen() {
    return !this.root.hidden;
  }

  /** Open on a task, showing its result `number` (0-based); `editPrompt` or `editCaption` puts the cursor there. */
  open(taskId, number = 0, { editPrompt = false, editCaption = false } = {}) {
    this.taskId = taskId;
    this.number = number;
    this.input = 0;
    this.zoom = 1;
    this.pan = { x: 0, y: 0 };
    this.root.hidden = false;
    this.show();
    if (editPrompt) this.promptBox.focus();
    else if (editCaption) this.caption.focus();
  }

  close() {
    this.root.hidden = true;
    this.taskId = null;
  }

  /** Redraw for the current task (also after a poll changed it). */
  show() {
    const task = this.actions.task(this.taskId);
    if (!task) return this.close();
    const results = task.results;
    this.number = Math.min(this.number, Math.max(0, results.length - 1));
    const result = results[this.number];
    this.root.querySelector(".viewer-title").textContent = `${task.index + 1}. ${task.source_name}`;
    this.root.querySelector(".viewer-status").textContent = t(task.status);
    this.showInputs(task);
    this.showPrompt(task, result);
    setSrc(this.resultImg, result ? urls.image(result.id, false) : "");
    this.resultImg.hidden = !result;
    this.root.querySelector(".viewer-empty").hidden = Boolean(result);
    const error = this.root.querySelector(".viewer-error"); // why the task failed, in the page's language
    error.textContent = result ? "" : errorLine(task);
    error.hidden = !error.textContent;
    this.root.querySelector(".viewer-result-info").textContent = result
      ? `${this.number + 1}/${results.length} · ${result.width}×${result.height} ${result.format}${result.selected ? " · ✓" : ""}`
      : t("no_results");
    this.showFlags(result);
    this.caption.show(result);
    this.root.classList.toggle("is-selected", Boolean(result && result.selected));
    this.root.classList.toggle("mode-slider", this.mode === "slider");
    this.root.querySelector("[data-viewer=mode]").textContent = t(this.mode === "slider" ? "side_by_side" : "compare");
    this.applyZoom();
    this.applySlider();
  }

  /** The left side: the source or one of the references (a generate task may have none), with the strip to pick. */
  showInputs(task) {
    const inputs = inputsOf(task);
    this.input = Math.min(this.input, Math.max(0, inputs.length - 1));
    const shown = inputs[this.input];
    setSrc(this.sourceImg, shown ? shown.url : "");
    this.sourceImg.hidden = !shown;
    this.root.querySelector(".viewer-source figcaption").textContent = shown ? shown.label : t("no_source");
    const strip = this.root.querySelector(".viewer-inputs");
    const signature = `${task.id}:${inputs.length}:${this.input}`;
    if (strip.dataset.signature === signature) return;
    strip.dataset.signature = signature;
    strip.replaceChildren(...(inputs.length > 1 ? inputs.map((input, index) => {
      const pick = document.createElement("button");
      pick.type = "button";
      pick.className = `viewer-input${index === this.input ? " is-current" : ""}`;
      pick.title = input.label;
      pick.dataset.input = String(index);
      const img = document.createElement("img");
      img.src = input.thumb;
      img.alt = input.label;
      pick.append(img);
      return pick;
    }) : []));
  }

  /** The prompt box (the task's prompt, to edit) and the prompt that made the result shown. */
  showPrompt(task, result) {
    if (this.promptFor !== task.id) {
      this.promptFor = task.id;
      this.promptBox.value = task.prompt;
    }
    const made = this.root.querySelector(".viewer-made");
    made.textContent = result && result.prompt ? t("made_with", { prompt: result.prompt }) : "";
    made.classList.toggle("is-older", Boolean(result && result.prompt && result.prompt !== task.prompt));
    this.root.querySelector("[data-viewer=continue]").disabled = !result;
    this.root.querySelector("[data-viewer=reprompt]").disabled = task.status === "running";
  }

  /** The shown result's review flags over its image, each with the reason the server gave. */
  showFlags(result) {
    const list = this.root.querySelector(".viewer-flags");
    const flags = result ? flagsOf(result) : [];
    const signature = flags.length ? `${language()}:${result.id}:${flagSignature(result)}` : "";
    list.hidden = !flags.length;
    if (list.dataset.signature === signature) return;
    list.dataset.signature = signature;
    list.replaceChildren(...flags.map((flag) => {
      const item = document.createElement("li");
      item.className = "viewer-flag";
      item.dataset.flag = flag;
      item.title = t(`flag_${flag}_hint`);
      const label = document.createElement("strong");
      label.textContent = t(`flag_${flag}`);
      const reason = document.createElement("span");
      reason.textContent = message(result.flag_reasons?.[flag], result.flag_reasons_msg?.[flag]) || t(`flag_${flag}_hint`);
      item.append(label, reason);
      return item;
    }));
  }

  currentResult() {
    const task = this.actions.task(this.taskId);
    return task ? task.results[this.number] : undefined;
  }

  applyZoom() {
    if (this.zoom <= 1) this.pan = { x: 0, y: 0 };
    const transform = `translate(${this.pan.x}px, ${this.pan.y}px) scale(${this.zoom})`;
    for (const img of [this.sourceImg, this.resultImg]) img.style.transform = transform;
  }

  /** Drag to move both images together while zoomed in. */
  startPan(event) {
    if (this.zoom <= 1 || event.target === this.slider) return;
    const origin = { x: event.clientX - this.pan.x, y: event.clientY - this.pan.y };
    const move = (e) => {
      this.pan = { x: e.clientX - origin.x, y: e.clientY - origin.y };
      this.applyZoom();
    };
    const stop = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", stop);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", stop);
    event.preventDefault();
  }

  /** Clip the source at the slider: both images fill the same box (object-fit: contain), so the
   * split line compares the same screen region even when their aspect ratios differ. */
  applySlider() {
    const value = Number(this.slider.value);
    const slider = this.mode === "slider";
    this.root.querySelector(".viewer-source .viewer-clip").style.clipPath = slider ? `inset(0 ${100 - value}% 0 0)` : "";
    this.root.querySelector(".viewer-stage").style.setProperty("--split", String(value / 100));
  }

  onWheel(event) {
    event.preventDefault();
    this.zoom = Math.min(16, Math.max(0.1, this.zoom * (event.deltaY < 0 ? ZOOM_STEP : 1 / ZOOM_STEP)));
    this.applyZoom();
  }

  onClick(event) {
    const pick = event.target.closest("[data-input]");
    if (pick) {
      this.input = Number(pick.dataset.input);
      return this.show();
    }
    const action = event.target.closest("[data-viewer]")?.dataset.viewer;
    if (!action) return;
    const task = this.actions.task(this.taskId);
    const prompt = this.promptBox.value;
    if (action === "reprompt" && task) return void this.actions.reprompt(task, prompt);
    if (action === "continue" && this.currentResult()) return void this.actions.continueFrom(this.currentResult(), prompt);
    if (action === "close") this.close();
    else if (action === "zoom-in") this.zoom *= ZOOM_STEP;
    else if (action === "zoom-out") this.zoom /= ZOOM_STEP;
    else if (action === "fit") this.zoom = 1;
    else if (action === "mode") this.mode = this.mode === "side" ? "slider" : "side";
    else if (action === "prev") this.step(-1);
    else if (action === "next") this.step(1);
    this.show();
  }

  step(delta) {
    const id = this.actions.move(this.taskId, delta);
    if (id) {
      this.taskId = id;
      this.number = 0;
      this.input = 0;
    }
  }

  /** Toggle a result's selection (shown at once); a new selection moves on to the next task unless asked to stay. */
  select(result, stay) {
    this.actions.toggle(result);
    result.selected = !result.selected; // the poll brings the stored mark; show the change now
    if (result.selected && !stay && this.advance.checked) this.step(1);
  }

  /** Show another task (N, G) from its first result that passes `pick` (else its first); stay when there is none. */
  jump(id, pick = () => true) {
    if (!id) return;
    this.taskId = id;
    this.number = Math.max(0, this.actions.task(id).results.findIndex(pick));
    this.input = 0;
  }

  onKey(event) {
    if (!this.isOpen || event.target.closest("input, textarea, select")) return;
    const task = this.actions.task(this.taskId);
    const count = task ? task.results.length : 0;
    const key = event.key;
    let handled = true;
    if (key === "Tab" && !event.shiftKey && !event.ctrlKey && !event.altKey && this.caption.focus()) {
      event.preventDefault(); // into the caption: the page behind the viewer takes no focus
      return;
    }
    if (key === "Escape") this.close();
    else if (key === "ArrowLeft") this.step(-1);
    else if (key === "ArrowRight") this.step(1);
    else if (key === "ArrowUp") this.number = Math.max(0, this.number - 1);
    else if (key === "ArrowDown") this.number = Math.min(Math.max(0, count - 1), this.number + 1);
    else if (/^[1-9]$/.test(key) && Number(key) <= count) this.number = Number(key) - 1;
    else if (key === " " && this.currentResult()) this.select(this.currentResult(), event.shiftKey);
    else if ((key === "r" || key === "R") && task) this.actions.retry(task);
    else if (key === "Delete" && this.currentResult()) this.actions.remove(this.currentResult());
    else if ((key === "i" || key === "I") && task) this.input = (this.input + 1) % Math.max(1, inputsOf(task).length);
    else if (key === "n" || key === "N") this.jump(this.actions.nextUnreviewed(this.taskId));
    else if (key === "g" || key === "G") this.jump(this.actions.nextFlagged(this.taskId), (r) => flagsOf(r).length > 0);
    else handled = false;
    if (handled) {
      event.preventDefault();
      if (this.isOpen) this.show();
    }
  }
}

/** Return a task's input images for the viewer: its source (when it has one), then each reference. */
function inputsOf(task) {
  const inputs = task.source_path
    ? [{ label: t("source"), url: urls.source(task.id, false), thumb: urls.source(task.id, true) }] : [];
  (task.references || []).forEach((path, index) => inputs.push({
    label: t("reference_n", { n: index + 1 }), url: urls.reference(task.id, index + 1, false),
    thumb: urls.reference(task.id, index + 1, true),
  }));
  return inputs;
}

function setSrc(img, url) {
  if (img.getAttribute("src") !== url) {
    if (url) img.src = url;
    else img.removeAttribute("src");
  }
}
