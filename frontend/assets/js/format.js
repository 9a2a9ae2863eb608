// Number formatting shared by the result and the about panels, so every figure reads the same way.

/** 0.9342 -> "93.4%" */
export function percent(value, digits = 1) {
  return `${(value * 100).toFixed(digits)}%`;
}

/** 1536 -> "1.5 KB"; binary steps, so the server's 20 MiB limit reads as "20 MB" as browsers show it. */
export function bytes(count) {
  if (count < 1024) return `${count} B`;
  let value = count;
  let unit = "B";
  for (const next of ["KB", "MB", "GB"]) {
    if (value < 1024) break;
    value /= 1024;
    unit = next;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${unit}`;
}

/** 12.345 -> "12 ms"; sub-10 ms times keep one decimal so a fast step does not read as zero. */
export function milliseconds(value) {
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
}

/** 1234567 -> "1.2 M" */
export function count(value) {
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)} M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(0)} k`;
  return String(value);
}
