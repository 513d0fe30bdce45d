// Spend on the page: what a run, a task and the last days cost (calls, images, tokens, money),
// and the profile form's prices, which price calls whose gateway reports no cost.

import { fetchJSON } from "./api.js";
import { pageLocale as locale } from "./format.js";
import { t } from "./i18n.js";
import { $ } from "./ui.js";

const PRICE_NUMBERS = ["call", "image", "input_mtok", "input_image_mtok", "output_mtok", "batch_discount"];
const DAYS = 7;

/** Return an amount of money in a currency: "$4.13", "$0.0387" (a call's cost), "4.13 ¥" for a sign Intl does not know. */
export function money(amount, currency = "USD") {
  const digits = amount !== 0 && Math.abs(amount) < 1 ? 4 : 2;
  try {
    return new Intl.NumberFormat(locale(), {
      style: "currency", currency, minimumFractionDigits: 2, maximumFractionDigits: digits,
    }).format(amount);
  } catch {
    return `${amount.toFixed(digits)} ${currency}`;
  }
}

/** Return "212 calls · $4.13" ("≥ $4.13" when some calls' cost is unknown, "3 calls" when none is known), or "". */
export function spendText(spend) {
  if (!spend || !spend.calls) return "";
  const calls = t("spend_calls", { count: spend.calls });
  if (spend.cost === null || spend.cost === undefined) return calls;
  const cost = money(spend.cost, spend.currency);
  return `${calls} · ${spend.cost_known < spend.calls ? t("spend_at_least", { cost }) : cost}`;
}

/** Return the details of a spend for a tooltip: images, tokens in and out, how many calls were priced. */
export function spendTitle(spend) {
  if (!spend || !spend.calls) return "";
  const lines = [t("spend_images", { count: spend.images }),
    t("spend_tokens", { input: spend.input_tokens.toLocaleString(locale()), output: spend.output_tokens.toLocaleString(locale()) })];
  if (spend.input_image_tokens) lines.push(t("spend_image_tokens", { count: spend.input_image_tokens.toLocaleString(locale()) }));
  lines.push(spend.cost_known ? t("spend_known", { known: spend.cost_known, count: spend.calls }) : t("spend_unknown"));
  return lines.join("\n");
}

let shownSpend = null; // the run bar's, drawn again when the language changes

/** Show a run's spend in the run bar (with no argument: the last one again, in the current language). */
export function showRunSpend(spend = shownSpend) {
  shownSpend = spend;
  const box = $("run-spend");
  box.textContent = spendText(spend);
  box.title = spendTitle(spend);
  box.hidden = !box.textContent;
}

/** Show today's spend under the run history, with the last days per profile in its tooltip. */
export async function refreshDaySpend() {
  const answer = await fetchJSON(`/api/spend?days=${DAYS}`).catch(() => null);
  const box = $("day-spend");
  if (!answer) return;
  const today = answer.days.find((day) => day.day === answer.to);
  box.textContent = today ? t("spend_today", { spend: today.profiles.map(spendText).join(" + ") }) : "";
  box.title = answer.days.map((day) => [day.day, ...day.profiles.map((p) => `  ${p.api_host} · ${p.model}: ${spendText(p)}`)]
    .join("\n")).join("\n");
  box.hidden = !box.textContent;
}

/** Read the profile form's prices: the numbers filled in, and the currency when one is given. */
export function readPrices() {
  const prices = {};
  for (const el of $("prices").querySelectorAll("[data-price]")) {
    const value = el.value.trim();
    if (!value) continue;
    prices[el.dataset.price] = PRICE_NUMBERS.includes(el.dataset.price) ? Number(value) : value.toUpperCase();
  }
  return prices;
}

/** Fill the profile form's prices (empty where the profile has none). */
export function writePrices(prices = {}) {
  for (const el of $("prices").querySelectorAll("[data-price]")) el.value = prices?.[el.dataset.price] ?? "";
}
