// The new-run form's draft, kept in this browser across reloads: the mode, the folder, the options
// and one prompt per mode, so a prompt written for Edit does not turn up in Generate (and back).

const DRAFT_KEY = "ibc.draft";
// The fields every mode keeps as they are; the prompt is kept per mode instead.
const FIELDS = ["input_path", "recursive", "sidecar", "reference_dirs", "table_path", "reference_paths", "count", "pilot", "budget"];

/** Return the draft stored in this browser (an empty one when none or unreadable). */
export function readDraft(storage = window.localStorage) {
  let draft = null;
  try {
    draft = JSON.parse(storage.getItem(DRAFT_KEY));
  } catch {
    draft = null;
  }
  if (!draft || typeof draft !== "object") draft = {};
  return { mode: typeof draft.mode === "string" ? draft.mode : "", fields: draft.fields || {}, prompts: draft.prompts || {} };
}

function checkedMode(form) {
  return form.querySelector("input[name=mode]:checked")?.value || "edit";
}

function fieldValue(element) {
  return element.type === "checkbox" ? element.checked : element.value;
}

function setField(element, value) {
  if (element.type === "checkbox") element.checked = Boolean(value);
  else element.value = String(value);
}

/** Keep the form's draft; restore it now; give each mode its own prompt when the mode changes. */
export function initDraft(form) {
  const draft = readDraft();
  // The modes that show a prompt, as the form marks them (data-modes on the prompt's label).
  const promptModes = form.elements.prompt.closest("[data-modes]").dataset.modes.split(" ");
  let mode = checkedMode(form);

  const save = () => {
    draft.mode = checkedMode(form);
    for (const name of FIELDS) if (form.elements[name]) draft.fields[name] = fieldValue(form.elements[name]);
    if (promptModes.includes(mode)) draft.prompts[mode] = form.elements.prompt.value;
    try {
      localStorage.setItem(DRAFT_KEY, JSON.stringify(draft));
    } catch {
      // a full or disabled storage only costs the draft, never the form
    }
  };

  const switchPrompt = () => {
    const next = checkedMode(form);
    if (next === mode) return;
    if (promptModes.includes(mode)) draft.prompts[mode] = form.elements.prompt.value;
    mode = next;
    if (!promptModes.includes(next)) return;
    form.elements.prompt.value = draft.prompts[next] || "";
    form.elements.prompt.dispatchEvent(new Event("input", { bubbles: true })); // generate follows {variables}
  };

  for (const name of FIELDS) {
    const element = form.elements[name];
    if (element && draft.fields[name] !== undefined) setField(element, draft.fields[name]);
  }
  const radio = form.querySelector(`input[name=mode][value="${CSS.escape(draft.mode)}"]`);
  if (radio && !radio.checked) {
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true })); // the form shows that mode's parts
  }
  mode = checkedMode(form);
  if (promptModes.includes(mode) && draft.prompts[mode]) {
    form.elements.prompt.value = draft.prompts[mode];
    form.elements.prompt.dispatchEvent(new Event("input", { bubbles: true }));
  }
  // A radio fires "input" before "change": either one may be the first news of a new mode.
  const follow = () => {
    switchPrompt();
    save();
  };
  form.addEventListener("input", follow);
  form.addEventListener("change", follow);
  form.dispatchEvent(new Event("input")); // whoever follows the form (the guide) sees the restored draft
}
