// "Try a sample": a few shipped example images, each one click from the normal upload path. The buttons are in the
// markup (drawn with the page, so nothing moves when this runs); each image's source and licence come from
// ../samples/samples.json, imported with the module graph. An image is fetched only when its button is clicked, so
// the samples cost nothing on a first visit.
import { el } from "./dom.js";
import manifest from "../samples/samples.json" with { type: "json" };

// Beside this module, inside the same versioned assets folder: the page's host, wherever the API lives.
const SAMPLES_DIR = new URL("../samples/", import.meta.url);

async function loadSample(sample) {
  const response = await fetch(new URL(sample.file, SAMPLES_DIR));
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const blob = await response.blob();
  return new File([blob], `sample-${sample.file}`, { type: blob.type || "image/jpeg" });
}

/** Wire the sample buttons in `container`: a click hands that image to `onFiles([file])`, as an upload would. */
export function initSamples({ container, onFiles }) {
  const status = container.querySelector("#sample-status");
  const byFile = new Map(manifest.samples.map((sample) => [sample.file, sample]));
  for (const button of container.querySelectorAll("button[data-sample]")) {
    const sample = byFile.get(button.dataset.sample);
    if (!sample) continue;
    button.title = `${sample.source}. Licence: ${sample.licence}.`;
    button.addEventListener("click", async () => {
      button.disabled = true;
      status.hidden = true;
      try {
        onFiles([await loadSample(sample)]);
      } catch {
        status.textContent = "The sample could not be loaded. Reload the page to try again.";
        status.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
  }
  container.querySelector("#sample-credits").replaceChildren(
    ...manifest.samples.map((sample) => el("li", { text: `${sample.title}: ${sample.source}. ${sample.licence}.` })),
  );
}
