// The task grid: a virtual list of task cards in as many columns as the width allows. Only the
// rows on screen exist in the DOM; a changed task patches its own card in place, so polls never
// rebuild the list or move the scroll.

import { urls } from "./api.js";
import { fillCardCaptions } from "./captions.js";
import { errorLine, flagSignature, flagsOf } from "./format.js";
import { message, said, t } from "./i18n.js";
import { spendText, spendTitle } from "./spend.js";

// Card sizes: thumbnail side, row height (card plus gap) and the narrowest card, in CSS pixels.
// Columns follow the grid's width, so a wide screen shows more cards per row.
export const CARD_SIZES = {
  small: { thumb: 64, row: 148, minWidth: 250 },
  medium: { thumb: 96, row: 180, minWidth: 370 },
  large: { thumb: 160, row: 244, minWidth: 560 },
};
const GAP = 6;
const REFS_SHOWN = 3;
// The mark of a task that generates from its prompt alone (no source image): a sparkle.
const GENERATED = "data:image/svg+xml," + encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32" viewBox="0 0 24 24"><path fill="#94a3b8" d="M12 2l2.4 7.6L22 12l-7.6 2.4L12 22l-2.4-7.6L2 12l7.6-2.4z"/></svg>');
const PAD = 10;
const BUFFER_ROWS = 3;

export class TaskGrid {
  /** `scroller` is the scrolling element; `getTask(id)` returns a task object. */
  constructor(scroller, getTask, size = "medium") {
    this.scroller = scroller;
    this.getTask = getTask;
    this.view = [];
    this.cards = new Map(); // task id -> card element on screen
    this.layout = { columns: 1, row: CARD_SIZES.medium.row, width: 0, cardWidth: 0 };
    this.size = CARD_SIZES[size] ? size : "medium";
    this.spacer = document.createElement("div");
    this.spacer.className = "grid-spacer";
    scroller.appendChild(this.spacer);
    scroller.addEventListener("scroll", () => this.render(), { passive: true });
    new ResizeObserver(() => this.render()).observe(scroller);
    this.applySize();
  }

  /** Show these task ids (already filtered and sorted), keeping the scroll position. */
  setView(ids) {
    this.view = ids;
    this.render(true);
  }

  /** Switch the card size ("small" | "medium" | "large"), keeping the first visible task in view. */
  setSize(size) {
    if (!CARD_SIZES[size] || size === this.size) return;
    this.size = size;
    this.applySize();
    this.render(true);
  }

  applySize() {
    const { thumb, row } = CARD_SIZES[this.size];
    this.scroller.dataset.size = this.size;
    this.scroller.style.setProperty("--thumb", `${thumb}px`);
    this.scroller.style.setProperty("--card-h", `${row - GAP}px`);
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
    const { row, columns } = this.layout;
    const top = Math.floor(position / columns) * row;
    const { scrollTop, clientHeight } = this.scroller;
    if (top < scrollTop) this.scroller.scrollTop = top;
    else if (top + row > scrollTop + clientHeight) this.scroller.scrollTop = top + row - clientHeight;
  }

  /** Recompute columns and row height from the width and card size; keep the first visible task in view. */
  relayout() {
    const width = this.scroller.clientWidth;
    const { row, minWidth } = CARD_SIZES[this.size];
    const columns = Math.max(1, Math.floor((width - 2 * PAD + GAP) / (minWidth + GAP)));
    const old = this.layout;
    if (old.width === width && old.row === row && old.columns === columns) return false;
    const anchor = Math.floor(this.scroller.scrollTop / old.row) * old.columns;
    const cardWidth = Math.floor((width - 2 * PAD - (columns - 1) * GAP) / columns);
    this.layout = { columns, row, width, cardWidth };
    this.scroller.style.setProperty("--card-w", `${cardWidth}px`);
    this.spacer.style.height = `${this.contentHeight()}px`;
    if (old.row !== row || old.columns !== columns) this.scroller.scrollTop = Math.floor(anchor / columns) * row;
    return true;
  }

  contentHeight() {
    return Math.ceil(this.view.length / this.layout.columns) * this.layout.row + PAD;
  }

