// The task grid: a virtual list of task cards. Only the rows on screen exist in the DOM; a
// changed task patches its own card in place, so polls never rebuild the list or move the scroll.

import { urls } from "./api.js";
import { errorLine } from "./format.js";
import { t } from "./i18n.js";

export const ROW_HEIGHT = 176;
const BUFFER_ROWS = 4;

export class TaskGrid {
  /** `scroller` is the scrolling element; `getTask(id)` returns a task object. */
  constructor(scroller, getTask) {
    this.scroller = scroller;
    this.getTask = getTask;
    this.view = [];
    this.cards = new Map(); // task id -> card element on screen
    this.spacer = document.createElement("div");
    this.spacer.className = "grid-spacer";
    scroller.appendChild(this.spacer);
    scroller.addEventListener("scroll", () => this.render(), { passive: true });
    new ResizeObserver(() => this.render()).observe(scroller);
  }

  /** Show these task ids (already filtered and sorted), keeping the scroll position. */
  setView(ids) {
    this.view = ids;
    this.spacer.style.height = `${ids.length * ROW_HEIGHT}px`;
    this.render(true);
  }

  /** Patch the cards of changed tasks that are on screen. */
  update(ids) {
    for (const id of ids) {
      const card = this.cards.get(id);
      const task = this.getTask(id);
      if (card && task) fillCard(card, task);
    }
  }

  /** Scroll so that the task at `position` in the view is visible. */
  reveal(position) {
    const top = position * ROW_HEIGHT;
    const { scrollTop, clientHeight } = this.scroller;
    if (top < scrollTop) this.scroller.scrollTop = top;
    else if (top + ROW_HEIGHT > scrollTop + clientHeight) this.scroller.scrollTop = top + ROW_HEIGHT - clientHeight;
  }

  /** Make the DOM match the visible window of the view. */
  render(moved = false) {
    const { scrollTop, clientHeight } = this.scroller;
    const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - BUFFER_ROWS);
    const last = Math.min(this.view.length, Math.ceil((scrollTop + clientHeight) / ROW_HEIGHT) + BUFFER_ROWS);
    const wanted = new Map();
    for (let position = first; position < last; position++) wanted.set(this.view[position], position);
    for (const [id, card] of this.cards) {
      if (!wanted.has(id)) {
        card.remove();
        this.cards.delete(id);
      }
    }
    for (const [id, position] of wanted) {
      let card = this.cards.get(id);
      if (!card) {
        card = buildCard(this.getTask(id));
        this.cards.set(id, card);
        this.scroller.appendChild(card);
      } else if (moved) {
        fillCard(card, this.getTask(id));
      }
      card.style.transform = `translateY(${position * ROW_HEIGHT}px)`;
    }
  }
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function button(action, label, className = "small") {
  const el = element("button", className, label);
  el.type = "button";
  el.dataset.action = action;
  return el;
}

/** Build a card's fixed structure once; fillCard puts the task's data in it. */
function buildCard(task) {
  const card = element("article", "task-card");
  card.setAttribute("data-testid", "task-card");
  const source = element("img", "thumb source-thumb");
  source.loading = "lazy";
  source.alt = "";
  source.dataset.action = "open-source";
  const info = element("div", "task-info");
  const head = element("div", "task-head");
  head.append(element("span", "badge"), element("span", "name"), element("span", "attempts"));
  const actions = element("div", "task-actions");
  actions.append(button("retry-keep", t("retry_keep")), button("retry-clear", t("retry_clear")),
    button("debug", t("debug")), button("delete-task", t("delete"), "small danger"));
  info.append(head, element("div", "error"), element("div", "warning"), actions);
  const results = element("div", "results");
  card.append(source, results, info);
  fillCard(card, task);
  return card;
}

/** Put a task's current data into its card, touching only what changed. */
export function fillCard(card, task) {
  card.dataset.taskId = task.id;
  card.dataset.status = task.status;
  const source = card.querySelector(".source-thumb");
  const sourceUrl = urls.source(task.id, true);
  if (source.getAttribute("src") !== sourceUrl) source.src = sourceUrl;
  source.title = task.source_name;
  const badge = card.querySelector(".badge");
  badge.textContent = t(task.status);
  badge.className = `badge status-${task.status}`;
  card.querySelector(".name").textContent = task.source_name;
  card.querySelector(".attempts").textContent = task.attempts ? `${task.attempts} ${t("attempts")}` : "";
  card.querySelector(".error").textContent = errorLine(task);
  card.querySelector(".warning").textContent = task.warning || "";
  const running = task.status === "running";
  for (const el of card.querySelectorAll("[data-action^=retry]")) el.disabled = running;
  fillResults(card.querySelector(".results"), task);
}

function fillResults(strip, task) {
  const signature = task.results.map((r) => `${r.id}:${r.selected ? 1 : 0}`).join(",");
  if (strip.dataset.signature === signature) return;
  strip.dataset.signature = signature;
  strip.replaceChildren(...task.results.map((result, number) => resultTile(result, number)));
  if (!task.results.length) strip.append(element("div", "no-results", t("no_results")));
}

function resultTile(result, number) {
  const tile = element("figure", `result${result.selected ? " is-selected" : ""}`);
  tile.dataset.resultId = result.id;
  const img = element("img", "thumb");
  img.loading = "lazy";
  img.alt = `${result.width}×${result.height}`;
  img.src = urls.image(result.id, true);
  img.dataset.action = "open-result";
  img.dataset.number = String(number);
  img.setAttribute("data-testid", "result-image");
  img.dataset.resultId = result.id;
  const bar = element("figcaption");
  const select = element("input");
  select.type = "checkbox";
  select.checked = result.selected;
  select.dataset.action = "toggle-select";
  select.setAttribute("data-testid", "result-select");
  select.title = t("select");
  bar.append(select, element("span", "size", `${result.width}×${result.height}`),
    button("save-result", "⤓", "icon"), button("delete-result", "✕", "icon danger"));
  bar.querySelector("[data-action=save-result]").title = t("save");
  bar.querySelector("[data-action=delete-result]").title = t("delete");
  tile.append(img, bar);
  return tile;
}
