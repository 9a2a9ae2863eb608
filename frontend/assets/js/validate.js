// The server's intake checks, repeated in the browser so an obviously unusable file fails at once instead of
// after an upload. The server stays the judge: these checks only ever reject what it would reject too.

/** Used until /api/models answers; the same values as config/config.yaml's `serving` section. */
export const DEFAULT_LIMITS = Object.freeze({
  max_upload_bytes: 20 * 1024 * 1024,
  max_pixels: 64_000_000,
  max_batch_files: 32,
  formats: ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "HEIF", "AVIF"],
  media_types: ["image/avif", "image/bmp", "image/gif", "image/heic", "image/jpeg", "image/png", "image/tiff",
    "image/webp"],
});

// Leading bytes of each format, as utils/image_io.py checks them: like the server, judge the bytes, since a
// file's name and the type the browser guesses from it can both be wrong.
const SIGNATURES = [
  { format: "JPEG", offset: 0, magic: [0xff, 0xd8, 0xff] },
  { format: "PNG", offset: 0, magic: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] },
  { format: "GIF", offset: 0, magic: [...new TextEncoder().encode("GIF87a")] },
  { format: "GIF", offset: 0, magic: [...new TextEncoder().encode("GIF89a")] },
  { format: "WEBP", offset: 8, magic: [...new TextEncoder().encode("WEBP")], riff: true },
  { format: "BMP", offset: 0, magic: [0x42, 0x4d] },
  { format: "TIFF", offset: 0, magic: [0x49, 0x49, 0x2a, 0x00] },
  { format: "TIFF", offset: 0, magic: [0x4d, 0x4d, 0x00, 0x2a] },
];
const RIFF = [0x52, 0x49, 0x46, 0x46];
// HEIF and AVIF are ISO media files: `ftyp` at offset 4, then the major and compatible brands.
const FTYP = [...new TextEncoder().encode("ftyp")];
const AVIF_BRANDS = ["avif", "avis"];
const HEIF_BRANDS = ["heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs", "mif1", "msf1", "miaf"];

function isoMediaFormat(head) {
  if (!startsWith(head, FTYP, 4)) return null;
  const size = (head[0] << 24) | (head[1] << 16) | (head[2] << 8) | head[3];
  const brands = [8];
  for (let offset = 16; offset + 4 <= Math.min(Math.max(size, 16), head.length); offset += 4) brands.push(offset);
  const names = brands.map((offset) => String.fromCharCode(...head.slice(offset, offset + 4)));
  if (names.some((name) => AVIF_BRANDS.includes(name))) return "AVIF";
  if (names.some((name) => HEIF_BRANDS.includes(name))) return "HEIF";
  return null;
}

function startsWith(head, magic, offset) {
  return magic.every((byte, index) => head[offset + index] === byte);
}

/** The image format named by a file's first bytes, or null. */
export async function sniffFormat(file) {
  const head = new Uint8Array(await file.slice(0, 64).arrayBuffer());
  const iso = isoMediaFormat(head);
  if (iso) return iso;
  const match = SIGNATURES.find(
    ({ magic, offset, riff }) => startsWith(head, magic, offset) && (!riff || startsWith(head, RIFF, 0)),
  );
  return match ? match.format : null;
}

/** A file the page refused before sending it; `code` matches the server's error codes. */
export class FileRejected extends Error {
  constructor(code, message) {
    super(message);
    this.name = "FileRejected";
    this.kind = "client";
    this.code = code;
  }
}

/** Throws FileRejected when the server would refuse this file for its size or type. */
export async function checkFile(file, limits) {
  if (file.size === 0) throw new FileRejected("empty_file", "the file is empty");
  if (file.size > limits.max_upload_bytes) {
    throw new FileRejected("image_too_large", `the file has ${file.size} bytes`);
  }
  const format = await sniffFormat(file);
  if (!format || !limits.formats.includes(format)) {
    throw new FileRejected("unsupported_media_type", "the file's bytes are not a supported image format");
  }
}
