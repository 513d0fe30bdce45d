// The API profile panel: every profile field, presets, key handling, config import/export,
// and the connection test.

import { fetchJSON, urls } from "./api.js";
import { said, t } from "./i18n.js";
import { PresetPicker } from "./presets.js";
import { bound, rule } from "./rules.js";
import { readPrices, writePrices } from "./spend.js";
import { $, attempt, confirmed, toast } from "./ui.js";

const NUMBERS = ["temperature", "max_tokens", "n", "concurrency", "max_retries", "timeout_s", "rate_limit_wait_s", "source_max_side", "source_max_bytes",
  "batch_poll_s", "batch_max_requests"];
const OPTIONAL_NUMBERS = new Set(["temperature", "max_tokens", "n"]);
const OBJECTS = ["extra_headers", "extra_body"];
const FLAGS = ["stream", "allow_private_api", "allow_private_downloads", "rewrite_result_host"];

let presets = null;

/** Read the form into profile fields; throws with a readable message on bad JSON. An empty key
 * field is left out: the server then keeps the stored key (it only ever sends us a mask). */
export function readProfile(form = $("api-form")) {
  const data = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.name === "api_key") {
      if (el.value.trim()) data.api_key = el.value.trim();
    } else if (FLAGS.includes(el.name)) data[el.name] = el.checked;
    else if (NUMBERS.includes(el.name)) data[el.name] = el.value === "" ? (OPTIONAL_NUMBERS.has(el.name) ? null : undefined) : Number(el.value);
    else if (OBJECTS.includes(el.name)) data[el.name] = parseObject(el.name, el.value);
    else data[el.name] = el.value;
  }
  for (const key of Object.keys(data)) if (data[key] === undefined) delete data[key];
  if (form === $("api-form")) Object.assign(data, { key_pool: readPool(), prices: readPrices() });
  return data;
}

// The key pool: a row per extra key. Its inputs have no `name`, so the loops over the
// form's fields leave them alone. A stored key shows only its mask; an untouched row sends the
// mask back, which the server reads as "keep this stored key".

function readPool() {
  return [...$("key-pool-rows").children].map((row) => {
    const field = (name) => row.querySelector(`[data-field=${name}]`).value.trim();
    const concurrency = field("concurrency");
    return { api_key: field("api_key") || row.dataset.masked || "", api_url: field("api_url"),
             concurrency: concurrency === "" ? null : Number(concurrency) };
  });
}

function writePool(entries = []) {
  $("key-pool-rows").replaceChildren(...entries.map(poolRow));
  countPool();
}

function poolRow(entry = {}) {
  const row = document.createElement("div");
  row.className = "pool-row";
  row.dataset.testid = "pool-row";
  row.dataset.masked = entry.api_key || "";
  const input = (field, type, label, extra = {}) => {
    const el = Object.assign(document.createElement("input"), { type, spellcheck: false, autocomplete: "off", ...extra });
    el.dataset.field = field;
    el.setAttribute("aria-label", t(label));
    el.placeholder = t(label);
    return el;
  };
  const key = input("api_key", "password", "key_pool_key", { autocomplete: "new-password" });
  if (entry.api_key) key.placeholder = t("key_pool_stored", { mask: entry.api_key });
  const url = input("api_url", "text", "key_pool_url", { value: entry.api_url || "" });
  const concurrency = bound(input("concurrency", "number", "key_pool_concurrency", { value: entry.concurrency ?? "" }), "profile.concurrency");
  const remove = Object.assign(document.createElement("button"), { type: "button", className: "small danger", textContent: "✕" });
  remove.title = t("key_pool_remove");
  remove.addEventListener("click", () => {
    row.remove();
    countPool();
  });
  const line = () => Object.assign(document.createElement("div"), { className: "row" });
  const first = line(), second = line();
  first.append(key, remove);
  second.append(url, concurrency);
  row.append(first, second);
  return row;
}

