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

/** Headline and explanation for an ensemble verdict. */
export function verdictText(verdict) {
  const chance = percent(verdict.p_fake);
  if (verdict.basis === "provenance") {
    return {
      tone: "fake",
      title: "AI-generated, as the file itself declares",
      detail: `Its metadata says a generator made or edited it (see Provenance below). The models alone give ${chance} probability that it is AI-generated.`,
    };
  }
  if (verdict.uncertain) {
    const leaning = verdict.label === "FAKE" ? "AI-generated" : "a real photo";
    return {
      tone: "uncertain",
      title: "Uncertain",
      detail: `The models cannot tell with confidence. They lean towards ${leaning}: ${chance} probability that it is AI-generated.`,
    };
  }
  if (verdict.label === "FAKE") {
    return { tone: "fake", title: "Likely AI-generated", detail: `${chance} probability that it is AI-generated.` };
  }
  return { tone: "real", title: "Likely a real photo", detail: `${chance} probability that it is AI-generated.` };
}

/** One short phrase for a finished item in the results list and in announcements. */
export function verdictShort(verdict) {
  if (verdict.basis === "provenance") return "AI (declared)";
  if (verdict.uncertain) return "Uncertain";
  return verdict.label === "FAKE" ? "AI-generated" : "Real photo";
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
