// Grad-CAM drawn in the browser from the API's raw heatmap values, so the reader can fade it over the image. The
// colours are the JET map the server uses for its own overlay image, so the overlay and side-by-side views agree.

function channel(x) {
  return Math.round(255 * Math.min(1, Math.max(0, x)));
}

/** JET colour for v in [0, 1]: dark blue (no influence), cyan, yellow, dark red (most influence). */
function jet(v) {
  return [channel(1.5 - Math.abs(4 * v - 3)), channel(1.5 - Math.abs(4 * v - 2)), channel(1.5 - Math.abs(4 * v - 1))];
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
      pixels.data[offset + 3] = 255;
    }
  }
  context.putImageData(pixels, 0, 0);
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