  /** Make the DOM match the visible window of the view (only rows near the screen exist). */
  render(moved = false) {
    const changed = this.relayout();
    if (moved) this.spacer.style.height = `${this.contentHeight()}px`;
    const { columns, row } = this.layout;
    const { scrollTop, clientHeight } = this.scroller;
    const firstRow = Math.max(0, Math.floor(scrollTop / row) - BUFFER_ROWS);
    const lastRow = Math.ceil((scrollTop + clientHeight) / row) + BUFFER_ROWS;
    const wanted = new Map();
    for (let position = firstRow * columns; position < Math.min(this.view.length, lastRow * columns); position++) {
      wanted.set(this.view[position], position);
    }
    for (const [id, card] of this.cards) {
      if (!wanted.has(id)) {
        card.remove();
        this.cards.delete(id);
      }
    }
    for (const [id, position] of wanted) this.place(id, position, moved || changed);
  }

  /** Put the card of task `id` at `position`, building it when it is new on screen. */
  place(id, position, refill) {
    let card = this.cards.get(id);
    if (!card) {
      card = buildCard(this.getTask(id));
      this.cards.set(id, card);
      this.scroller.appendChild(card);
    } else if (refill) {
      fillCard(card, this.getTask(id));
    }
    const { columns, row, cardWidth } = this.layout;
    const x = PAD + (position % columns) * (cardWidth + GAP);
    const y = PAD + Math.floor(position / columns) * row;
    const transform = `translate(${x}px, ${y}px)`;
    if (card.style.transform !== transform) card.style.transform = transform;
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

/** A card action with a full label, and a short one that small cards show (the full one is the tooltip). */
function cardButton(action, key, className = "small") {
  const el = button(action, undefined, className);
  el.title = t(key);
  el.append(element("span", "label-long", t(key)), element("span", "label-short", t(`${key}_short`)));
  return el;
}

/** A card action shown as a symbol only (its label is the tooltip): cards have little room. */
function iconButton(action, symbol, key) {
  const el = button(action, symbol, "small");
  el.title = t(key);
  el.setAttribute("aria-label", t(key));
  return el;
}

/** Build a card's fixed structure once; fillCard puts the task's data in it. */
function buildCard(task) {
  const card = element("article", "task-card");
  card.setAttribute("data-testid", "task-card");
  const head = element("div", "task-head");
  const batch = element("span", "badge task-batch");
  batch.setAttribute("data-testid", "task-batch");
  head.append(element("span", "badge"), batch, element("span", "origin"), element("span", "name"), element("span", "attempts"));
  const source = element("img", "thumb source-thumb");
  source.loading = "lazy";
  source.alt = "";
  source.dataset.action = "open-source";
  const inputs = element("div", "inputs"); // the source, with the task's reference images under it
  inputs.append(source, element("div", "ref-strip"));
  const notes = element("div", "notes");
  notes.append(element("div", "error"), element("div", "warning"), element("div", "card-captions"));
  const body = element("div", "task-body");
  body.append(inputs, element("div", "results"), notes);
  const actions = element("div", "task-actions");
  actions.append(cardButton("retry-keep", "retry_keep"), cardButton("retry-clear", "retry_clear"),
    iconButton("reprompt", "✎", "reprompt"), cardButton("debug", "debug"), cardButton("delete-task", "delete", "small danger"));
  card.append(head, body, actions);
  fillCard(card, task);
  return card;
}

/** Put a task's current data into its card, touching only what changed. */
export function fillCard(card, task) {
  card.dataset.taskId = task.id;
  card.dataset.status = task.status;
  const source = card.querySelector(".source-thumb");
  // A generate task has no source: a mark says so, and its references (if any) show under it.
  const sourceUrl = task.source_path ? urls.source(task.id, true) : GENERATED;
  if (source.getAttribute("src") !== sourceUrl) source.src = sourceUrl;
  source.classList.toggle("is-generated", !task.source_path);
  source.title = task.source_path ? task.source_name : t("generated_task");
  fillReferences(card.querySelector(".ref-strip"), task);
  const origin = card.querySelector(".origin");
  origin.textContent = task.parent ? "↳" : "";
  origin.title = task.parent ? t("continued_from", { name: task.parent.name, number: task.parent.number }) : "";
  const badge = card.querySelector(".badge");
  badge.textContent = t(task.status);
  badge.className = `badge status-${task.status}`;
  const batch = card.querySelector(".task-batch"); // waiting in a batch at the provider
  batch.hidden = !task.batch;
  batch.textContent = task.batch ? t("task_batch") : "";
  batch.title = task.batch ? t("task_batch_hint", { batch: task.batch }) : "";
  const name = card.querySelector(".name");
  name.textContent = task.source_name;
  name.title = task.source_path || task.source_name;
  const attempts = card.querySelector(".attempts");
  attempts.textContent = task.attempts ? t("attempts", { count: task.attempts }) : "";
  attempts.title = task.spend?.calls ? `${spendText(task.spend)}\n${spendTitle(task.spend)}` : ""; // what its calls cost
  const error = card.querySelector(".error");
  error.textContent = errorLine(task);
  error.title = error.textContent;
  card.querySelector(".warning").textContent = said(task, "warning");
  fillCardCaptions(card.querySelector(".card-captions"), task);
  card.querySelector(".notes").hidden = !task.error && !task.warning && !task.results.some((r) => r.caption);
  const running = task.status === "running";
  for (const el of card.querySelectorAll("[data-action^=retry]")) el.disabled = running;
  fillResults(card.querySelector(".results"), task);
}

/** The task's reference images as small thumbnails under its source (a count past the first few). */
function fillReferences(strip, task) {
  const refs = task.references || [];
  const signature = `${task.id}:${refs.length}`;
  if (strip.dataset.signature === signature) return;
  strip.dataset.signature = signature;
  const shown = refs.slice(0, REFS_SHOWN).map((path, index) => {
    const img = element("img", "ref-thumb");
    img.loading = "lazy";
    img.alt = "";
    img.src = urls.reference(task.id, index + 1, true);
    img.title = `${t("reference_n", { n: index + 1 })}: ${path}`;
    img.dataset.action = "open-source";
    img.setAttribute("data-testid", "ref-thumb");
    return img;
  });
  if (refs.length > REFS_SHOWN) shown.push(element("span", "ref-more", `+${refs.length - REFS_SHOWN}`));
  strip.replaceChildren(...shown);
  strip.hidden = !refs.length;
}

function fillResults(strip, task) {
  const signature = task.results.map((r) => `${r.id}:${r.selected ? 1 : 0}${r.saved ? "s" : ""}:${flagSignature(r)}`).join(",");
  if (strip.dataset.signature === signature) return;
  strip.dataset.signature = signature;
  strip.closest(".task-card").dataset.saved = String(task.results.some((r) => r.saved)); // for the "not yet saved" filter
  strip.closest(".task-card").dataset.flagged = String(task.results.some((r) => flagsOf(r).length > 0));
  strip.replaceChildren(...task.results.map((result, number) => resultTile(result, number)));
  if (!task.results.length) strip.append(element("div", "no-results", t("no_results")));
}

function resultTile(result, number) {
  const tile = element("figure", `result${result.selected ? " is-selected" : ""}${result.saved ? " is-saved" : ""}`);
  tile.dataset.resultId = result.id;
  tile.title = `${result.width}×${result.height} ${result.format}`;
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
  if (flagsOf(result).length) tile.append(flagChips(result, number));
  if (result.saved) { // written into a dataset already
    const mark = element("span", "saved-mark", "✓");
    mark.title = t("saved_mark");
    mark.setAttribute("data-testid", "saved-mark");
    tile.append(mark);
  }
  return tile;
}

/** A result's review flags as chips over its image: a short label each, the server's reason as the tooltip;
 * a click opens the result in the viewer, as a click on the image does. */
function flagChips(result, number) {
  const box = element("div", "flags");
  box.setAttribute("data-testid", "result-flags");
  for (const flag of flagsOf(result)) {
    const chip = element("span", "flag", t(`flag_${flag}`));
    chip.dataset.flag = flag;
    chip.dataset.action = "open-result";
    chip.dataset.number = String(number);
    chip.title = message(result.flag_reasons?.[flag], result.flag_reasons_msg?.[flag]) || t(`flag_${flag}_hint`);
    box.append(chip);
  }
  return box;
}
