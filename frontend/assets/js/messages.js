// Everything the page says in words about models, verdicts and failures, in one place so the wording stays
// consistent and no error ever reaches the reader as a status code or raw JSON.
import { bytes, percent } from "./format.js";

const MODEL_NAMES = {
  cnn: "Custom CNN",
  efficientnet: "EfficientNet-B0",
};

const ARCH_DESCRIPTIONS = {
  artifact_cnn:
    "A small convolutional network written for this project. Its first layer sees every pixel at full resolution, " +
    "where the fine pixel patterns that image generators leave behind are easiest to see.",
  efficientnet_b0:
    "EfficientNet-B0, a widely used image classifier, trained here to tell photos from generated images.",
};

/** A reader-friendly model name; unknown models keep the name the API gives them. */
export function modelName(name) {
  return MODEL_NAMES[name] ?? name;
}

/** What kind of network a model is, in a sentence or two. */
export function archDescription(arch) {
  return ARCH_DESCRIPTIONS[arch] ?? `Architecture: ${arch}.`;
}

// Two models that each are at least this sure of opposite answers disagree: their average near the threshold would
// read as "cannot tell", when in fact each can, and they contradict each other.
const DISAGREE_CONFIDENCE = 0.75;

/** How sure a model (or the verdict) is of its own answer: p_fake for AI-generated, 1 - p_fake for a real photo. */
export function ownConfidence(answer) {
  return answer.label === "FAKE" ? answer.p_fake : 1 - answer.p_fake;
}

/** A model's answer in words: "AI-generated" or "Real photo" (never the API's FAKE and REAL). */
export function answerName(label) {
  return label === "FAKE" ? "AI-generated" : "Real photo";
}

function answerPhrase(label) {
  return label === "FAKE" ? "AI-generated" : "a real photo";
}

/**
 * The one state a result is shown in, by precedence: "provenance" (the file declares an AI source), "unreliable"
 * (the service says the input is outside what the models know), "disagree" (confident models on opposite sides),
 * "uncertain" (the average close to the threshold), then "fake" or "real". The headline, the list badge and the
 * announcement all come from it.
 */
export function verdictState(result) {
  const { verdict } = result;
  const models = result.models ?? [];
  if (verdict.basis === "provenance") return "provenance";
  if (result.domain_note) return "unreliable";
  const opposite = new Set(models.map((model) => model.label)).size > 1;
  if (opposite && models.every((model) => ownConfidence(model) >= DISAGREE_CONFIDENCE)) return "disagree";
  if (verdict.uncertain) return "uncertain";
  return verdict.label === "FAKE" ? "fake" : "real";
}

const TONES = { provenance: "fake", unreliable: "uncertain", disagree: "uncertain", uncertain: "uncertain",
  fake: "fake", real: "real" };

function heatmapSentence(result) {
  const model = result.explanation?.model;
  return model ? ` The ${modelName(model)} is more confident: its heatmap is shown.` : "";
}

/** Headline, explanation, list badge and colour tone for a result, all in the same state. */
export function verdictText(result) {
  const { verdict } = result;
  const state = verdictState(result);
  const answer = answerPhrase(verdict.label);
  const chance = `${percent(ownConfidence(verdict))} probability that it is ${answer}`;
  const heatmap = heatmapSentence(result);
  const shown = { state, tone: TONES[state] };
  if (state === "provenance") {
    return { ...shown, short: "AI (declared)", title: "AI-generated, as the file itself declares",
      detail: `Its metadata says a generator made or edited it (see Provenance below). The models alone give ${percent(verdict.p_fake)} probability that it is AI-generated.${heatmap}` };
  }
  if (state === "unreliable") {
    return { ...shown, short: "Unreliable", title: "Unreliable: outside what the models know",
      detail: `${result.domain_note} Take the models' answer as a guess at most: ${chance}.${heatmap}` };
  }
  if (state === "disagree") {
    const [first, second] = result.models.map((model) =>
      `the ${modelName(model.name)} says ${answerPhrase(model.label)} (${percent(ownConfidence(model))} sure)`);
    return { ...shown, short: "Models disagree", title: "The models disagree",
      detail: `${first[0].toUpperCase()}${first.slice(1)}, ${second}. When two confident models contradict each other, neither answer can be trusted; their average gives ${chance}.${heatmap}` };
  }
  if (state === "uncertain") {
    return { ...shown, short: "Uncertain", title: "Uncertain",
      detail: `The models cannot tell with confidence. They lean towards ${answer}: ${chance}.${heatmap}` };
  }
  const whole = percent(ownConfidence(verdict), 0);
  if (state === "fake") {
    return { ...shown, short: `AI-generated · ${whole}`, title: "Likely AI-generated", detail: `${chance}.${heatmap}` };
  }
  return { ...shown, short: `Real photo · ${whole}`, title: "Likely a real photo", detail: `${chance}.${heatmap}` };
}

/** Whether this failure came from the service being away or not ready (retried when it is back). */
export function isServiceFailure(error) {
  return error.kind === "network" || error.status === 503;
}

