// The page's address: the open run, its filters and its order live in the query string (?run=…&status=…&q=…),
// so Back and Forward move between runs and views, and a reload or a shared link opens the same view.
// The query, not a path: the server serves the page at `/` only, and a query reaches it unchanged.

import { FLAGS } from "./format.js";

const STATUSES = new Set(["", "pending", "running", "done", "failed", "stopped", "held"]);
const SELECTIONS = new Set(["", "selected", "unselected"]);
const FLAG_FILTERS = new Set(["", "any", ...FLAGS]);

/** Return the view an address names: { runId, filters } (pure; unknown values are dropped). */
export function parseAddress(search) {
  const params = new URLSearchParams(search);
  const status = params.get("status") || "";
  const selection = params.get("sel") || "";
  const flag = params.get("flag") || "";
  return {
    runId: params.get("run") || null,
    filters: {
      status: STATUSES.has(status) ? status : "",
      q: (params.get("q") || "").trim(),
      selection: SELECTIONS.has(selection) ? selection : "",
      hasResults: params.get("results") === "1",
      unsaved: params.get("unsaved") === "1",
      flag: FLAG_FILTERS.has(flag) ? flag : "",
      flaggedFirst: params.get("sort") === "flagged",
    },
  };
}

/** Return the query string (with its "?", or "" for no run) that names a view (pure). */
export function formatAddress({ runId, filters = {} }) {
  if (!runId) return "";
  const params = new URLSearchParams({ run: runId });
  if (filters.status) params.set("status", filters.status);
  if (filters.q) params.set("q", filters.q);
  if (filters.selection) params.set("sel", filters.selection);
  if (filters.hasResults) params.set("results", "1");
  if (filters.unsaved) params.set("unsaved", "1");
  if (filters.flag) params.set("flag", filters.flag);
  if (filters.flaggedFirst) params.set("sort", "flagged");
  return `?${params}`;
}

/**
 * Write a view to the address: `push` makes a new history entry (a run opened, a filter chosen),
 * otherwise the current entry is replaced (typing in the search box must not flood Back).
 */
export function writeAddress(view, { push = false } = {}) {
  const search = formatAddress(view);
  if (search === window.location.search) return;
  const url = `${window.location.pathname}${search}${window.location.hash}`;
  if (push) window.history.pushState(null, "", url);
  else window.history.replaceState(null, "", url);
}

/** Call `listener(view)` when Back or Forward lands on another entry of this page. */
export function onAddressChange(listener) {
  window.addEventListener("popstate", () => listener(parseAddress(window.location.search)));
}