function addPoolKey() {
  const row = poolRow();
  $("key-pool-rows").append(row);
  countPool();
  row.querySelector("input").focus();
}

function countPool() {
  const count = $("key-pool-rows").children.length;
  $("key-pool-count").textContent = count ? t("key_pool_count", { count }) : "";
}

function parseObject(name, text) {
  if (!text.trim()) return {};
  try {
    const value = JSON.parse(text);
    if (value && typeof value === "object" && !Array.isArray(value)) return value;
  } catch (err) {
    throw new Error(t("form_json_bad", { field: t(name), said: err.message }));
  }
  throw new Error(t("form_json_not_object", { field: t(name) }));
}

/** Put profile fields into the form; the key field stays empty and its placeholder says whether a key is stored. */
export function writeProfile(profile, form = $("api-form")) {
  for (const el of form.elements) {
    if (!el.name || !(el.name in profile)) continue;
    const value = profile[el.name];
    if (el.name === "api_key") showKeyState(el, Boolean(value));
    else if (FLAGS.includes(el.name)) el.checked = Boolean(value);
    else if (OBJECTS.includes(el.name)) el.value = value && Object.keys(value).length ? JSON.stringify(value, null, 1) : "";
    else el.value = value ?? "";
  }
  if (form === $("api-form") && "key_pool" in profile) writePool(profile.key_pool);
  if (form === $("api-form") && "prices" in profile) writePrices(profile.prices);
  if (form === $("api-form")) showDelivery();
}

/** Show the batch settings (poll interval, requests per batch, discount) only while Delivery is batch. */
function showDelivery() {
  const form = $("api-form");
  form.dataset.delivery = form.elements.delivery.value;
}

/** Empty the key field (never the mask) and let its placeholder tell whether a key is stored. */
function showKeyState(input, stored) {
  input.value = "";
  input.dataset.i18nPlaceholder = stored ? "key_stored" : "key_none";
  input.placeholder = t(input.dataset.i18nPlaceholder);
  input.closest("label").classList.toggle("key-stored", stored);
}

// The example URL and model the empty fields show, by API mode (Gemini's look different).
const EXAMPLES = {
  gemini: ["https://generativelanguage.googleapis.com/v1beta", "gemini-2.5-flash-image"],
  other: ["http://127.0.0.1:8000/v1", "grok-imagine-1.0-edit"],
};

function showExamples() {
  const form = $("api-form");
  const [url, model] = EXAMPLES[form.elements.api_mode.value] || EXAMPLES.other;
  form.elements.api_url.placeholder = url;
  form.elements.model.placeholder = model;
}

/** Show settings the server answered, and tell the page (the guided start listens). */
function showSettings(settings) {
  writeProfile(settings.api);
  showExamples();
  document.dispatchEvent(new CustomEvent("ibc:settings", { detail: settings }));
  return settings;
}

async function loadSettings() {
  return showSettings(await fetchJSON("/api/settings"));
}

async function saveSettings(event) {
  event.preventDefault();
  await attempt(async () => showSettings(await fetchJSON("/api/settings", { method: "PUT", body: { api: readProfile() } })
    .catch(pointAtDelivery)), t("saved"));
}

/** Unfold Advanced and point at Delivery when the server refuses batch delivery (a mode without a batch route); rethrow.
 * The server's English text names the field first, whatever language the page shows the message in. */
function pointAtDelivery(err) {
  const select = $("api-form").elements.delivery;
  const refused = err.status === 400 && /^delivery\b/.test(err.data?.error || err.message || "");
  select.toggleAttribute("aria-invalid", refused);
  if (refused) {
    $("advanced").open = true;
    select.focus();
  }
  throw err;
}

/** Make a preset the stored settings on the server (its key included) and show them. */
async function applyPreset(name) {
  const url = `${urls.preset("api", name)}/apply`;
  await attempt(async () => showSettings(await fetchJSON(url, { method: "POST", body: {} })), t("applied", { name }));
}

