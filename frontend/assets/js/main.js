// Wires the page together: service status, upload sources, the analysis queue, and the panels that show it.
import { renderAbout, renderAboutUnavailable } from "./about.js";
import { apiBase, getModels, getReady, predict } from "./api.js";
import { describeError, isServiceFailure, limitsText, verdictText } from "./messages.js";
import { AnalysisQueue } from "./queue.js";
import { initSamples } from "./samples.js";
import { initThemeToggle } from "./theme.js";
import { initUpload } from "./upload.js";
import { checkFile, DEFAULT_LIMITS } from "./validate.js";

const $ = (id) => document.getElementById(id);

let limits = DEFAULT_LIMITS;
let selectedId = null;

// Results that arrive close together (two uploads run at once) are read out as one message, so the second does
// not cut the first off. Re-setting identical text is not announced, hence the clear before each write.
let pendingAnnouncements = [];
let announceTimer = 0;
function announce(text) {
  pendingAnnouncements.push(text);
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    const region = $("announcer");
    region.textContent = "";
    const message = pendingAnnouncements.join(" ");
    pendingAnnouncements = [];
    requestAnimationFrame(() => {
      region.textContent = message;
    });
  }, 300);
}

let serviceState = "connecting";

function setServiceStatus(state, text, title = text) {
  serviceState = state;
  const pill = $("service-status");
  pill.dataset.state = state;
  pill.title = title;
  $("service-status-text").textContent = text;
}

const queue = new AnalysisQueue(async (file, options) => {
  await checkFile(file, limits);
  return predict(file, options);
});

// Failed items that trying again could help; a cancelled upload stays cancelled until asked for by itself.
const retryable = (item) =>
  item.status === "error" && item.error.kind !== "cancelled" && describeError(item.error, limits).retry;

const actions = {
  select: (id) => select(id, { reveal: true }),
  cancel: (id) => queue.cancel(id),
  remove: (id) => {
    // The selection moves to the neighbour, and focus with it, so a keyboard reader is not dropped to the top.
    const index = queue.items.findIndex((item) => item.id === id);
    const neighbour = queue.items[index + 1] ?? queue.items[index - 1] ?? null;
    if (selectedId === id) selectedId = neighbour?.id ?? null;
    queue.remove(id);
    const next = neighbour && $("queue-list").querySelector(`li[data-id="${neighbour.id}"] .row-action`);
    (next ?? $("drop-zone")).focus();
  },
};

// The result panel's code (render.js and heatmap.js) is needed only once there is an image, so it is fetched then,
// not on a first visit: the page a newcomer downloads stays small (docs/page.md).
let view = null;
let viewLoading = null;

function loadView() {
  viewLoading ??= import("./render.js").then(
    (module) => {
      view = module;
      view.initHeatmapControls();
      const restored = queue.restore(view.loadSession());
      if (restored.length && selectedId === null) selectedId = restored[0].id;
      render();
    },
    () => {
      viewLoading = null; // tried again at the next change
    },
  );
  return viewLoading;
}

function render() {
  if (view) {
    view.renderList($("queue-list"), queue.items, selectedId, actions);
    view.renderDetail(queue.get(selectedId), limits);
    view.renderTable(queue.items, actions);
    view.saveSession(queue.items);
  } else if (queue.items.length) {
    loadView();
  }
  const total = queue.items.length;
  const failed = queue.items.filter(retryable).length;
  $("queue-empty").hidden = total > 0;
  $("clear-queue").hidden = total === 0;
  $("retry-failed").hidden = failed === 0;
  $("retry-failed").textContent = `Retry all failed (${failed})`;
  $("queue-count").textContent = total ? `(${total})` : "";
}

// Below the lg breakpoint the result panel sits above the list, often off screen when a row is picked.
const wideLayout = window.matchMedia("(min-width: 64rem)");
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

function select(id, { reveal = false } = {}) {
  selectedId = id;
  render();
  if (!reveal || wideLayout.matches) return;
  const panel = $("result-panel");
  const { top } = panel.getBoundingClientRect();
  if (top < 0 || top > window.innerHeight / 2) {
    panel.scrollIntoView({ block: "start", behavior: reducedMotion.matches ? "auto" : "smooth" });
  }
}

queue.addEventListener("progress", ({ detail: item }) => {
  if (!view) return;
  view.renderList($("queue-list"), queue.items, selectedId, actions);
  if (item.id === selectedId) $("analysing-text").textContent = `${view.progressText(item)}…`;
});

