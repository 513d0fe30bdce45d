// The guided start: three numbered steps shown while no API URL is stored (issue 8). It follows
// what the person does (connection tested, folder typed) and goes away once a URL is saved.

import { $ } from "./ui.js";

const DISMISSED_KEY = "ibc.guide.dismissed";
const state = { connected: false, stored: false };

/** Return the step to do next: 1 connect, 2 pick a folder, 3 prompt and start (pure). */
export function currentStep({ connected, path }) {
  if (!connected) return 1;
  return path ? 3 : 2;
}

function dismissed() {
  return localStorage.getItem(DISMISSED_KEY) === "1";
}

/** Show or hide the guide and highlight the current step. */
function showGuide() {
  const guide = $("guided-start");
  guide.hidden = state.stored || dismissed();
  if (guide.hidden) return;
  const step = currentStep({ connected: state.connected, path: $("run-form").elements.input_path.value.trim() });
  for (const item of guide.querySelectorAll("[data-step]")) {
    const number = Number(item.dataset.step);
    item.classList.toggle("is-current", number === step);
    item.classList.toggle("is-done", number < step);
    if (number === step) item.setAttribute("aria-current", "step");
    else item.removeAttribute("aria-current");
  }
}

/** Bring the fields of a step into view and focus the first one to fill. */
function goToStep(step) {
  if (step === 1) {
    $("api-panel").open = true;
    const form = $("api-form");
    const empty = ["api_url", "model"].map((name) => form.elements[name]).find((el) => !el.value.trim());
    (empty || $("test-connection")).focus();
  } else {
    $("run-panel").open = true;
    $("run-form").elements[step === 2 ? "input_path" : "prompt"].focus();
  }
}

function dismiss() {
  localStorage.setItem(DISMISSED_KEY, "1");
  showGuide();
}

/** Wire the guide; `settings` are the stored ones (null when they could not be loaded). */
export function initGuide(settings) {
  state.stored = !settings || Boolean(settings.api.api_url);
  document.addEventListener("ibc:settings", (event) => {
    state.stored = Boolean(event.detail.api.api_url);
    showGuide();
  });
  document.addEventListener("ibc:connection", (event) => {
    state.connected = event.detail.ok;
    showGuide();
  });
  document.addEventListener("ibc:run-started", dismiss);
  $("run-form").elements.input_path.addEventListener("input", showGuide);
  $("guide-close").addEventListener("click", dismiss);
  for (const button of document.querySelectorAll("[data-guide]")) {
    button.addEventListener("click", () => goToStep(Number(button.dataset.guide)));
  }
  showGuide();
}
