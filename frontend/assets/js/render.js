// Turns queue items into the results list and the detail panel. Reads state, writes DOM; never calls the API.
import { el, icon, ICONS } from "./dom.js";
import { bytes, milliseconds, percent } from "./format.js";
import { clearHeatmap, describeHeatmap, drawHeatmap, showView } from "./heatmap.js";
import {
  answerName, describeError, errorBadge, modelName, ownConfidence, provenanceText, verdictText,
} from "./messages.js";

// What main.js loads once there is an image (render.js is its entry to the result side of the page).
export { initHeatmapControls } from "./heatmap.js";
export { downloadOverlay, downloadReport, leanResult } from "./report.js";
export { loadSession, saveSession } from "./session.js";
export { exportCsv, exportJson, renderTable } from "./table.js";

const $ = (id) => document.getElementById(id);

// Enlarging a 32×32 CIFAKE image smoothly would blur exactly the pixels the models judge; show them as pixels.
function markSmall(image, width, height) {
  image.classList.toggle("pixelated", Math.max(width, height) <= 128);
}

/** "Uploading 37%" while the bytes go, then "Analysing" while the server works. */
export function progressText(item) {
  return item.progress < 1 ? `Uploading ${Math.floor(item.progress * 100)}%` : "Analysing";
}

function statusBadge(item) {
  if (item.status === "done") {
    const { tone, state, short } = verdictText(item.result);
    return el("span", { class: "badge", dataset: { tone, state }, text: short });
  }
  if (item.status === "error") {
    return el("span", { class: "badge", dataset: { tone: "error" }, text: errorBadge(item.error) });
  }
  if (item.status === "analysing") {
    return el("span", { class: "badge", dataset: { tone: "pending" } }, el("span", { class: "spinner size-3" }),
      progressText(item));
  }
  return el("span", { class: "badge", dataset: { tone: "pending" }, text: "Waiting" });
}

function rowActions(item, actions) {
  if (item.status === "queued" || item.status === "analysing") {
    return el("button", { type: "button", class: "row-action row-cancel", "aria-label": `Cancel ${item.name}`,
      title: "Cancel", on: { click: () => actions.cancel(item.id) } }, icon(ICONS.close, "size-4"));
  }
  return el("button", { type: "button", class: "row-action row-remove", "aria-label": `Remove ${item.name}`,
    title: "Remove", on: { click: () => actions.remove(item.id) } }, icon(ICONS.trash, "size-4"));
}

function thumbnail(item) {
  const fallback = el("span", { class: "thumb-fallback", hidden: true }, icon(ICONS.image, "size-5"));
  const image = el("img", {
    class: "thumb",
    src: item.previewUrl,
    alt: "",
    on: {
      load: () => markSmall(image, image.naturalWidth, image.naturalHeight),
      error: () => {
        image.hidden = true;
        fallback.hidden = false;
      },
    },
  });
  return [image, fallback];
}

/**
 * Bring the list in line with the items. Rows are updated in place and only ever appended, so a row that has
 * keyboard focus keeps it while results arrive.
 */
