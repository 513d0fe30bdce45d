// Small DOM helpers shared by the panels: toasts, confirmations, form values.

import { onSuccess } from "./api.js";
import { t } from "./i18n.js";

const TOAST_MS = 4000;
const TOASTS_SHOWN = 3;

/** Show a short message; errors stay until clicked, pushed out, or the request `route` they came from succeeds. */
export function toast(message, kind = "ok", route = "") {
  const box = document.getElementById("toasts");
  const item = document.createElement("div");
  item.className = `toast toast-${kind}`;
  if (route) item.dataset.route = route;
  item.setAttribute("role", kind === "error" ? "alert" : "status");
  item.textContent = message;
  item.addEventListener("click", () => item.remove());
  box.append(item);
  // Only the newest few stay: a stack of toasts would cover the cards' buttons.
  while (box.children.length > TOASTS_SHOWN) box.firstElementChild.remove();
  if (kind !== "error") setTimeout(() => item.remove(), TOAST_MS);
}

/** Run an async action; report its error (the server's message) instead of failing silently. */
export async function attempt(action, success) {
  try {
    const value = await action();
    if (success) toast(typeof success === "function" ? success(value) : success);
    return value;
  } catch (err) {
    toast(err.message || String(err), "error", err.route);
    return undefined;
  }
}

/** Take away the errors of request `route`: it has just succeeded, so what they said is fixed. */
export function clearErrors(route) {
  for (const item of document.querySelectorAll("#toasts .toast-error[data-route]")) {
    if (item.dataset.route === route) item.remove();
  }
}

onSuccess(clearErrors);

/** Ask before a destructive action. */
export function confirmed(key, vars) {
  return window.confirm(t(key, vars));
}

/** Show `draw()`'s text in `box`, and draw it again when the page's language changes (`redrawTexts`). */
export function showText(box, draw) {
  box.redraw = draw;
  box.dataset.redraw = "";
  box.textContent = draw();
}

/** Draw every text shown with `showText` again, in the language just chosen. */
export function redrawTexts(root = document) {
  for (const box of root.querySelectorAll("[data-redraw]")) if (box.redraw) box.textContent = box.redraw();
}

/** Return an element by id. */
export function $(id) {
  return document.getElementById(id);
}

/** Fill a <select> with options [value, label], keeping the current choice when it still exists. */
export function fillSelect(select, options, placeholder) {
  const current = select.value;
  const items = options.map(([value, label]) => new Option(label, value));
  if (placeholder !== undefined) items.unshift(new Option(placeholder, ""));
  select.replaceChildren(...items);
  if (options.some(([value]) => value === current)) select.value = current;
}
