// Hand images or a whole folder over from this browser (drop on the run form, or pick): upload them
// with progress, then fill the folder field with the server's copy and preview it.

import { ApiError, route, tellSuccess } from "./api.js";
import { said, t } from "./i18n.js";
import { $, toast } from "./ui.js";

const UPLOAD_URL = "/api/uploads";
const UPLOAD_ROUTE = route("POST", UPLOAD_URL);
const UPLOAD_HEADER = "X-Console-Upload"; // the server takes multipart only with it: no cross-site form can send it
const KEPT = /\.(png|jpe?g|webp|gif|bmp|tiff?|txt)$/i; // the scan's images and their .txt captions
const SKIPPED_SHOWN = 5;

/** Return true when an upload would keep `path`: an image or caption, no hidden part. */
export function isKept(path) {
  return KEPT.test(path) && !path.split("/").some((part) => part.startsWith("."));
}

/** Return `bytes` as a short size ("3.2 MB"). */
export function size(bytes) {
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

/** Return the dropped files as {file, path}, walking dropped folders (their paths kept). */
function droppedFiles(transfer) {
  // Entries must be taken before the drop event returns: the browser empties the transfer after.
  const entries = [...transfer.items].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return Promise.resolve([...transfer.files].map((file) => ({ file, path: file.name })));
  const found = [];
  return entries.reduce((done, entry) => done.then(() => walk(entry, found)), Promise.resolve()).then(() => found);
}

async function walk(entry, found) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    found.push({ file, path: entry.fullPath.replace(/^\/+/, "") });
    return;
  }
  const reader = entry.createReader();
  for (;;) { // readEntries answers in batches until an empty one
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return;
    for (const child of batch) await walk(child, found);
  }
}

/** Return the picked files as {file, path}; a picked folder gives each file's path inside it. */
function pickedFiles(input) {
  return [...input.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
}

/** Post `items` as one multipart upload; `onProgress(loaded, total)` follows the bytes sent. */
function send(items, onProgress) {
  return new Promise((resolve, reject) => {
    const body = new FormData();
    for (const { file, path } of items) body.append("files", file, path);
    const request = new XMLHttpRequest(); // fetch cannot report upload progress
    request.open("POST", UPLOAD_URL);
    request.setRequestHeader(UPLOAD_HEADER, "1");
    request.setRequestHeader("Accept", "application/json");
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => onProgress(event.loaded, event.lengthComputable ? event.total : 0));
    request.addEventListener("load", () => {
      const data = request.response;
      if (request.status >= 200 && request.status < 300) {
        tellSuccess(UPLOAD_ROUTE);
        resolve(data);
      } else reject(new ApiError((data && data.error && said(data)) || t("http_failed", { status: request.status }), request.status, data, UPLOAD_ROUTE));
    });
    request.addEventListener("error", () => reject(new ApiError(t("upload_network"), 0, null, UPLOAD_ROUTE)));
    request.send(body);
  });
}

function report(output, lines, failed) {
  output.hidden = false;
  output.classList.toggle("is-error", failed);
  output.textContent = lines.join("\n");
}

function skippedLines(answer, leftHere) {
  const lines = [];
  const count = ((answer && answer.skipped_count) || 0) + leftHere.length;
  if (!count) return lines;
  lines.push(t("skipped", { count }));
  const shown = [...leftHere.map((item) => ({ name: item.path, reason: t("upload_not_image") })), ...((answer && answer.skipped) || [])];
  lines.push(...shown.slice(0, SKIPPED_SHOWN).map((item) => `× ${said(item, "name")}: ${said(item, "reason")}`));
  return lines;
}

/** Fill the run form with the uploaded folder, as if typed (the draft and the preview follow). */
function useFolder(form, answer) {
  const edit = form.querySelector("[data-testid=mode-edit]");
  if (!edit.checked) edit.click();
  const field = form.elements.input_path;
  field.value = answer.input_path;
  field.dispatchEvent(new Event("input", { bubbles: true }));
  field.dispatchEvent(new Event("change", { bubbles: true }));
  const recursive = form.elements.recursive;
  if (recursive.checked !== answer.recursive) {
    recursive.checked = answer.recursive;
    recursive.dispatchEvent(new Event("change", { bubbles: true }));
  }
}

async function upload(form, items) {
  if (form.classList.contains("is-uploading")) return; // one upload at a time fills the one field
  const output = $("upload-output");
  const kept = items.filter((item) => isKept(item.path));
  const left = items.filter((item) => !isKept(item.path));
  if (!kept.length) {
    report(output, [t("upload_none"), ...skippedLines(null, left)], true);
    return;
  }
  const total = kept.reduce((sum, item) => sum + item.file.size, 0);
  const progress = (loaded) => report(output, [t("upload_progress", {
    count: kept.length, done: size(Math.min(loaded, total)), total: size(total),
    percent: total ? Math.min(100, Math.floor((loaded / total) * 100)) : 100,
  })], false);
  form.classList.add("is-uploading");
  progress(0);
  let answer;
  try {
    answer = await send(kept, progress);
  } catch (err) {
    report(output, [t("upload_failed", { error: err.message }), ...skippedLines(err.data, left)], true);
    toast(err.message, "error", err.route);
    return;
  } finally {
    form.classList.remove("is-uploading");
  }
  useFolder(form, answer);
  report(output, [t("upload_done", { count: answer.count }), ...skippedLines(answer, left)], false);
  $("scan").click();
}

function carriesFiles(event) {
  return Boolean(event.dataTransfer) && [...event.dataTransfer.types].includes("Files");
}

function wireDrop(form) {
  form.addEventListener("dragover", (event) => {
    if (!carriesFiles(event) || form.classList.contains("is-uploading")) return;
    event.preventDefault();
    event.stopPropagation();
    event.dataTransfer.dropEffect = "copy";
    form.classList.add("is-dropping");
  });
  form.addEventListener("dragleave", (event) => {
    if (!form.contains(event.relatedTarget)) form.classList.remove("is-dropping");
  });
  form.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.stopPropagation();
    form.classList.remove("is-dropping");
    if (form.classList.contains("is-uploading")) return;
    droppedFiles(event.dataTransfer).then((items) => upload(form, items)).catch((err) => toast(err.message || String(err), "error"));
  });
  // A file dropped beside the form would make the browser open it and leave the console.
  for (const type of ["dragover", "drop"]) {
    document.addEventListener(type, (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "none";
    });
  }
}

function wirePicker(form, buttonId, inputId) {
  const input = $(inputId);
  $(buttonId).addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    const items = pickedFiles(input);
    input.value = ""; // picking the same folder again uploads it again
    if (items.length) upload(form, items);
  });
}

/** Wire the run form's drop zone and its file and folder pickers. */
export function initUpload() {
  const form = $("run-form");
  wireDrop(form);
  wirePicker(form, "upload-files", "upload-files-input");
  wirePicker(form, "upload-folder", "upload-folder-input");
}