queue.addEventListener("change", ({ detail: item }) => {
  render();
  if (!item) return;
  if (item.status === "done") {
    const { title, detail } = verdictText(item.result);
    announce(`${item.name}: ${title}. ${detail}`);
  } else if (item.status === "error") {
    const { title, detail } = describeError(item.error, limits);
    announce(`${item.name}: ${title}. ${detail}`);
    // The service went away or lost its models after it was ready: say so in the header too, until it is back
    // (and then the images that failed for it are sent again).
    if (isServiceFailure(item.error)) watchService();
  }
});

// Files wait for the result view before they are sent, so every state they pass through is shown (a fast service
// would otherwise answer before the page could draw the list). The view is fetched as soon as the reader shows an
// intent to add a file (see below), so the wait is rarely felt.
async function addFiles(files) {
  await loadView();
  const notice = $("intake-notice");
  const accepted = files.slice(0, limits.max_batch_files);
  notice.hidden = accepted.length === files.length;
  notice.textContent = notice.hidden
    ? ""
    : `${files.length} files were chosen; only the first ${accepted.length} were added. Add the rest afterwards.`;
  const added = queue.add(accepted);
  select(added[0].id);
  announce(added.length === 1 ? `Analysing ${added[0].name}…` : `Analysing ${added.length} images…`);
}

function applyLimits(received) {
  limits = { ...DEFAULT_LIMITS, ...received };
  if (!limits.thumbnail_max_side) limits.thumbnail_max_side = 64;
  $("limits-text").textContent = limitsText(limits);
  // Browsers match `accept` against names and guessed types; the bytes are still checked before upload.
  $("file-input").accept = limits.media_types.join(",");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let watching = false;
let detailsLoaded = false;

// Poll readiness until the models are loaded, then fetch their details and the limits (once per page). The
// interval grows to 2 s at most, so the page sees the service back within about that.
const MAX_POLL_MS = 2000;

async function watchService() {
  if (watching) return;
  watching = true;
  let delay = 500;
  for (;;) {
    try {
      await getReady();
      const wasReady = serviceState === "ready";
      setServiceStatus("ready", "Ready", "The models are loaded");
      // Only on the way back to ready: a service that stayed up does not get a failed upload resent unasked.
      if (!wasReady) queue.retryWhere((item) => isServiceFailure(item.error));
      break;
    } catch (error) {
      if (error.kind === "network") {
        setServiceStatus("down", "Offline", "The detector service does not answer");
        if (!detailsLoaded) renderAboutUnavailable("Model details appear once the detector service answers.");
      } else {
        setServiceStatus("loading", "Not ready", error.message || "The models are not loaded yet");
        if (!detailsLoaded) renderAboutUnavailable("Model details appear once the models are loaded.");
      }
    }
    await sleep(delay);
    delay = Math.min(delay * 1.5, MAX_POLL_MS);
  }
  watching = false;
  if (detailsLoaded) return;
  try {
    const models = await getModels();
    applyLimits({ ...models.limits, thumbnail_max_side: models.routing?.thumbnail_max_side });
    renderAbout(models);
    detailsLoaded = true;
  } catch {
    renderAboutUnavailable("The model details could not be loaded. Reload the page to try again.");
  }
}

initThemeToggle($("theme-toggle"));
initUpload({ dropZone: $("drop-zone"), fileInput: $("file-input"), onFiles: addFiles });
initSamples({ container: $("samples"), onFiles: addFiles });
for (const type of ["dragenter", "paste"]) window.addEventListener(type, loadView, { once: true });
for (const type of ["pointerdown", "focusin", "pointerover"]) {
  $("drop-zone").addEventListener(type, loadView, { once: true });
  $("samples").addEventListener(type, loadView, { once: true });
}
$("retry-button").addEventListener("click", () => queue.retry(selectedId));
$("retry-failed").addEventListener("click", () => queue.retryWhere(retryable));
$("export-csv").addEventListener("click", () => view?.exportCsv(queue.items));
$("export-json").addEventListener("click", () => view?.exportJson(queue.items));
$("report-json").addEventListener("click", () => view?.downloadReport(queue.get(selectedId)));
$("report-png").addEventListener("click", () =>
  view?.downloadOverlay(queue.get(selectedId), $("heatmap-canvas"), $("heatmap-opacity").value / 100));
$("clear-queue").addEventListener("click", () => {
  queue.clear();
  selectedId = null;
  render();
  $("drop-zone").focus();
});
$("api-docs-link").href = `${apiBase()}/api/openapi.json`;
render();
// Results this tab stored before a reload (session storage holds nothing else of this page's): bring them back.
try {
  if (sessionStorage.length) loadView();
} catch {
  // storage disabled
}
watchService();
