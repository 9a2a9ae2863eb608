// The "About the models" panel, from /api/models: what each model is, what it learned from, how well it did.
import { el } from "./dom.js";
import { count, percent } from "./format.js";
import { archDescription, modelName } from "./messages.js";

const $ = (id) => document.getElementById(id);

function trainedOn(model) {
  const training = model.training ?? {};
  const images = training.train_images ? `${training.train_images.toLocaleString("en")} ` : "";
  const start = training.pretrained ? `Started from ImageNet weights, then trained` : "Trained from scratch";
  if (model.profile === "photo") {
    return (
      `${start} on ${images}native-resolution crops of real photos and art and of images from about twenty ` +
      `generators (2021-2023), in ${model.input_size}×${model.input_size} tiles. It answers images larger than ` +
      `thumbnails, scored on up to ${model.tiling?.max_tiles ?? "16"} tiles spread over the image.`
    );
  }
  return (
    `${start} on ${images}CIFAKE training images at ${model.input_size}×${model.input_size} pixels: ` +
    "CIFAR-10 photos as REAL and Stable Diffusion 1.4 images as FAKE. It answers thumbnails."
  );
}

function metric(label, value, hint) {
  return el("div", { class: "stat", title: hint },
    el("dt", { class: "muted text-xs", text: label }),
    el("dd", { class: "text-lg font-semibold tabular-nums", text: value }));
}

// Test metrics are the honest figure; a model trained without a test run still shows its validation figures,
// labelled as such, rather than nothing.
function metricsBlock(model) {
  const split = model.metrics?.test ? "test" : model.metrics?.val ? "val" : null;
  if (!split) return el("p", { class: "muted mt-3 text-sm", text: "No measured accuracy is recorded for this model." });
  const measured = model.metrics[split];
  const fixed = (value) => (typeof value === "number" ? value.toFixed(3) : "–");
  return el("div", { class: "mt-3" },
    el("dl", { class: "grid grid-cols-3 gap-2", dataset: { split } },
      metric("Accuracy", typeof measured.accuracy === "number" ? percent(measured.accuracy) : "–",
        "Share of images classified correctly"),
      metric("ROC-AUC", fixed(measured.roc_auc), "How well it ranks fakes above real photos; 1 is perfect"),
      metric("ECE", fixed(measured.ece), "Calibration error: how far its probabilities are from observed rates; lower is better")),
    el("p", {
      class: "muted mt-2 text-xs",
      text: split === "test"
        ? "Measured on the held-out CIFAKE test set. ECE: calibration error, lower is better."
        : model.profile === "photo"
          ? "Measured on a validation split of the photo corpus (whole source images held out). ECE: calibration error, lower is better."
          : "Measured on a validation split of CIFAKE (no test-set figures recorded). ECE: calibration error, lower is better.",
    }));
}

function modelPanel(model) {
  const facts = [model.arch, `${count(model.parameters)} parameters`, `${model.input_size}×${model.input_size} input`];
  const pair = model.profile === "photo" ? "photos" : "thumbnails";
  return el("article", { class: "rounded-xl border border-slate-200 p-4 dark:border-slate-700",
    dataset: { model: model.name, profile: model.profile ?? "thumbnail" } },
    el("h3", { class: "font-semibold", text: `${modelName(model.name)} · ${pair}` }),
    el("p", { class: "muted text-xs", text: facts.join(" · ") }),
    el("p", { class: "mt-2 text-sm", text: archDescription(model.arch) }),
    el("p", { class: "mt-2 text-sm", text: trainedOn(model) }),
    metricsBlock(model));
}

/** Fill the panel from the /api/models body. */
export function renderAbout(body) {
  $("about-status").hidden = true;
  $("about-models").replaceChildren(...body.models.map(modelPanel));
  const { threshold, thresholds, uncertain_band: band } = body.ensemble;
  const side = body.routing?.thumbnail_max_side ?? 64;
  const photo = thresholds?.photo;
  $("about-ensemble").textContent =
    `Images up to ${side} pixels a side go to the thumbnail pair, larger ones to the photo pair. The verdict is the ` +
    `mean of the pair's calibrated probabilities: AI-generated from ${percent(threshold, 0)} up for thumbnails` +
    (typeof photo === "number" ? ` and from ${percent(photo, 0)} up for photos` : "") +
    `, and “uncertain” when it lies within ${percent(band, 0)} of that threshold.`;
}

/** Say why the panel is still empty. */
export function renderAboutUnavailable(text) {
  $("about-status").hidden = false;
  $("about-status").textContent = text;
}