function toggleKey() {
  const input = $("api-form").elements.api_key;
  input.type = input.type === "password" ? "text" : "password";
  $("key-toggle").textContent = t(input.type === "password" ? "show" : "hide");
}

async function clearKey() {
  if (!confirmed("confirm_clear_key")) return;
  await attempt(async () => showSettings(await fetchJSON("/api/settings", { method: "PUT", body: { api: { api_key: "" } } })), t("saved"));
}

let lastConnection = null; // the last Test connection answer, shown again in a new language

async function testConnection() {
  const output = $("connection-output");
  output.hidden = false;
  output.textContent = "…";
  const answer = await attempt(() => fetchJSON("/api/test-connection", { method: "POST", body: { api: readProfile() } }));
  if (!answer) return (output.hidden = true);
  lastConnection = answer;
  showConnection(answer);
  document.dispatchEvent(new CustomEvent("ibc:connection", { detail: { ok: answer.ok } }));
  $("model-list").replaceChildren(...answer.models.map((id) => new Option(id)));
}

/** Show a Test connection answer in the page's language. */
function showConnection(answer) {
  const output = $("connection-output");
  const first = answer.models.length || !answer.keys
    ? t("connection_ok", { status: answer.http_status, count: answer.models.length, models: answer.models.slice(0, 20).join(", ") })
    : "";
  const keys = (answer.keys || []).map((key) => t(key.ok ? "key_test_ok" : "key_test_failed",
    { ...key, key: said(key, "key"), error: said(key), status: key.http_status }));
  output.textContent = answer.ok || answer.keys ? [first, ...keys].filter(Boolean).join("\n") : t("connection_failed", { error: said(answer) });
  output.classList.toggle("is-error", !answer.ok);
}

/** Show what the profile panel words itself (not from the page's markup) in the language just chosen. */
export function retranslateProfile() {
  if (lastConnection && !$("connection-output").hidden) showConnection(lastConnection);
}

async function importConfig(event) {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  await attempt(async () => {
    let data;
    try {
      data = JSON.parse(await file.text());
    } catch (err) {
      throw new Error(t("import_bad_json", { name: file.name, said: err.message }));
    }
    await fetchJSON("/api/config/import", { method: "POST", body: data });
    await Promise.all([loadSettings(), presets.load()]);
    document.dispatchEvent(new CustomEvent("ibc:config-imported")); // saved prompts come with it
  }, t("imported"));
}

/** Unfold the sections around a field the browser refuses, so it can focus it and say why. */
function revealInvalid(event) {
  for (let fold = event.target.closest("details"); fold; fold = fold.parentElement.closest("details")) fold.open = true;
}

/** Wire the panel and load the stored settings; return them. */
export async function initProfilePanel() {
  $("api-form").addEventListener("submit", saveSettings);
  $("api-form").addEventListener("invalid", revealInvalid, true);
  $("api-form").elements.api_mode.addEventListener("change", showExamples);
  $("api-form").elements.delivery.addEventListener("change", () => {
    $("api-form").elements.delivery.removeAttribute("aria-invalid");
    showDelivery();
  });
  presets = new PresetPicker("api", $("api-preset"), { read: () => readProfile(), apply: applyPreset });
  presets.wire($("api-preset-apply"), $("api-preset-save"), $("api-preset-delete"));
  $("key-toggle").addEventListener("click", toggleKey);
  $("key-clear").addEventListener("click", clearKey);
  $("key-pool-add").addEventListener("click", addPoolKey);
  $("prices").querySelector("[data-price=batch_discount]").placeholder = String(rule("batch.batch_discount_default")); // empty: the default
  $("test-connection").addEventListener("click", testConnection);
  $("config-export").addEventListener("click", () => (window.location.href = "/api/config/export"));
  $("config-import").addEventListener("change", importConfig);
  const [settings] = await Promise.all([loadSettings(), presets.load()]).catch((err) => {
    toast(err.message, "error");
    return [null];
  });
  if (settings && !settings.api.api_url) $("api-panel").open = true;
  return settings;
}
