// The viewer: source and result at full resolution, side by side or with a before/after
// slider, with zoom, driven by the keyboard.

import { urls } from "./api.js";
import { t } from "./i18n.js";

const ZOOM_STEP = 1.25;

export class Viewer {
  /** `actions` has: task(id), move(delta) -> id|null, nextUnreviewed() -> id|null, toggle, retry, remove. */
  constructor(root, actions) {
    this.root = root;
    this.actions = actions;
    this.taskId = null;
    this.number = 0;
    this.zoom = 1;
    this.pan = { x: 0, y: 0 };
    this.mode = "side";
    this.sourceImg = root.querySelector(".viewer-source img");
    this.resultImg = root.querySelector(".viewer-result img");
    this.slider = root.querySelector(".viewer-slider");
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

  /** Open on a task, showing its result `number` (0-based). */
  open(taskId, number = 0) {
    this.taskId = taskId;
    this.number = number;
    this.zoom = 1;
    this.pan = { x: 0, y: 0 };
    this.root.hidden = false;
    this.show();
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
    setSrc(this.sourceImg, urls.source(task.id, false));
    setSrc(this.resultImg, result ? urls.image(result.id, false) : "");
    this.resultImg.hidden = !result;
    this.root.querySelector(".viewer-empty").hidden = Boolean(result);
    this.root.querySelector(".viewer-result-info").textContent = result
      ? `${this.number + 1}/${results.length} · ${result.width}×${result.height} ${result.format}${result.selected ? " · ✓" : ""}`
      : t("no_results");
    this.root.classList.toggle("is-selected", Boolean(result && result.selected));
    this.root.classList.toggle("mode-slider", this.mode === "slider");
    this.root.querySelector("[data-viewer=mode]").textContent = t(this.mode === "slider" ? "side_by_side" : "compare");
    this.applyZoom();
    this.applySlider();
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
    const action = event.target.closest("[data-viewer]")?.dataset.viewer;
    if (!action) return;
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
    }
  }

  onKey(event) {
    if (!this.isOpen || event.target.closest("input, textarea, select")) return;
    const task = this.actions.task(this.taskId);
    const count = task ? task.results.length : 0;
    const key = event.key;
    let handled = true;
    if (key === "Escape") this.close();
    else if (key === "ArrowLeft") this.step(-1);
    else if (key === "ArrowRight") this.step(1);
    else if (key === "ArrowUp") this.number = Math.max(0, this.number - 1);
    else if (key === "ArrowDown") this.number = Math.min(Math.max(0, count - 1), this.number + 1);
    else if (/^[1-9]$/.test(key) && Number(key) <= count) this.number = Number(key) - 1;
    else if (key === " " && this.currentResult()) this.actions.toggle(this.currentResult());
    else if ((key === "r" || key === "R") && task) this.actions.retry(task);
    else if (key === "Delete" && this.currentResult()) this.actions.remove(this.currentResult());
    else if (key === "n" || key === "N") {
      const id = this.actions.nextUnreviewed(this.taskId);
      if (id) {
        this.taskId = id;
        this.number = 0;
      }
    } else handled = false;
    if (handled) {
      event.preventDefault();
      if (this.isOpen) this.show();
    }
  }
}

function setSrc(img, url) {
  if (img.getAttribute("src") !== url) {
    if (url) img.src = url;
    else img.removeAttribute("src");
  }
}
