// Pure helpers for formatting and filtering; no DOM here.

/** Return "45s", "3m05s" or "2h10m" for a number of seconds ("–" when unknown). */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Return a short local date and time for a UNIX timestamp. */
export function when(timestamp) {
  const date = new Date(timestamp * 1000);
  return date.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** Return true when `task` passes the grid filters. */
export function matches(task, filters) {
  if (filters.status && task.status !== filters.status) return false;
  if (filters.q && !task.source_name.toLowerCase().includes(filters.q.toLowerCase())) return false;
  if (filters.hasResults && task.results.length === 0) return false;
  if (filters.selection === "selected" && !task.results.some((r) => r.selected)) return false;
  if (filters.selection === "unselected" && task.results.some((r) => r.selected)) return false;
  return true;
}

/** Return the error line shown on a card: "HTTP 401 · message". */
export function errorLine(task) {
  if (!task.error) return "";
  const status = task.http_status && !task.error.startsWith("HTTP ") ? `HTTP ${task.http_status} · ` : "";
  return status + task.error;
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
