// Results survive a reload of the tab (sessionStorage: this tab only, gone when it closes). The images themselves
// are kept only when small, as data URLs for the preview; a restored result without one says so.
import { leanResult } from "./report.js";

const KEY = "detector-results";
const PREVIEW_MAX_BYTES = 256 * 1024;

function readAsDataUrl(file) {
  return new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => resolve(null);
    reader.readAsDataURL(file);
  });
}

/** Keep a small image's bytes with its result, so its preview comes back after a reload. */
async function keepPreview(item) {
  if (item.preview !== undefined) return;
  item.preview = item.file && item.file.size <= PREVIEW_MAX_BYTES ? await readAsDataUrl(item.file) : null;
}

let timer = 0;

/**
 * Store the finished items (debounced); when the tab's quota is short, without previews, then without the heatmaps,
 * then not at all.
 */
export function saveSession(items) {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    const done = items.filter((item) => item.status === "done");
    await Promise.all(done.map(keepPreview));
    const entries = done.map((item) => ({ name: item.name, result: item.result, preview: item.preview ?? null,
      roundTripMs: item.roundTripMs }));
    const attempts = [entries, entries.map((entry) => ({ ...entry, preview: null })),
      entries.map((entry) => ({ ...entry, preview: null, result: leanResult(entry.result) }))];
    try {
      if (!done.length) {
        sessionStorage.removeItem(KEY);
        return;
      }
      for (const attempt of attempts) {
        try {
          sessionStorage.setItem(KEY, JSON.stringify(attempt));
          return;
        } catch {
          // over the quota: try with less
        }
      }
      sessionStorage.removeItem(KEY);
    } catch {
      // storage disabled: results simply do not survive a reload
    }
  }, 200);
}

/** The entries stored by saveSession in this tab, or none. */
export function loadSession() {
  try {
    const entries = JSON.parse(sessionStorage.getItem(KEY) ?? "[]");
    return Array.isArray(entries) ? entries.filter((entry) => entry?.result?.verdict) : [];
  } catch {
    return [];
  }
}
