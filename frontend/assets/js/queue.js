// The list of files to analyse. They go to the server one at a time, in the order they arrived: each result shows
// up as soon as it is ready, and a burst of files never competes with itself for the server's CPU.

let nextId = 1;

/**
 * Holds items {id, file, name, previewUrl, status, result, error, roundTripMs} where status is one of
 * "queued" | "analysing" | "done" | "error". Fires "change" (detail: the item, or null after clear()).
 */
export class AnalysisQueue extends EventTarget {
  /** `analyse(file, signal)` resolves to a prediction or throws; it is given one file at a time. */
  constructor(analyse) {
    super();
    this.analyse = analyse;
    this.items = [];
    this.current = null;
  }

  /** Queue files; returns the new items. */
  add(files) {
    const added = files.map((file) => ({
      id: nextId++,
      file,
      name: file.name || "unnamed image",
      previewUrl: URL.createObjectURL(file),
      status: "queued",
      result: null,
      error: null,
      roundTripMs: null,
    }));
    this.items.push(...added);
    for (const item of added) this.#changed(item);
    this.#pump();
    return added;
  }

  /** Put a failed item back in the queue. */
  retry(id) {
    const item = this.items.find((candidate) => candidate.id === id);
    if (!item || item.status !== "error") return;
    Object.assign(item, { status: "queued", error: null });
    this.#changed(item);
    this.#pump();
  }

  /** Forget every item and stop the one being analysed. */
  clear() {
    this.current?.abort();
    this.current = null;
    for (const item of this.items) URL.revokeObjectURL(item.previewUrl);
    this.items = [];
    this.#changed(null);
  }

  get(id) {
    return this.items.find((item) => item.id === id) ?? null;
  }

  #changed(item) {
    this.dispatchEvent(new CustomEvent("change", { detail: item }));
  }

  async #pump() {
    if (this.current) return; // a loop is already draining the queue
    let item;
    while ((item = this.items.find((candidate) => candidate.status === "queued"))) {
      const controller = new AbortController();
      this.current = controller;
      item.status = "analysing";
      this.#changed(item);
      const started = performance.now();
      try {
        item.result = await this.analyse(item.file, controller.signal);
        item.roundTripMs = performance.now() - started;
        item.status = "done";
      } catch (error) {
        item.error = error;
        item.status = "error";
      }
      if (this.current !== controller) return; // cleared meanwhile: a newer loop owns the queue now
      this.#changed(item);
    }
    this.current = null;
  }
}
