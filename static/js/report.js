// Pure helpers for the save report: sort skipped and failed entries into reasons (each with its
// fix), and group planned files by folder. No DOM here. The server's words come with their code
// (`reason_msg`, `error_msg`) and are said in the page's language.

import { message, said } from "./i18n.js";

// Reasons a person must act on ("refused") versus the rule's own choices ("skipped").
const REFUSED = new Set(["aspect", "missing", "damaged", "source", "rule", "write", "inputs", "no_source", "other_error"]);

/** Return the reason kind of a skipped or error entry of the save answer (the server names it). */
export function reasonKind(entry) {
  if (entry.kind) return entry.kind;
  const text = entry.reason || entry.error || "";
  if (entry.source_size || text.startsWith("aspect ratio")) return "aspect";
  if (text.startsWith("exists")) return "exists";
  if (text === "no selected result") return "unselected";
  if (text.startsWith("no results")) return "no_results";
  if (text.startsWith("refused:")) return "source";
  if (/missing|cannot be|not found|no such file/i.test(text)) return "missing";
  return entry.error !== undefined ? "other_error" : "other_skip";
}

/** Return true when entries of `kind` count as refused (they need a fix), not skipped. */
export function isRefused(kind) {
  return REFUSED.has(kind);
}

/** Group entries by reason kind, in the order first seen: [[kind, [entries]]]. */
export function groupByReason(entries) {
  const groups = new Map();
  for (const entry of entries) {
    const kind = reasonKind(entry);
    if (!groups.has(kind)) groups.set(kind, []);
    groups.get(kind).push(entry);
  }
  return [...groups];
}

/** Return the counts the report leads with. */
export function reportCounts(answer) {
  const kinds = [...answer.skipped, ...answer.errors].map(reasonKind);
  const refused = kinds.filter(isRefused).length;
  return { saved: answer.saved.length, skipped: kinds.length - refused, refused };
}

/** Split a path into its folder and file name ("/a/b/c.png" -> ["/a/b", "c.png"]). */
export function splitPath(path) {
  const at = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return at < 0 ? ["", path] : [path.slice(0, at), path.slice(at + 1)];
}

/** Return the folder of `path` relative to `root` ("" for root itself, "name_target/" below it). */
export function relativeFolder(folder, root) {
  if (!root || folder === root) return "";
  const prefix = root.endsWith("/") ? root : `${root}/`;
  return folder.startsWith(prefix) ? `${folder.slice(prefix.length)}/` : `${folder}/`;
}

/** Group the saved (or planned) files by folder: [[folder, [{file, resultId}]]], folders sorted. */
export function groupByFolder(saved, root) {
  const folders = new Map();
  for (const item of saved) {
    for (const path of item.paths || []) {
      const [folder, file] = splitPath(path);
      const key = relativeFolder(folder, root);
      if (!folders.has(key)) folders.set(key, []);
      folders.get(key).push({ file, entry: item });
    }
  }
  return [...folders].sort(([a], [b]) => a.localeCompare(b));
}

/** Return an entry's files relative to the output folder ("a_target/a.png, a_target/a.txt"), at most `shown`. */
export function fileNames(paths, root = "", shown = 4) {
  const names = (paths || []).map((path) => {
    const [folder, file] = splitPath(path);
    return relativeFolder(folder, root) + file;
  });
  return names.length > shown ? `${names.slice(0, shown).join(", ")}, …` : names.join(", ");
}

/** Return the detail shown after an entry's source name; `earlier(files)` words the files of an earlier save. */
export function entryDetail(entry, kind, earlier = (files) => files, root = "") {
  if (kind === "aspect" && entry.source_size && entry.result_size) {
    const percent = typeof entry.difference === "number" ? ` (${Math.round(entry.difference * 1000) / 10}%)` : "";
    return `${entry.source_size.join("×")} → ${entry.result_size.join("×")}${percent}`;
  }
  if (kind === "exists") return entry.reason_msg?.params?.path ?? (entry.reason || "").replace(/^exists:\s*/, "");
  if (kind === "saved_before") return entry.paths && entry.paths.length ? earlier(fileNames(entry.paths, root)) : "";
  if (kind === "unselected") return "";
  const field = entry.reason !== undefined ? "reason" : "error";
  const msg = entry[`${field}_msg`];
  if (msg?.code === "saving.refused" && msg.params?.reason !== undefined) { // the group's title says "refused"
    const reason = msg.params.reason;
    return reason && typeof reason === "object" ? message(reason.text, reason) : String(reason);
  }
  return said(entry, field).replace(/^refused:\s*/, "");
}

/** Return what a save repaired before writing (a killed save's half-written items, temp files), or null. */
export function repairedLine(report) {
  const repaired = report && report.repaired;
  if (!repaired || !(repaired.interrupted || repaired.items || repaired.temp_files)) return null;
  // A killed save may have left nothing on disk (each writer still encoding): its unfinished items are still named.
  return { items: repaired.unfinished, files: repaired.files, temps: repaired.temp_files };
}

/** Return how to show a save job's progress: the i18n key, its values and the bar's percent. */
export function progressLine(job) {
  const total = job.total || 0;
  const percent = total ? Math.min(100, Math.round((100 * job.done) / total)) : 0;
  const key = job.phase === "planning" ? "save_planning" : "save_writing";
  return { key, vars: { done: job.done, total, saved: job.saved }, percent: job.phase === "planning" ? 0 : percent };
}
