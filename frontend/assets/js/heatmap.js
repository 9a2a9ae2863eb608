// Grad-CAM drawn in the browser from the API's raw heatmap values, so the reader can fade it over the image. The
// colours are the JET map the server uses for its own overlay image, so the overlay and side-by-side views agree.

function channel(x) {
  return Math.round(255 * Math.min(1, Math.max(0, x)));
}

/** JET colour for v in [0, 1]: dark blue (no influence), cyan, yellow, dark red (most influence). */
function jet(v) {
  return [channel(1.5 - Math.abs(4 * v - 3)), channel(1.5 - Math.abs(4 * v - 2)), channel(1.5 - Math.abs(4 * v - 1))];
}

// Influence below FADE_FROM is left fully transparent and the colour is opaque from OPAQUE_FROM up, so the image
// shows through wherever the model did not look: JET's "no influence" blue would otherwise cover a small image.
const FADE_FROM = 0.15;
const OPAQUE_FROM = 0.6;

function alpha(v) {
  return channel((v - FADE_FROM) / (OPAQUE_FROM - FADE_FROM));
}

/**
 * Paint the heatmap at its own resolution (32×32 for CIFAKE models, up to 64 cells a side over a photo). CSS stretches the canvas over the image, and
 * the browser's smoothing while it does so gives the usual soft Grad-CAM look without resampling here.
 */
export function drawHeatmap(canvas, heatmap) {
  const { width, height, values } = heatmap;
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(width, height);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const offset = 4 * (y * width + x);
      const value = values[y][x];
      if (value === null) continue; // a part of a photo no tile covered: left transparent
      const [r, g, b] = jet(value);
      pixels.data[offset] = r;
      pixels.data[offset + 1] = g;
      pixels.data[offset + 2] = b;
      pixels.data[offset + 3] = alpha(value);
    }
  }
  context.putImageData(pixels, 0, 0);
}

const REGIONS = ["top-left", "top", "top-right", "left", "centre", "right", "bottom-left", "bottom", "bottom-right"];

/** ["a", "b", "c"] -> "a, b and c" */
function andList(words) {
  return words.length > 1 ? `${words.slice(0, -1).join(", ")} and ${words.at(-1)}` : words[0];
}

/**
 * Where the heatmap is hot, in words, for the caption and for screen readers: the image cut in a 3×3 grid, and the
 * parts whose mean influence comes close to the strongest one's. Cells no tile covered (null) do not count.
 */
export function describeHeatmap({ width, height, values }) {
  const sums = new Array(9).fill(0);
  const counts = new Array(9).fill(0);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const value = values[y][x];
      if (value === null) continue;
      const region = 3 * Math.min(2, Math.floor((3 * y) / height)) + Math.min(2, Math.floor((3 * x) / width));
      sums[region] += value;
      counts[region] += 1;
    }
  }
  const means = sums.map((sum, region) => (counts[region] ? sum / counts[region] : null));
  const scored = means.filter((mean) => mean !== null);
  if (!scored.length) return "No part of the image was scored.";
  const strongest = Math.max(...scored);
  const overall = sums.reduce((a, b) => a + b, 0) / counts.reduce((a, b) => a + b, 0);
  const hot = REGIONS.filter((_, region) => means[region] !== null && means[region] >= 0.8 * strongest);
  if (strongest <= 0 || strongest < 1.25 * overall || hot.length > 4) {
    return "The evidence is spread over the whole image, with no part standing out.";
  }
  return `Strongest evidence: ${andList(hot)}.`;
}

/** Blank the canvas (an item without an explanation, or one still being analysed). */
export function clearHeatmap(canvas) {
  canvas.width = 1;
  canvas.height = 1;
  canvas.getContext("2d").clearRect(0, 0, 1, 1);
}

const $ = (id) => document.getElementById(id);

/** Switch between the heatmap over the image ("overlay") and the original beside the server's overlay ("side"). */
export function showView(view) {
  const side = view === "side";
  $("view-overlay").setAttribute("aria-pressed", String(!side));
  $("view-side").setAttribute("aria-pressed", String(side));
  $("overlay-view").hidden = side;
  $("side-view").hidden = !side;
  // The slider only acts on the canvas, which only the overlay view shows.
  $("heatmap-opacity").disabled = side;
}

/** Wire the view switch and the opacity slider; both keep their setting from one image to the next. */
export function initHeatmapControls() {
  const slider = $("heatmap-opacity");
  const setOpacity = () => {
    $("heatmap-canvas").style.opacity = String(slider.value / 100);
    $("heatmap-opacity-value").value = `${slider.value}%`;
  };
  slider.addEventListener("input", setOpacity);
  $("view-overlay").addEventListener("click", () => showView("overlay"));
  $("view-side").addEventListener("click", () => showView("side"));
  setOpacity();
  showView("overlay");
}
