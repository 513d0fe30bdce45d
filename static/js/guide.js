// The guided start: three numbered steps for a first run. It follows what the person
// does (profile saved or connection tested, folder, prompt or table typed, in the run form's mode)
// and stays until the first run starts or it is hidden; saving the profile is only step 1.

import { translate } from "./i18n.js";
import { currentMode } from "./sources.js";
import { $ } from "./ui.js";

const DISMISSED_KEY = "ibc.guide.dismissed";
// stored: an API URL is saved; returning: one was saved before this page opened (with runs, the
// guide has nothing to teach); unavailable: the settings could not be read.
const state = { connected: false, stored: false, returning: false, hasRuns: false, unavailable: false };

// Per mode of the run form: the field step 2 fills, the one step 3 goes to, and the steps' words.
const STEPS = {
  edit: { fill: "input_path", then: "prompt", words: ["guide_2", "guide_2_text", "guide_3", "guide_3_text"] },
  generate: { fill: "prompt", then: null, words: ["guide_2_generate", "guide_2_generate_text", "guide_3_start",
    "guide_3_generate_text"] },
  table: { fill: "table_path", then: null, words: ["guide_2_table", "guide_2_table_text", "guide_3_start",
    "guide_3_table_text"] },
};

/** Return the step to do next: 1 connect, 2 fill the mode's field, 3 start (pure). */
export function currentStep({ connected, filled }) {
  if (!connected) return 1;
  return filled ? 3 : 2;
}

function steps() {
  return STEPS[currentMode()] || STEPS.edit;
}

function dismissed() {
  return localStorage.getItem(DISMISSED_KEY) === "1";
}

/** Show or hide the guide and highlight the current step. */
function showGuide() {
  const guide = $("guided-start");
  guide.hidden = state.unavailable || (state.returning && state.hasRuns) || dismissed();
  if (guide.hidden) return;
  const { fill, words } = steps();
  const step = currentStep({ connected: state.connected || state.stored, filled: $("run-form").elements[fill].value.trim() });
  const labels = guide.querySelectorAll("[data-step='2'] [data-i18n], [data-step='3'] [data-i18n]");
  labels.forEach((label, index) => { label.dataset.i18n = words[index]; });
  translate(guide);
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
    const { fill, then } = steps();
    const form = $("run-form");
    (step === 2 ? form.elements[fill] : then ? form.elements[then] : form.querySelector("[data-testid=start-run]")).focus();
  }
}

function dismiss() {
  localStorage.setItem(DISMISSED_KEY, "1");
  showGuide();
}

/** Tell the guide how many runs exist: a returning user with runs does not see it again. */
export function guideKnowsRuns(count) {
  state.hasRuns = count > 0;
  showGuide();
}

/** Wire the guide; `settings` are the stored ones (null when they could not be loaded). */
export function initGuide(settings) {
  state.unavailable = !settings;
  state.stored = Boolean(settings && settings.api.api_url);
  state.returning = state.stored;
  document.addEventListener("ibc:settings", (event) => {
    state.stored = Boolean(event.detail.api.api_url);
    showGuide();
  });
  document.addEventListener("ibc:connection", (event) => {
    state.connected = event.detail.ok;
    showGuide();
  });
  document.addEventListener("ibc:run-started", dismiss);
  $("run-form").addEventListener("input", showGuide); // the mode's field, or the mode itself
  $("run-form").addEventListener("change", showGuide);
  $("guide-close").addEventListener("click", dismiss);
  for (const button of document.querySelectorAll("[data-guide]")) {
    button.addEventListener("click", () => goToStep(Number(button.dataset.guide)));
  }
  showGuide();
}