export function renderList(list, items, selectedId, actions) {
  const ids = new Set(items.map((item) => item.id));
  for (const row of [...list.children]) {
    if (!ids.has(Number(row.dataset.id))) row.remove();
  }
  const rows = new Map([...list.children].map((row) => [Number(row.dataset.id), row]));
  for (const item of items) {
    let row = rows.get(item.id);
    if (!row) {
      const button = el("button", { type: "button", class: "queue-row", title: item.name,
        on: { click: () => actions.select(item.id) } },
      thumbnail(item),
      el("span", { class: "min-w-0 flex-1 truncate text-left text-sm font-medium", text: item.name }),
      el("span", { class: "row-status" }));
      row = el("li", { class: "flex items-center gap-2", dataset: { id: item.id } }, button,
        el("span", { class: "row-actions contents" }));
      list.append(row);
    }
    const button = row.firstElementChild;
    const changed = row.dataset.status !== item.status;
    row.dataset.status = item.status;
    button.querySelector(".row-status").replaceChildren(statusBadge(item));
    // Rebuilt only when the status changes, so a focused cancel button is not swapped away under the reader.
    if (changed) row.querySelector(".row-actions").replaceChildren(rowActions(item, actions));
    if (item.id === selectedId) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

function showPreview(item, result) {
  const frame = $("preview-frame");
  const image = $("preview-image");
  const missing = $("preview-missing");
  const fit = (width, height) => {
    // The frame takes the image's shape, so the stretched heatmap canvas lines up with it exactly.
    frame.style.aspectRatio = `${width} / ${height}`;
    frame.style.width = `min(100%, calc(24rem * ${width / height}))`;
    markSmall(image, width, height);
  };
  if (image.dataset.itemId !== String(item.id)) {
    image.dataset.itemId = String(item.id);
    image.hidden = false;
    missing.hidden = true;
    frame.style.aspectRatio = "1 / 1";
    frame.style.width = "min(100%, 24rem)";
    image.onload = () => fit(image.naturalWidth, image.naturalHeight);
    image.onerror = () => {
      image.hidden = true;
      missing.hidden = false;
      missing.textContent = item.file
        ? "No preview: the browser cannot show this file."
        : "No preview: larger images are not kept when the page is reloaded.";
    };
    image.src = item.previewUrl;
    image.alt = `Preview of ${item.name}`;
  }
  if (result) fit(result.input.width, result.input.height);

  const original = $("side-original");
  if (original.getAttribute("src") !== item.previewUrl) original.src = item.previewUrl;
  if (result) markSmall(original, result.input.width, result.input.height);
}

function showVerdict(item) {
  const box = $("verdict");
  const title = $("verdict-title");
  const detail = $("verdict-detail");
  box.hidden = item.status === "error";
  if (item.status !== "done") {
    box.dataset.tone = "pending";
    title.textContent = item.status === "analysing" ? "Analysing…" : "Waiting in the queue…";
    detail.textContent = "The verdict appears here in a moment.";
    delete box.dataset.label;
    delete box.dataset.state;
    return;
  }
  const { verdict } = item.result;
  const text = verdictText(item.result);
  box.dataset.tone = text.tone;
  box.dataset.state = text.state;
  box.dataset.label = verdict.uncertain ? "UNCERTAIN" : verdict.label;
  title.textContent = text.title;
  detail.textContent = text.detail;
}

function showError(item, limits) {
  const box = $("result-error");
  box.hidden = item.status !== "error";
  if (box.hidden) return;
  const described = describeError(item.error, limits);
  $("result-error-title").textContent = described.title;
  $("result-error-detail").textContent = described.detail;
  $("retry-button").hidden = !described.retry;
}

function modelCard(model, explanation) {
  const tone = model.label === "FAKE" ? "fake" : "real";
  const isSource = explanation?.model === model.name;
  const headingId = `model-${model.name}-heading`;
  const chance = `${percent(model.p_fake)} chance of AI`;
  const threshold = percent(model.threshold, 0);
  return el("article", {
    class: "model-card",
    dataset: { model: model.name, tone, label: model.label, heatmapSource: String(isSource) },
    "aria-labelledby": headingId,
  },
  el("div", { class: "flex flex-wrap items-start justify-between gap-2" },
    el("h4", { id: headingId, class: "font-semibold", text: modelName(model.name) }),
    el("span", { class: "badge", dataset: { tone },
      text: `${answerName(model.label)} · ${percent(ownConfidence(model))} sure` })),
  isSource && el("p", { class: "heatmap-mark" }, icon(ICONS.flame, "size-4"), "The heatmap comes from this model"),
  el("div", {
    class: "bar mt-3",
    role: "meter",
    "aria-label": `${modelName(model.name)}: probability that the image is AI-generated`,
    "aria-valuemin": "0",
    "aria-valuemax": "100",
    "aria-valuenow": String(Math.round(model.p_fake * 100)),
    "aria-valuetext": `${chance}, threshold ${threshold}`,
  },
  el("span", { class: "bar-fill", style: `width: ${(model.p_fake * 100).toFixed(1)}%` }),
  el("span", { class: "bar-threshold", "aria-hidden": "true", style: `left: ${(model.threshold * 100).toFixed(1)}%` })),
  el("p", { class: "mt-2 text-sm" }, el("strong", { class: "tabular-nums", text: percent(model.p_fake) }),
    " chance of AI"),
  el("p", { class: "muted text-xs",
    text: `The tick is its threshold, ${threshold}: from there up it answers AI-generated.` }));
}

function showModels(item) {
  const cards = $("model-cards");
  const result = item.status === "done" ? item.result : null;
  $("models-block").hidden = !result;
  cards.replaceChildren(...(result ? result.models.map((model) => modelCard(model, result.explanation)) : []));
}

function showExplanation(item) {
  const canvas = $("heatmap-canvas");
  // A result restored after a reload may have had its heatmap left out to fit the tab's storage.
  const explanation = item.status === "done" && item.result.explanation?.heatmap?.values
    ? item.result.explanation : null;
  $("heatmap-controls").hidden = !explanation;
  $("view-side").disabled = !explanation;
  const overlay = $("side-overlay");
  if (!explanation) {
    showView("overlay");
    clearHeatmap(canvas);
    overlay.removeAttribute("src");
    $("explanation-caption").textContent = "";
    canvas.setAttribute("aria-label", "No heatmap for this image");
    showTiles(null);
    return;
  }
  const tiles = showTiles(explanation.heatmap.tiles, item.result.input);
  drawHeatmap(canvas, explanation.heatmap);
  const where = describeHeatmap(explanation.heatmap);
  canvas.setAttribute("aria-label", `Heatmap of the ${modelName(explanation.model)}'s evidence. ${where}`);
  if (overlay.getAttribute("src") !== explanation.image) overlay.src = explanation.image;
  overlay.alt = `Grad-CAM heatmap from ${modelName(explanation.model)} over the image`;
  markSmall(overlay, item.result.input.width, item.result.input.height);
  $("explanation-caption").textContent =
    `${where} ${explanation.method} for the ${modelName(explanation.model)}, the more confident model, on its ` +
    `“${answerName(explanation.target)}” answer: warm colours mark the regions that pushed it most towards that ` +
    "answer; where it had little influence, the image shows through." +
    (tiles ? ` The dashed outlines are the ${tiles} tiles of the image's own pixels the photo models scored.` : "");
}

// The photo pair scores up to 16 native-resolution tiles: outlined over the preview, in the image's own pixels.
function showTiles(tiles, input) {
  const grid = $("tile-grid");
  grid.hidden = !tiles?.length;
  if (grid.hidden) {
    grid.replaceChildren();
    return 0;
  }
  grid.setAttribute("viewBox", `0 0 ${input.width} ${input.height}`);
  grid.replaceChildren(...tiles.map(([x, y, width, height]) => {
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    for (const [name, value] of Object.entries({ x, y, width, height })) rect.setAttribute(name, String(value));
    return rect;
  }));
  return tiles.length;
}

function showProvenance(item) {
  const provenance = item.status === "done" ? item.result.provenance : null;
  $("provenance-block").hidden = !provenance;
  if (!provenance) return;
  const { rows, note } = provenanceText(provenance);
  $("provenance").replaceChildren(...rows.map(([label, value]) => el("div", { class: "stat" },
    el("dt", { class: "muted text-xs", text: label }),
    el("dd", { class: "font-semibold", text: value }))));
  $("provenance-note").textContent = note;
}

function showTiming(item) {
  const block = $("timing-block");
  block.hidden = item.status !== "done";
  if (block.hidden) return;
  const timing = item.result.timing_ms;
  const entries = [
    ["Decode", timing.decode],
    ["Models", timing.inference],
    ["Heatmap", timing.explanation],
    ["Server total", timing.total],
    ["Round trip", item.roundTripMs],
  ].filter(([, value]) => typeof value === "number");
  $("timing").replaceChildren(...entries.map(([label, value]) => el("div", { class: "stat" },
    el("dt", { class: "muted text-xs", text: label }),
    el("dd", { class: "font-semibold tabular-nums", text: milliseconds(value) }))));
  const { explanation, input } = item.result;
  $("technical-facts").textContent = [
    input.sha256 && `SHA-256 ${input.sha256}`,
    explanation && `Grad-CAM layer ${explanation.layer} of the ${modelName(explanation.model)}`,
  ].filter(Boolean).join(" · ");
}

/** Show one item in the detail panel, or the empty state when there is none. */
export function renderDetail(item, limits) {
  $("result-empty").hidden = Boolean(item);
  $("result-body").hidden = !item;
  if (!item) return;
  const result = item.status === "done" ? item.result : null;
  $("result-heading").textContent = item.name;
  $("result-heading").title = item.name;
  $("result-facts").textContent = result
    ? `${result.input.width}×${result.input.height} ${result.input.format} · ${bytes(result.input.bytes)}` +
      (result.input.frames > 1 ? ` · ${result.input.frames} frames: only the first frame was scored` : "") +
      (result.profile === "photo"
        ? ` · photo models, ${result.tiles} tiles (larger than a thumbnail)`
        : ` · thumbnail models (${limits.thumbnail_max_side ?? 64} px or less a side)`)
    : bytes(item.file.size);
  $("result-panel").setAttribute("aria-busy", String(item.status === "analysing" || item.status === "queued"));
  $("analysing-overlay").hidden = !(item.status === "analysing" || item.status === "queued");
  $("analysing-text").textContent = item.status === "queued" ? "Waiting…" : `${progressText(item)}…`;
  $("viewer").hidden = item.status === "error";

  showPreview(item, result);
  showVerdict(item);
  showError(item, limits);
  const note = $("domain-note");
  note.hidden = !result?.domain_note;
  note.textContent = result?.domain_note ?? "";
  showModels(item);
  showExplanation(item);
  showProvenance(item);
  showTiming(item);
  $("report-block").hidden = !result;
}
