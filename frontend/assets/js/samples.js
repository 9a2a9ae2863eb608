// "Try a sample": a few shipped example images, each one click from the normal upload path. The list and each
// image's source and licence come from ../samples/samples.json; an image is fetched only when its button is clicked,
// so the samples cost nothing on a first visit.
import { el } from "./dom.js";

// Beside this module, inside the same versioned assets folder: the page's host, wherever the API lives.
const SAMPLES_DIR = new URL("../samples/", import.meta.url);

async function loadSample(sample) {
  const response = await fetch(new URL(sample.file, SAMPLES_DIR));
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const blob = await response.blob();
  return new File([blob], `sample-${sample.file}`, { type: blob.type || "image/jpeg" });
}

/** Fill `container` with one button per sample; a click hands its image to `onFiles([file])`, as an upload would. */
export async function initSamples({ container, onFiles }) {
  let manifest;
  try {
    const response = await fetch(new URL("samples.json", SAMPLES_DIR));
    manifest = await response.json();
  } catch {
    return; // no samples: the page works as before
  }
  const status = el("p", { class: "muted text-xs", role: "status" });
  const buttons = manifest.samples.map((sample) =>
    el("button", {
      type: "button",
      class: "btn",
      dataset: { sample: sample.file },
      title: `${sample.source}. Licence: ${sample.licence}.`,
      text: sample.title,
      on: {
        click: async (event) => {
          const button = event.currentTarget;
          button.disabled = true;
          status.textContent = "";
          try {
            onFiles([await loadSample(sample)]);
          } catch {
            status.textContent = "The sample could not be loaded. Reload the page to try again.";
          } finally {
            button.disabled = false;
          }
        },
      },
    }),
  );
  const credits = el(
    "details",
    { class: "muted text-xs" },
    el("summary", { text: "Where the samples come from" }),
    el("ul", { class: "mt-2 list-disc space-y-1 pl-5" },
      manifest.samples.map((sample) => el("li", { text: `${sample.title}: ${sample.source}. ${sample.licence}.` }))),
  );
  container.replaceChildren(
    el("p", { class: "text-sm font-medium", text: "No image at hand? Try a sample:" }),
    el("div", { class: "flex flex-wrap gap-2" }, buttons),
    status,
    credits,
  );
  container.hidden = false;
}
