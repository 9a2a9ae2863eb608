// Every call to the detector API goes through here, so no other module builds a URL or reads an error body.

/** A failed call. `kind` is "network" (no answer at all) or "http" (an answer with an error status). */
export class ApiError extends Error {
  constructor(kind, { status = 0, code = "", message = "" } = {}) {
    super(message || kind);
    this.name = "ApiError";
    this.kind = kind;
    this.status = status;
    this.code = code;
  }
}

/**
 * Where the API lives: `window.DETECTOR_API_BASE` if a host page sets it, else `<meta name="api-base">`, else
 * the origin that served this page. Lets the same files be hosted on another origin (the API allows CORS).
 */
export function apiBase() {
  const fromWindow = typeof window.DETECTOR_API_BASE === "string" ? window.DETECTOR_API_BASE : null;
  const fromMeta = document.querySelector('meta[name="api-base"]')?.getAttribute("content");
  return (fromWindow ?? fromMeta ?? "").trim().replace(/\/+$/, "");
}

async function request(path, init = {}) {
  let response;
  try {
    response = await fetch(`${apiBase()}${path}`, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    // fetch gives no detail on purpose (refused, DNS, CORS all look alike), so neither can we.
    throw new ApiError("network");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A proxy's HTML error page or an empty body: the status alone still says what happened.
  }
  if (!response.ok || body === null) {
    throw new ApiError("http", {
      status: response.status,
      code: body?.error?.code ?? "",
      message: body?.error?.message ?? "",
    });
  }
  return body;
}

/** Resolves once the models are loaded; an ApiError with status 503 while they are not. */
export function getReady() {
  return request("/api/ready", { cache: "no-store" });
}

/** Models' metadata and metrics, the ensemble rule, and the upload limits the server enforces. */
export function getModels() {
  return request("/api/models");
}

/**
 * Classify one image, with its Grad-CAM explanation. By XMLHttpRequest, the one browser API that reports an
 * upload's progress: `onProgress(share)` gets 0 to 1 as the bytes go. Aborting `signal` rejects with an AbortError.
 */
export function predict(file, { signal, onProgress } = {}) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DOMException("cancelled", "AbortError"));
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${apiBase()}/api/predict`);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && event.total) onProgress?.(event.loaded / event.total);
    });
    xhr.upload.addEventListener("load", () => onProgress?.(1));
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // A proxy's HTML error page or an empty body: the status alone still says what happened.
      }
      if (xhr.status >= 200 && xhr.status < 300 && body !== null) resolve(body);
      else {
        reject(new ApiError("http", {
          status: xhr.status, code: body?.error?.code ?? "", message: body?.error?.message ?? "",
        }));
      }
    });
    // Like fetch, an XHR gives no detail on purpose (refused, reset, DNS, CORS all look alike).
    xhr.addEventListener("error", () => reject(new ApiError("network")));
    xhr.addEventListener("abort", () => reject(new DOMException("cancelled", "AbortError")));
    signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    const form = new FormData();
    form.append("image", file, file.name);
    xhr.send(form);
  });
}
