// The bounds and choices the server accepts (GET /api/rules), read once on load: the page's inputs and
// its own checks take them from here, so a limit is written once, where the server enforces it.

import { fetchJSON } from "./api.js";

// What the page falls back to when the rules cannot be read (the server's as of this page's release).
const FALLBACK = {
  profile: {
    concurrency: { min: 1, max: 64, whole: true },
    batch_poll_s: { min: 1, max: 3600, whole: false },
    batch_max_requests: { min: 1, max: 50000, whole: true },
  },
  batch: { batch_discount: { min: 0, max: 1, whole: false }, batch_discount_default: 0.5 },
  compare: { variants_min: 2, variants_max: 4, name_max_chars: 40 },
  captions: { caption_max_bytes: 8192, instruction_max_bytes: 4096, find_max_chars: 1000 },
};

let rules = FALLBACK;

function at(tree, path) {
  return path.split(".").reduce((node, part) => (node == null ? undefined : node[part]), tree);
}

/** Return the rule at a dotted `path` ("profile.concurrency"), or undefined when neither the server nor the fallback has it. */
export function rule(path) {
  return at(rules, path) ?? at(FALLBACK, path);
}

/** Return a byte limit as people read it: 8192 → "8 KiB". */
export function kib(bytes) {
  return bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} bytes`;
}

/** Set `input`'s min and max (and step for whole numbers) from the bounds at `path`. */
export function bound(input, path) {
  const bounds = rule(path);
  if (!bounds) return input;
  input.min = String(bounds.min);
  if (bounds.max == null) input.removeAttribute("max");
  else input.max = String(bounds.max);
  if (bounds.whole && !input.getAttribute("step")) input.step = "1";
  return input;
}

/** Apply the rules to every input under `root` that names one: data-limit (min/max), data-maxlength. */
export function applyRules(root = document) {
  for (const input of root.querySelectorAll("[data-limit]")) bound(input, input.dataset.limit);
  for (const input of root.querySelectorAll("[data-maxlength]")) {
    const length = rule(input.dataset.maxlength);
    if (typeof length === "number") input.maxLength = length;
  }
}

/** Read the server's rules and apply them to the page; the fallback stays when they cannot be read. */
export async function loadRules() {
  try {
    rules = await fetchJSON("/api/rules");
  } catch {
    rules = FALLBACK; // an older server or no connection: the page's own attributes and fallbacks hold
  }
  applyRules();
  return rules;
}
