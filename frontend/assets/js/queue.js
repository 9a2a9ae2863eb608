// The list of files to analyse. Two go to the server at once, in the order they arrived, and at most one of them is
// large: a big photo on a slow link then never holds back the thumbnails behind it, and a burst of files does not
// compete with itself for the server's CPU.

let nextId = 1;

/** Two uploads in flight; a file over LARGE_BYTES takes a slot only when no other large file holds one. */
export const CONCURRENCY = 2;
export const LARGE_BYTES = 1024 * 1024;

/**
 * Holds items {id, file, name, previewUrl, status, progress, result, error, roundTripMs} where status is one of
 * "queued" | "analysing" | "done" | "error" (a cancelled upload is an error of kind "cancelled"), and progress is
 * the share of the upload sent (0 to 1) while analysing. Fires "change" (detail: the item, or null after a
 * removal or clear()) and "progress" (detail: the item) as its upload goes.
 */
export class AnalysisQueue extends EventTarget {
  /** `analyse(file, {signal, onProgress})` resolves to a prediction or throws. */
  constructor(analyse) {
    super();
    this.analyse = analyse;
    this.items = [];
    this.inFlight = new Map(); // item id -> AbortController
  }

  /** Queue files; returns the new items. */
  add(files) {
    const added = files.map((file) => ({
      id: nextId++,
      file,
      name: file.name || "unnamed image",
      previewUrl: URL.createObjectURL(file),
      status: "queued",
      progress: 0,
      result: null,
      error: null,
      roundTripMs: null,
    }));
    this.items.push(...added);
    for (const item of added) this.#changed(item);
    this.#pump();
    return added;
  }

  /** Bring back finished results stored before a reload: no file to send again, a preview only if one was kept. */
  restore(entries) {
    const restored = entries.map(({ name, result, preview, roundTripMs }) => ({
      id: nextId++, file: null, name, previewUrl: preview ?? "", preview: preview ?? null, status: "done",
      progress: 1, result, error: null, roundTripMs: roundTripMs ?? null,
    }));
    this.items.push(...restored);
    this.#changed(null);
    return restored;
  }

  /** Put back in the queue every failed item `accepts` (by default, the one with this id). */
  retryWhere(accepts) {
    const again = this.items.filter((item) => item.status === "error" && accepts(item));
    for (const item of again) {
      Object.assign(item, { status: "queued", error: null, progress: 0 });
      this.#changed(item);
    }
    this.#pump();
    return again.length;
  }

  /** Put a failed item back in the queue. */
  retry(id) {
    return this.retryWhere((item) => item.id === id);
  }

  /** Stop an item's upload (or keep it from starting): it ends as an error of kind "cancelled". */
  cancel(id) {
    const item = this.get(id);
    if (!item) return;
    const controller = this.inFlight.get(id);
    if (controller) {
      controller.abort(); // #run records the cancellation
    } else if (item.status === "queued") {
      Object.assign(item, { status: "error", error: cancelled() });
      this.#changed(item);
    }
  }

  /** Forget one item, stopping its upload if it is under way. */
  remove(id) {
    const item = this.get(id);
    if (!item) return;
    this.inFlight.get(id)?.abort();
    this.items = this.items.filter((candidate) => candidate !== item);
    if (item.file) URL.revokeObjectURL(item.previewUrl);
    this.#changed(null);
  }

  /** Forget every item and stop the uploads under way. */
  clear() {
    for (const controller of this.inFlight.values()) controller.abort();
    for (const item of this.items) if (item.file) URL.revokeObjectURL(item.previewUrl);
    this.items = [];
    this.#changed(null);
  }

  get(id) {
    return this.items.find((item) => item.id === id) ?? null;
  }

  #changed(item) {
    this.dispatchEvent(new CustomEvent("change", { detail: item }));
  }

  #pump() {
    while (this.inFlight.size < CONCURRENCY) {
      const largeInFlight = this.items.some((item) => this.inFlight.has(item.id) && item.file.size > LARGE_BYTES);
      const next = this.items.find((item) => item.status === "queued" && (item.file.size <= LARGE_BYTES || !largeInFlight));
      if (!next) return;
      this.#run(next);
    }
  }

  async #run(item) {
    const controller = new AbortController();
    this.inFlight.set(item.id, controller);
    Object.assign(item, { status: "analysing", progress: 0 });
    this.#changed(item);
    const started = performance.now();
    let shown = -1;
    const onProgress = (share) => {
      item.progress = share;
      const whole = Math.floor(share * 100);
      if (whole === shown) return; // one event per percent is plenty
      shown = whole;
      this.dispatchEvent(new CustomEvent("progress", { detail: item }));
    };
    try {
      item.result = await this.analyse(item.file, { signal: controller.signal, onProgress });
      item.roundTripMs = performance.now() - started;
      item.status = "done";
    } catch (error) {
      item.error = controller.signal.aborted ? cancelled() : error;
      item.status = "error";
    }
    this.inFlight.delete(item.id);
    if (this.items.includes(item)) this.#changed(item); // not when it was removed or cleared meanwhile
    this.#pump();
  }
}

function cancelled() {
  return { kind: "cancelled", status: 0, code: "", message: "" };
}