/** The list badge for a failure: a lost connection, a refused file and a cancelled upload read differently. */
export function errorBadge(error) {
  if (error.kind === "cancelled") return "Cancelled";
  if (error.kind === "network") return "No connection";
  if (error.kind === "client") return "Rejected";
  const status = error.status ?? 0;
  if (status === 503) return "Service not ready";
  if (status === 429) return "Service busy";
  if (status >= 400 && status < 500 && status !== 408) return "Rejected";
  return "Server error";
}

function formatNames(limits) {
  return limits.formats.map((format) => (format === "WEBP" ? "WebP" : format));
}

/** ["A", "B", "C"] -> "A, B or C" */
function orList(words) {
  return words.length > 1 ? `${words.slice(0, -1).join(", ")} or ${words.at(-1)}` : words[0];
}

function serverSaid(error) {
  // Server messages are written to be shown to clients (backend/errors.py never sends internals).
  return error.message && error.kind === "http" ? ` The service said: “${error.message}”.` : "";
}

/**
 * Plain-words title and detail for anything that stopped an image from being analysed, and whether trying the
 * same file again could help.
 */
export function describeError(error, limits) {
  const accepted = orList(formatNames(limits));
  if (error.kind === "cancelled") {
    return { title: "Upload cancelled", detail: "You stopped this upload. Try again to send it.", retry: true };
  }
  if (error.kind === "network") {
    return {
      title: "Could not reach the detector service",
      detail: "The page got no answer. Check your connection, or whether the service is running, then try again.",
      retry: true,
    };
  }
  const code = error.code;
  const status = error.status ?? 0;
  if (code === "empty_file") {
    return { title: "This file is empty", detail: "Choose an image file that has something in it.", retry: false };
  }
  if (code === "image_too_large" || status === 413) {
    return {
      title: "This image is too large",
      detail: `Each image may be at most ${bytes(limits.max_upload_bytes)} and ${(limits.max_pixels / 1e6).toFixed(0)} megapixels. Try a smaller copy.${serverSaid(error)}`,
      retry: false,
    };
  }
  if (code === "unsupported_media_type" || status === 415) {
    return {
      title: "This file is not an image the detector can read",
      detail: `Use a ${accepted} image.${serverSaid(error)}`,
      retry: false,
    };
  }
  if (status === 400) {
    return {
      title: "The image could not be read",
      detail: `The file may be damaged or incomplete. Try saving it again or choose another copy.${serverSaid(error)}`,
      retry: false,
    };
  }
  if (status === 503) {
    return {
      title: "The detector is not ready",
      detail: "Its models are still loading or could not be loaded. Wait a moment, then try again.",
      retry: true,
    };
  }
  if (status === 429) {
    return { title: "Too many requests", detail: "The service is busy. Wait a moment, then try again.", retry: true };
  }
  return {
    title: "Something went wrong on the server",
    detail: `The service could not analyse this image (error ${status || "unknown"}). Try again in a moment.`,
    retry: true,
  };
}

/** The accepted formats and size, for the drop zone's hint. */
export function limitsText(limits) {
  return `${orList(formatNames(limits))}; up to ${bytes(limits.max_upload_bytes)} each and ${limits.max_batch_files} at a time.`;
}

const DECLARED = {
  "ai-generated": "made by an AI generator",
  "ai-edited": "edited with an AI generator",
  camera: "captured by a camera",
};
const SOURCES = { c2pa: "signed Content Credentials (C2PA)", xmp: "its XMP metadata", "png-text": "generator settings in its PNG text", exif: "its EXIF metadata" };

/** The provenance panel's rows ([label, value]) and what they do and do not prove. */
export function provenanceText(provenance) {
  const rows = [["Declares", provenance.declared ? `${DECLARED[provenance.declared]}, in ${SOURCES[provenance.source]}` : "nothing about its origin"]];
  if (provenance.generator) rows.push(["Generator", provenance.generator]);
  const c2pa = provenance.c2pa;
  if (c2pa) {
    rows.push(["Content Credentials", c2pa.valid ? "present; the signature and hashes hold" : `present but broken (${c2pa.codes.filter((c) => !c.startsWith("signingCredential")).join(", ") || c2pa.state})`]);
    if (c2pa.signer) rows.push(["Signed by", `${c2pa.signer}${c2pa.signed_at ? `, ${c2pa.signed_at.slice(0, 10)}` : ""} (not checked against a trust list)`]);
    if (c2pa.claim_generator) rows.push(["Signed with", c2pa.claim_generator]);
  }
  const { camera, software } = provenance.metadata;
  if (camera) rows.push(["Camera (EXIF)", camera]);
  if (software) rows.push(["Software", software]);
  let note;
  if (provenance.declared === "ai-generated" || provenance.declared === "ai-edited") {
    note = "The file declares an AI source, and the verdict takes it at its word. The declaration says who made the file, not whether its pixels look generated: the models' own reading is shown above.";
  } else if (provenance.declared === "camera") {
    note = "A camera claim is shown but does not make the verdict “real”: without a trust list such claims are easy to forge, and metadata can be copied onto any image.";
  } else if (c2pa && !c2pa.valid) {
    note = "The Content Credentials do not hold (the file changed after signing, or the signature is broken), so they are ignored.";
  } else {
    note = "Most images carry no such metadata, and it is easily stripped: its absence is not evidence either way.";
  }
  return { rows, note };
}
