// The batch table: every image in one sortable table under a summary line ("7 AI, 3 real, 1 unreliable"), and
// the whole batch exported as CSV or JSON.
import { el } from "./dom.js";
import { percent } from "./format.js";
import { errorBadge, modelName, verdictText } from "./messages.js";
import { download, leanResult, reading } from "./report.js";

const $ = (id) => document.getElementById(id);

// The summary's words per state, in the order they are listed; verdicts sort in the same order.
const SUMMARY = [["fake", "AI"], ["provenance", "declared AI"], ["real", "real"], ["uncertain", "uncertain"],
  ["disagree", "with the models disagreeing"], ["unreliable", "unreliable"], ["failed", "failed"],
  ["pending", "in progress"]];
const ORDER = SUMMARY.map(([state]) => state);

function stateOf(item) {
  if (item.status === "done") return verdictText(item.result).state;
  return item.status === "error" ? "failed" : "pending";
}

/** "7 AI, 3 real, 1 unreliable": how many images are in each state, the empty ones left out. */
export function summary(items) {
  const counts = new Map();
  for (const item of items) counts.set(stateOf(item), (counts.get(stateOf(item)) ?? 0) + 1);
  return SUMMARY.filter(([state]) => counts.get(state)).map(([state, words]) => `${counts.get(state)} ${words}`)
    .join(", ");
}

function pFake(item, name) {
  return item.result?.models.find((model) => model.name === name)?.p_fake ?? null;
}

function provenanceOf(item) {
  const provenance = item.result?.provenance;
  if (!provenance) return "";
  return provenance.declared ? `${provenance.declared} (${provenance.source})` : "none declared";
}

function modelNames(items) {
  const names = [];
  for (const item of items) {
    for (const model of item.result?.models ?? []) if (!names.includes(model.name)) names.push(model.name);
  }
  return names;
}

function columns(items) {
  return [
    { key: "file", label: "File", value: (item) => item.name },
    { key: "verdict", label: "Verdict", value: (item) => ORDER.indexOf(stateOf(item)) * 2 + (item.result?.verdict.p_fake ?? 1) },
    ...modelNames(items).map((name) => ({
      key: name, label: `${modelName(name)}: chance of AI`, numeric: true, value: (item) => pFake(item, name),
    })),
    { key: "profile", label: "Models used", value: (item) => item.result?.profile ?? "" },
    { key: "provenance", label: "Provenance", value: provenanceOf },
  ];
}

let sort = { key: "file", ascending: true };
let shown = { items: [], actions: null };

function compare(column) {
  return (a, b) => {
    const [x, y] = [column.value(a), column.value(b)];
    if (x === y) return 0;
    if (x === null) return 1; // no figure: always last
    if (y === null) return -1;
    const order = typeof x === "string" ? x.localeCompare(y, undefined, { numeric: true }) : x - y;
    return sort.ascending ? order : -order;
  };
}

function cell(item, column, actions) {
  if (column.key === "file") {
    return el("th", { scope: "row", class: "max-w-48 font-normal" }, el("button", {
      type: "button", class: "link block max-w-full truncate text-left", title: item.name, text: item.name,
      on: { click: () => actions.select(item.id) },
    }));
  }
  if (column.key === "verdict") {
    const text = item.status === "done" ? verdictText(item.result).short
      : item.status === "error" ? errorBadge(item.error) : "In progress";
    return el("td", { text });
  }
  const value = column.value(item);
  return el("td", { class: column.numeric ? "text-right tabular-nums" : "",
    text: column.numeric ? (value === null ? "–" : percent(value)) : value });
}

function header(column) {
  const sorted = sort.key === column.key;
  const arrow = sorted ? (sort.ascending ? " ▲" : " ▼") : "";
  return el("th", { scope: "col", "aria-sort": sorted ? (sort.ascending ? "ascending" : "descending") : false },
    el("button", { type: "button", class: "sort-button", dataset: { sort: column.key }, on: {
      click: () => {
        sort = { key: column.key, ascending: sorted ? !sort.ascending : true };
        renderTable(shown.items, shown.actions);
      },
    } }, column.label, el("span", { "aria-hidden": "true", text: arrow })));
}

/** The table of every item (shown from two items up), sorted as the reader last chose. */
export function renderTable(items, actions) {
  shown = { items, actions };
  const section = $("batch");
  section.hidden = items.length < 2;
  if (section.hidden) return;
  $("batch-summary").textContent = summary(items);
  const cols = columns(items);
  const column = cols.find((candidate) => candidate.key === sort.key) ?? cols[0];
  const rows = [...items].sort(compare(column));
  const focused = document.activeElement?.dataset?.sort; // keep focus on the header just clicked
  $("batch-table").replaceChildren(
    el("caption", { class: "sr-only", text: "Every image's verdict. The column headers sort the table." }),
    el("thead", {}, el("tr", {}, ...cols.map(header))),
    el("tbody", {}, ...rows.map((item) => el("tr", { dataset: { id: item.id, state: stateOf(item) } },
      ...cols.map((col) => cell(item, col, actions))))),
  );
  if (focused) $("batch-table").querySelector(`[data-sort="${focused}"]`)?.focus();
}

// A cell that starts with one of these would run as a formula in a spreadsheet (CSV injection).
const FORMULA = /^[=+\-@\t\r]/;

function csvField(value) {
  let text = value === null || value === undefined ? "" : String(value);
  if (FORMULA.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function exportRows(items) {
  const names = modelNames(items);
  return items.map((item) => {
    const result = item.result;
    return {
      file: item.name,
      state: stateOf(item),
      label: result?.verdict.label ?? "",
      p_fake: result?.verdict.p_fake ?? "",
      ...Object.fromEntries(names.map((name) => [`${name}_p_fake`, pFake(item, name) ?? ""])),
      profile: result?.profile ?? "",
      tiles: result?.tiles ?? "",
      provenance: result?.provenance?.declared ?? "",
      provenance_source: result?.provenance?.source ?? "",
      domain_note: result?.domain_note ?? "",
      sha256: result?.input.sha256 ?? "",
      error: item.status === "error" ? errorBadge(item.error) : "",
    };
  });
}

/** Download the batch as CSV: one row per image, p_fake as the service gives it (0 to 1). */
export function exportCsv(items) {
  const rows = exportRows(items);
  const keys = Object.keys(rows[0] ?? { file: "" });
  const lines = [keys.join(","), ...rows.map((row) => keys.map((key) => csvField(row[key])).join(","))];
  download("results.csv", new Blob([`${lines.join("\r\n")}\r\n`], { type: "text/csv" }));
}

/** Download the batch as JSON: the page's reading and the service's answer (without its images) per image. */
export function exportJson(items) {
  const images = items.map((item) => (item.status === "done"
    ? { ...reading(item), result: leanResult(item.result) }
    : { file: item.name, state: stateOf(item), error: item.status === "error" ? errorBadge(item.error) : null }));
  const body = { saved_at: new Date().toISOString(), summary: summary(items), images };
  download("results.json", new Blob([JSON.stringify(body, null, 2)], { type: "application/json" }));
}
