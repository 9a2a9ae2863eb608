// Wires the page together: service status, upload sources, the analysis queue, and the panels that show it.
import { renderAbout, renderAboutUnavailable } from "./about.js";
import { apiBase, getModels, getReady, predict } from "./api.js";
import { initHeatmapControls } from "./heatmap.js";
import { describeError, limitsText, verdictText } from "./messages.js";
import { AnalysisQueue } from "./queue.js";
import { renderDetail, renderList } from "./render.js";
import { initSamples } from "./samples.js";
import { initThemeToggle } from "./theme.js";
import { initUpload } from "./upload.js";
import { checkFile, DEFAULT_LIMITS } from "./validate.js";

const $ = (id) => document.getElementById(id);

let limits = DEFAULT_LIMITS;
let selectedId = null;

// Re-setting identical text is not announced, so clear first and write on the next frame.
function announce(text) {
  const region = $("announcer");
  region.textContent = "";
  requestAnimationFrame(() => {
    region.textContent = text;
  });
}

function setServiceStatus(state, text, title = text) {
  const pill = $("service-status");
  pill.dataset.state = state;
  pill.title = title;
  $("service-status-text").textContent = text;
}

const queue = new AnalysisQueue(async (file, signal) => {
  await checkFile(file, limits);
  return predict(file, { signal });
});

function render() {
  renderList($("queue-list"), queue.items, selectedId, select);
  renderDetail(queue.get(selectedId), limits);
  const total = queue.items.length;
  $("queue-empty").hidden = total > 0;
  $("clear-queue").hidden = total === 0;
  $("queue-count").textContent = total ? `(${total})` : "";
}

function select(id) {
  selectedId = id;
  render();
}

queue.addEventListener("change", ({ detail: item }) => {
  render();
  if (!item) return;
  if (item.status === "done") {
    const { title, detail } = verdictText(item.result.verdict);
    announce(`${item.name}: ${title}. ${detail}`);
  } else if (item.status === "error") {
    const { title, detail } = describeError(item.error, limits);
    announce(`${item.name}: ${title}. ${detail}`);
    // The service went away or lost its models after it was ready: say so in the header too, until it is back.
    if (item.error.kind === "network" || item.error.status === 503) watchService();
  }
});

function addFiles(files) {
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
  $("limits-text").textContent = limitsText(limits);
  // Browsers match `accept` against names and guessed types; the bytes are still checked before upload.
  $("file-input").accept = limits.media_types.join(",");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let watching = false;
let detailsLoaded = false;

// Poll readiness until the models are loaded, then fetch their details and the limits (once per page).
async function watchService() {
  if (watching) return;
  watching = true;
  let delay = 1000;
  for (;;) {
    try {
      await getReady();
      setServiceStatus("ready", "Ready", "The models are loaded");
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
    delay = Math.min(delay * 1.5, 10000);
  }
  watching = false;
  if (detailsLoaded) return;
  try {
    const models = await getModels();
    applyLimits(models.limits);
    renderAbout(models);
    detailsLoaded = true;
  } catch {
    renderAboutUnavailable("The model details could not be loaded. Reload the page to try again.");
  }
}

initThemeToggle($("theme-toggle"));
initHeatmapControls();
initUpload({ dropZone: $("drop-zone"), fileInput: $("file-input"), onFiles: addFiles });
initSamples({ container: $("samples"), onFiles: addFiles });
$("retry-button").addEventListener("click", () => queue.retry(selectedId));
$("clear-queue").addEventListener("click", () => {
  queue.clear();
  selectedId = null;
  render();
  $("drop-zone").focus();
});
$("api-docs-link").href = `${apiBase()}/api/openapi.json`;
render();
watchService();
