// Named presets of one kind ("api" or "save"): a <select> with apply, save-as and delete.

import { fetchJSON, urls } from "./api.js";
import { t } from "./i18n.js";
import { attempt, confirmed, fillSelect } from "./ui.js";

export class PresetPicker {
  /** `read()` returns the form's values; applying calls `apply(name)` when given, else `write(values)`. */
  constructor(kind, select, { read, write, apply }) {
    this.kind = kind;
    this.select = select;
    this.read = read;
    this.write = write;
    this.applyByName = apply;
    this.presets = {};
  }

  /** Hook up the three buttons. */
  wire(applyButton, saveButton, deleteButton) {
    applyButton.addEventListener("click", () => this.apply());
    saveButton.addEventListener("click", () => this.save());
    deleteButton.addEventListener("click", () => this.remove());
  }

  async load() {
    this.presets = (await fetchJSON("/api/presets"))[this.kind] || {};
    fillSelect(this.select, Object.keys(this.presets).map((name) => [name, name]), "—");
  }

  apply() {
    const name = this.select.value;
    if (!(name in this.presets)) return;
    if (this.applyByName) this.applyByName(name);
    else this.write(this.presets[name]);
  }

  async save() {
    const name = window.prompt(t("preset_name"), this.select.value || "");
    if (!name) return;
    await attempt(() => fetchJSON(urls.preset(this.kind, name), { method: "PUT", body: this.read() }), t("saved"));
    await this.load();
    this.select.value = name;
  }

  async remove() {
    const name = this.select.value;
    if (!name || !confirmed("confirm_delete_preset", { name })) return;
    await attempt(() => fetchJSON(urls.preset(this.kind, name), { method: "DELETE" }), t("deleted"));
    await this.load();
  }
}
