// What a reader can take away: one image's report (a JSON of its result, and the heatmap over the image as a PNG),
// and the whole batch as CSV or JSON. Everything is built in the browser from results the page already holds.
import { el } from "./dom.js";
import { verdictText } from "./messages.js";

/** Save `blob` as a file called `name`, through a temporary link to an object URL (no request leaves the page). */
export function download(name, blob) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function stem(name) {
  return (name.replace(/\.[^.]+$/, "") || "image").replace(/[^\w.-]+/g, "_");
}

/** A result without its bulky parts (the overlay JPEG and the raw heatmap values), for exports and storage. */
export function leanResult(result) {
  if (!result.explanation) return result;
  const { image, heatmap, ...explanation } = result.explanation;
  return { ...result, explanation: { ...explanation, heatmap: heatmap && { width: heatmap.width, height: heatmap.height, tiles: heatmap.tiles } } };
}

/** The page's reading of a result, beside the service's own answer: what a report and an export record. */
export function reading(item) {
  const { state, title, detail } = verdictText(item.result);
  return { file: item.name, sha256: item.result.input.sha256, state, headline: title, detail };
}

/** One image's report: the page's reading, the service's full answer (heatmap values included), when. */
export function downloadReport(item) {
  const report = { ...reading(item), saved_at: new Date().toISOString(), result: item.result };
  download(`${stem(item.name)}-report.json`, new Blob([JSON.stringify(report, null, 2)], { type: "application/json" }));
}

function loaded(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = reject;
    image.src = src;
  });
}

/**
 * The heatmap over the image, as the overlay view shows it (the slider's opacity), as a PNG. Small images are
 * enlarged by whole pixels to at least 256 px a side; large ones are kept under 2048. Without the image itself
 * (a result restored after a reload, or a format the browser cannot show) the service's own overlay is saved.
 */
export async function downloadOverlay(item, heatmapCanvas, opacity) {
  let base = null;
  try {
    if (item.previewUrl) base = await loaded(item.previewUrl);
  } catch {
    // not shown by this browser: fall back to the service's overlay
  }
  const withHeatmap = Boolean(base);
  if (!base && item.result.explanation) base = await loaded(item.result.explanation.image);
  if (!base) return;
  const longest = Math.max(base.naturalWidth, base.naturalHeight);
  const scale = Math.min(2048 / longest, Math.max(1, Math.floor(256 / longest)));
  const canvas = el("canvas", {
    width: Math.round(base.naturalWidth * scale), height: Math.round(base.naturalHeight * scale),
  });
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = scale < 1; // enlarge a thumbnail by whole pixels, as the page shows it
  context.drawImage(base, 0, 0, canvas.width, canvas.height);
  if (withHeatmap && item.result.explanation) {
    context.imageSmoothingEnabled = true; // the heatmap's soft look, as the browser stretches it on the page
    context.globalAlpha = opacity;
    context.drawImage(heatmapCanvas, 0, 0, canvas.width, canvas.height);
  }
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  if (blob) download(`${stem(item.name)}-heatmap.png`, blob);
}
