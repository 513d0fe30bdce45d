// Talk to the server: one fetchJSON helper and the URL builders (pure).

import { said, t } from "./i18n.js";

/** An error answer from the API, carrying the server's readable message. */
export class ApiError extends Error {
  constructor(message, status, data = null, route = "") {
    super(message);
    this.status = status;
    this.data = data; // the whole answer: a refusal may list bad rows or files
    this.route = route; // "METHOD /path": the same request answered later says the problem is gone
  }
}

/** Return the request's "METHOD /path" (no query): what an error and a later success are matched by. */
export function route(method, url) {
  return `${method.toUpperCase()} ${url.split("?")[0]}`;
}

const successListeners = [];

/** Call `listener(route)` after every successful answer. */
export function onSuccess(listener) {
  successListeners.push(listener);
}

/** Tell the listeners that the request `route` succeeded (for requests sent without fetchJSON). */
export function tellSuccess(routeKey) {
  for (const listener of successListeners) listener(routeKey);
}

const connectionListeners = [];

/** Call `listener(answered)` after every request: true when the server answered, false when it did not. */
export function onConnection(listener) {
  connectionListeners.push(listener);
}

const accessListeners = [];

/** Call `listener(allowed)` after every answer: false when the server wants its access token (401). */
export function onAccess(listener) {
  accessListeners.push(listener);
}

function tellConnection(answered) {
  for (const listener of connectionListeners) listener(answered);
}

/** Fetch JSON; send `body` as JSON; throw ApiError with the server's message on failure. */
export async function fetchJSON(url, { method = "GET", body } = {}) {
  const options = { method, headers: { Accept: "application/json" } };
  const key = route(method, url);
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let answer;
  try {
    answer = await fetch(url, options);
  } catch (err) {
    tellConnection(false);
    throw new ApiError(t("network_error", { detail: err.message }), 0, null, key);
  }
  tellConnection(true);
  for (const listener of accessListeners) listener(answer.status !== 401);
  const data = await answer.json().catch(() => null);
  if (!answer.ok) {
    throw new ApiError((data && data.error && said(data)) || t("http_failed", { status: answer.status }), answer.status, data, key);
  }
  tellSuccess(key);
  return data;
}

/** Build a query string from the set (non-empty) values of `params`. */
export function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return pairs.length ? "?" + new URLSearchParams(pairs).toString() : "";
}

export const urls = {
  tasks: (runId, params) => `/api/runs/${encodeURIComponent(runId)}/tasks${query(params)}`,
  run: (runId) => `/api/runs/${encodeURIComponent(runId)}`,
  runAction: (runId, action) => `/api/runs/${encodeURIComponent(runId)}/${action}`,
  task: (taskId) => `/api/tasks/${encodeURIComponent(taskId)}`,
  taskAction: (taskId, action) => `/api/tasks/${encodeURIComponent(taskId)}/${action}`,
  source: (taskId, thumb) => `/api/tasks/${encodeURIComponent(taskId)}/source${thumb ? "?thumb=1" : ""}`,
  result: (resultId) => `/api/results/${encodeURIComponent(resultId)}`,
  image: (resultId, thumb) => `/api/results/${encodeURIComponent(resultId)}/image${thumb ? "?thumb=1" : ""}`,
  preset: (kind, name) => `/api/presets/${kind}/${encodeURIComponent(name)}`,
  table: (runId, kind, lang) => `/api/runs/${encodeURIComponent(runId)}/export.${kind}${query({ lang })}`,
  reference: (taskId, number, thumb) => `/api/tasks/${encodeURIComponent(taskId)}/references/${number}${thumb ? "?thumb=1" : ""}`,
  zip: (runId, onlySelected, lang) =>
    `/api/runs/${encodeURIComponent(runId)}/export.zip${query({ only_selected: onlySelected ? "1" : "", lang })}`,
};
