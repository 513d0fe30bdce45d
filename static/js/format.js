// Pure helpers for formatting and filtering; no DOM here.

import { language, said } from "./i18n.js";

const UNITS = { h: "h", min: "min", s: "s" };

/** Return "45 s", "3 min 20 s" or "1 h 5 min" for a number of seconds ("–" when unknown); `units` names h/min/s. */
export function duration(seconds, units = UNITS) {
  if (seconds === null || seconds === undefined || !isFinite(seconds) || seconds < 0) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} ${units.s}`;
  if (s < 3600) return joinUnits([Math.floor(s / 60), units.min], [s % 60, units.s]);
  const minutes = Math.round((s % 3600) / 60);
  const hours = Math.floor(s / 3600) + (minutes === 60 ? 1 : 0);
  return joinUnits([hours, units.h], [minutes % 60, units.min]);
}

function joinUnits(major, minor) {
  return minor[0] ? `${major[0]} ${major[1]} ${minor[0]} ${minor[1]}` : `${major[0]} ${major[1]}`;
}

/** Return `value` with at most one decimal: 12.34 -> "12.3", 12.0 -> "12" ("" when not a number). */
export function oneDecimal(value) {
  if (typeof value !== "number" || !isFinite(value)) return "";
  return String(Math.round(value * 10) / 10);
}

/** Return the locale dates, times and numbers are written in: the page's language, not the browser's. */
export function pageLocale() {
  return language() === "zh" ? "zh-CN" : "en";
}

/** Return a short local date and time for a UNIX timestamp, in the page's language ("Dec 6, 14:32" / "12月6日 14:32"). */
export function when(timestamp) {
  const date = new Date(timestamp * 1000);
  return date.toLocaleString(pageLocale(), { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** Return the wall-clock time (hh:mm:ss) of a Unix time in seconds: "cooling until 14:32:05". */
export function clockTime(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString(pageLocale(), { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// Review flags, in the order the server lists them on a result.
export const FLAGS = ["unchanged", "unrelated", "blank", "off_size", "near_duplicate"];

/** Return a result's review flags (none when the server has not looked yet). */
export function flagsOf(result) {
  return result.flags || [];
}

/** Return a short text that changes when a result's flags or their reasons change (to redraw only then). */
export function flagSignature(result) {
  return flagsOf(result).map((flag) => `${flag}=${result.flag_reasons?.[flag] ?? ""}`).join("|");
}

/** Return true when one of the task's results carries `flag` ("any": any flag). */
export function hasFlag(task, flag) {
  return task.results.some((r) => (flag === "any" ? flagsOf(r).length > 0 : flagsOf(r).includes(flag)));
}

/** Return how many results of these tasks the server has not looked at for flags yet. */
export function uncheckedCount(tasks) {
  let count = 0;
  for (const task of tasks) {
    for (const result of task.results) if (result.flags_checked === false) count += 1;
  }
  return count;
}

/** Return `ids` (sorted by index) with the flagged tasks first, each part keeping its order. */
export function flaggedFirst(ids, tasks) {
  const flagged = [];
  const rest = [];
  for (const id of ids) (hasFlag(tasks.get(id), "any") ? flagged : rest).push(id);
  return flagged.concat(rest);
}

/** Return true when `task` passes the grid filters. */
export function matches(task, filters) {
  if (filters.status && task.status !== filters.status) return false;
  if (filters.flag && !hasFlag(task, filters.flag)) return false;
  if (filters.q && !task.source_name.toLowerCase().includes(filters.q.toLowerCase())) return false;
  if (filters.hasResults && task.results.length === 0) return false;
  if (filters.selection === "selected" && !task.results.some((r) => r.selected)) return false;
  if (filters.selection === "unselected" && task.results.some((r) => r.selected)) return false;
  if (filters.unsaved && (task.results.length === 0 || task.results.some((r) => r.saved))) return false;
  return true;
}

/** Return the error line shown on a card: "HTTP 401 · message", the message in the page's language. */
export function errorLine(task) {
  if (!task.error) return "";
  const status = task.http_status && !task.error.startsWith("HTTP ") ? `HTTP ${task.http_status} · ` : "";
  return status + said(task, "error");
}

/** Return a task that is "unreviewed": it has results and none is selected. */
export function unreviewed(task) {
  return task.results.length > 0 && !task.results.some((r) => r.selected);
}

/** Insert `task` into `order` (task ids sorted by index) keeping it sorted; return the new position. */
export function insertSorted(order, tasks, task) {
  let low = 0;
  let high = order.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (tasks.get(order[mid]).index < task.index) low = mid + 1;
    else high = mid;
  }
  order.splice(low, 0, task.id);
  return low;
}
