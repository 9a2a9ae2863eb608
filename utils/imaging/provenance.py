"""What an upload's own bytes declare about where it came from, read before and independently of the models.

Four readers, each bounded in the bytes it looks at and never raising (a parser's failure means "nothing found"):
- C2PA Content Credentials (c2pa-python, offline: no remote manifests, no OCSP, no trust list). A manifest store's
  integrity is judged apart from trust: a certificate that cannot be trusted offline, or has expired, does not make
  a manifest invalid; a hash, signature or assertion mismatch does. The digital source type is looked for in the
  active manifest and then in its ingredients' manifests, because generators' pipelines often sign an "opened" or
  "converted" manifest over the one that says "created by model X".
- IPTC/XMP `DigitalSourceType` in the XMP packet, found by a bounded byte search (no XML parser, so no entity tricks).
- Stable Diffusion front-end metadata (AUTOMATIC1111, ComfyUI, InvokeAI, NovelAI, Fooocus) with sd-parsers, on
  Pillow's view of the file, whose text-chunk limits bound what it reads; the alpha-channel "stealth" form is read
  here (with numpy, bounded), on RGBA images up to 1024x1024 pixels.
- EXIF Make, Model and Software.

`read_provenance` returns the API's `provenance` object. Only AI declarations change a verdict (backend/detector.py);
a camera declaration is reported and never turns a verdict REAL, and no metadata is not evidence of anything.
"""
from __future__ import annotations

import io
import json
import logging
import re
import warnings
import zlib

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

# IPTC digital source types (http://cv.iptc.org/newscodes/digitalsourcetype/) and what each declares here.
AI_GENERATED_TYPES = {"trainedAlgorithmicMedia", "algorithmicMedia"}
AI_EDITED_TYPES = {"compositeWithTrainedAlgorithmicMedia", "compositeSynthetic"}
CAMERA_TYPES = {"digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print"}
# C2PA validation codes about trust in the signer, not about the integrity of what was signed.
TRUST_ONLY_CODES = {"signingCredential.untrusted", "signingCredential.expired", "signingCredential.ocsp.skipped",
                    "signingCredential.ocsp.unknown", "timeStamp.untrusted", "timeStamp.outsideValidity"}

MAX_XMP_BYTES = 1 << 20  # an XMP packet is read up to this many bytes; a larger one is cut, never parsed whole
MAX_PARAMETERS_CHARS = 2000  # generator parameters reported (prompts run long)
MAX_STEALTH_PIXELS = 1024 * 1024  # the alpha-channel form is looked for only on RGBA images up to this size
MAX_MANIFEST_DEPTH = 16
_SOURCE_TYPE_URI = b"/digitalsourcetype/"  # the IPTC vocabulary's URIs are lower case; bytes.find is memchr-fast
_SOURCE_TYPE_NAME = re.compile(rb"[A-Za-z]{1,64}")
_CREATOR_TOOL = re.compile(rb"CreatorTool(?:=\"|>)([^\"<]{1,200})")

_c2pa = None
_parsers = None
# Offline: never fetch a manifest named by URL, never ask a certificate authority (OCSP); no trust list is loaded.
C2PA_SETTINGS = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}


def _parser_manager():
    """One sd-parsers ParserManager for the process (building one instantiates every parser); None if missing."""
    global _parsers
    if _parsers is None:
        try:
            from sd_parsers import ParserManager

            _parsers = ParserManager()
        except Exception:
            log.warning("sd-parsers is unavailable; Stable Diffusion metadata will not be read")
            _parsers = False
    return _parsers or None


def warm_up() -> None:
    """Load the C2PA library and the metadata parsers now (about 0.1 s), not on the first upload."""
    _c2pa_module()
    _parser_manager()


def _c2pa_module():
    """c2pa, configured once for offline reading; None when the package is missing."""
    global _c2pa
    if _c2pa is None:
        try:
            import c2pa

            c2pa.Settings.from_dict(C2PA_SETTINGS).close()  # refused settings fail here, once, not per upload
            _c2pa = c2pa
        except Exception:  # not installed, or settings refused: C2PA is then simply not read
            log.warning("c2pa-python is unavailable; Content Credentials will not be read")
            _c2pa = False
    return _c2pa or None


def _short_source_type(uri: str | None) -> str | None:
    return uri.rstrip("/").rsplit("/", 1)[-1] if uri else None


def _declaration(source_type: str | None) -> str | None:
    if source_type in AI_GENERATED_TYPES:
        return "ai-generated"
    if source_type in AI_EDITED_TYPES:
        return "ai-edited"
    if source_type in CAMERA_TYPES:
        return "camera"
    return None


def _actions(manifest: dict) -> list[dict]:
    actions = []
    for assertion in manifest.get("assertions", []):
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            actions += [a for a in (assertion.get("data") or {}).get("actions", []) if isinstance(a, dict)]
    return actions


def _software_agent(action: dict) -> str | None:
    agent = action.get("softwareAgent")
    if isinstance(agent, dict):
        agent = agent.get("name")
    return str(agent) if agent else None


def _claim_generator(manifest: dict) -> str | None:
    if manifest.get("claim_generator"):
        return str(manifest["claim_generator"])
    info = manifest.get("claim_generator_info") or []
    if info and isinstance(info[0], dict) and info[0].get("name"):
        return " ".join(str(info[0][key]) for key in ("name", "version") if info[0].get(key))
    return None


def _source_types(store: dict, label: str | None, depth: int = 0, seen: set | None = None) -> list[tuple[str, str | None]]:
    """(source type, software agent) of every action in the manifest `label` and, after them, its ingredients'."""
    seen = seen if seen is not None else set()
    manifest = store.get("manifests", {}).get(label) if label else None
    if manifest is None or label in seen or depth > MAX_MANIFEST_DEPTH:
        return []
    seen.add(label)
    found = [(_short_source_type(a.get("digitalSourceType")), _software_agent(a)) for a in _actions(manifest)
             if a.get("digitalSourceType")]
    for ingredient in manifest.get("ingredients", []):
        found += _source_types(store, ingredient.get("active_manifest"), depth + 1, seen)
    return found


def _validation_codes(store: dict) -> list[str]:
    codes = [s.get("code") for s in store.get("validation_status", []) if isinstance(s, dict)]
    results = store.get("validation_results") or {}
    failures = list((results.get("activeManifest") or {}).get("failure", []))
    for delta in results.get("ingredientDeltas", []) or []:
        failures += (delta.get("validationDeltas") or {}).get("failure", [])
    codes += [f.get("code") for f in failures if isinstance(f, dict)]
    return sorted({str(code) for code in codes if code})


def read_c2pa(data: bytes, media_type: str) -> dict | None:
    """The C2PA manifest store's summary, or None when the file carries none."""
    if b"c2pa" not in data and b"C2PA" not in data:  # the JUMBF label of every manifest store
        return None
    c2pa = _c2pa_module()
    if c2pa is None:
        return None
    try:
        with c2pa.Context(settings=c2pa.Settings.from_dict(C2PA_SETTINGS)) as context, \
                c2pa.Reader(media_type, io.BytesIO(data), context=context) as reader:
            store = json.loads(reader.json())
    except Exception as error:  # no manifest, or one too broken to read
        if "ManifestNotFound" in type(error).__name__ or "not found" in str(error).lower():
            return None
        return {"valid": False, "state": "Unreadable", "codes": ["manifest.unreadable"], "claim_generator": None,
                "signer": None, "signed_at": None, "digital_source_type": None, "actions": []}
    active = store.get("manifests", {}).get(store.get("active_manifest")) or {}
    codes = _validation_codes(store)
    signature = active.get("signature_info") or {}
    types = _source_types(store, store.get("active_manifest"))
    ai = [(t, agent) for t, agent in types if _declaration(t) in ("ai-generated", "ai-edited")]
    chosen = ai[0] if ai else (types[0] if types else (None, None))
    return {"valid": not [code for code in codes if code not in TRUST_ONLY_CODES],
            "state": store.get("validation_state") or ("Invalid" if codes else "Valid"),
            "codes": codes, "claim_generator": _claim_generator(active),
            "signer": signature.get("issuer") or signature.get("common_name"), "signed_at": signature.get("time"),
            "digital_source_type": chosen[0], "software_agent": chosen[1],
            "actions": [str(a.get("action")) for a in _actions(active) if a.get("action")][:32]}


def read_xmp(data: bytes, image: Image.Image | None) -> dict:
    """The XMP packet's digital source type and creator tool (each None when absent)."""
    packet = b""
    start = data.find(b"<x:xmpmeta")
    if start >= 0:
        end = data.find(b"</x:xmpmeta>", start, start + MAX_XMP_BYTES)
        packet = data[start:end if end > 0 else start + MAX_XMP_BYTES]
    elif image is not None:  # PNG iTXt may be compressed: Pillow inflated it (within its own limits)
        text = image.info.get("XML:com.adobe.xmp") or image.info.get("xmp") or b""
        packet = (text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text))[:MAX_XMP_BYTES]
    at = packet.find(_SOURCE_TYPE_URI)
    source = _SOURCE_TYPE_NAME.match(packet, at + len(_SOURCE_TYPE_URI)) if at >= 0 else None
    at = packet.find(b"CreatorTool")
    tool = _CREATOR_TOOL.match(packet, at) if at >= 0 else None
    return {"digital_source_type": source.group(0).decode("ascii") if source else None,
            "creator_tool": tool.group(1).decode("utf-8", "replace").strip() if tool else None}


def read_generator_parameters(image: Image.Image) -> tuple[str, str] | None:
    """(front end, its parameters as text) from Stable Diffusion front-end metadata, or None."""
    manager = _parser_manager()
    if manager is None:
        return None
    from sd_parsers.extractors import Eagerness

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # FAST: the text chunks Pillow read with the header. DEFAULT would ask for PNG text after the pixel
            # data, which makes Pillow decode the whole image a second time (0.5 s and 250 MB for 36 megapixels);
            # EAGER's alpha-channel reader loops for ever on an image of under 120 pixels, and is done below.
            info = manager.parse(image, eagerness=Eagerness.FAST)
            if info is None:
                info = _parse_stealth(manager, image)
    except Exception:  # malformed parameters: as if there were none
        return None
    if info is None:
        return None
    generator = getattr(info.generator, "value", None) or str(info.generator)
    try:
        text = json.dumps(info.raw_parameters, default=str, ensure_ascii=False)
    except Exception:
        text = str(info.raw_parameters)
    return generator, text[:MAX_PARAMETERS_CHARS]


STEALTH_HEADER = b"stealth_pngcomp"  # AUTOMATIC1111's "stealth" PNG info: gzip text in the alpha channel's LSBs
MAX_STEALTH_TEXT = 1 << 20


def read_stealth_text(image: Image.Image) -> str | None:
    """The text hidden in the least significant bits of the alpha channel, read down each column in turn, as the
    A1111 extension writes it; None when the header is not there. Bounded: the image size, and 1 MiB of text."""
    if image.mode != "RGBA" or image.width * image.height > MAX_STEALTH_PIXELS:
        return None
    bits = (np.asarray(image.getchannel("A")).T & 1).ravel()
    header_bits = len(STEALTH_HEADER) * 8
    if bits.size < header_bits + 32 or np.packbits(bits[:header_bits]).tobytes() != STEALTH_HEADER:
        return None
    length = int.from_bytes(np.packbits(bits[header_bits:header_bits + 32]).tobytes(), "big") // 8 * 8
    payload = np.packbits(bits[header_bits + 32:header_bits + 32 + length]).tobytes()
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing
        text = inflater.decompress(payload, MAX_STEALTH_TEXT)
    except zlib.error:
        return None
    return text.decode("utf-8", "replace")


def _parse_stealth(manager, image: Image.Image):
    text = read_stealth_text(image)
    if text is None:
        return None
    from sd_parsers.data.generators import Generators

    for parser in manager.managed_parsers:
        if parser.generator == Generators.AUTOMATIC1111:
            return parser.parse({"parameters": text})
        if parser.generator == Generators.NOVELAI and text.lstrip().startswith("{"):
            return parser.parse(json.loads(text))
    return None


def read_exif(image: Image.Image) -> dict:
    """EXIF Make + Model (as `camera`) and Software, each None when absent."""
    try:
        exif = image.getexif() if image.format != "PNG" else _png_exif(image)
        make, model, software = (str(exif.get(tag, "")).strip("\x00 ") for tag in (0x010F, 0x0110, 0x0131))
    except Exception:
        return {"camera": None, "software": None}
    camera = model if make and model.lower().startswith(make.lower()) else " ".join(p for p in (make, model) if p)
    return {"camera": camera[:200] or None, "software": software[:200] or None}


def _png_exif(image: Image.Image) -> Image.Exif:
    exif = Image.Exif()  # a PNG's eXIf chunk is read only if it comes before the pixels: never load them for it
    if image.info.get("exif"):
        exif.load(image.info["exif"])
    return exif


def empty_provenance() -> dict:
    """What a file that declares nothing reports."""
    return {"declared": None, "source": None, "generator": None, "c2pa": None,
            "metadata": {"software": None, "camera": None, "generator_parameters": None}}


def read_provenance(data: bytes, fmt: str, media_type: str) -> dict:
    """The `provenance` object of the API for these bytes (already sniffed as `fmt`); never raises."""
    result = empty_provenance()
    try:
        image = Image.open(io.BytesIO(data), formats=[fmt]) if fmt else None
    except Exception:
        image = None
    try:
        manifest = read_c2pa(data, media_type)
    except Exception:  # belt and braces: nothing from a parser reaches the client
        manifest = None
    xmp = read_xmp(data, image) if (b"xmpmeta" in data or fmt == "PNG") else {"digital_source_type": None,
                                                                               "creator_tool": None}
    exif = read_exif(image) if image is not None else {"camera": None, "software": None}
    parameters = read_generator_parameters(image) if image is not None and fmt in ("PNG", "JPEG", "WEBP") else None
    result["c2pa"] = manifest
    result["metadata"] = {"software": exif["software"] or xmp["creator_tool"], "camera": exif["camera"],
                          "generator_parameters": parameters[1] if parameters else None}
    declared, source, generator = _decide(manifest, xmp, parameters, exif, fmt)
    result.update(declared=declared, source=source, generator=generator)
    if manifest is not None:
        manifest.pop("software_agent", None)
    return result


def _decide(manifest: dict | None, xmp: dict, parameters: tuple | None, exif: dict, fmt: str):
    """(declared, source, generator) by the README's rules: AI declarations first, then camera ones."""
    if manifest and manifest["valid"]:
        kind = _declaration(manifest["digital_source_type"])
        if kind in ("ai-generated", "ai-edited"):
            return kind, "c2pa", manifest.get("software_agent") or manifest["claim_generator"]
    kind = _declaration(xmp["digital_source_type"])
    if kind in ("ai-generated", "ai-edited"):
        return kind, "xmp", xmp["creator_tool"]
    if parameters:
        return "ai-generated", "png-text" if fmt == "PNG" else "exif", parameters[0]
    if manifest and manifest["valid"] and _declaration(manifest["digital_source_type"]) == "camera":
        return "camera", "c2pa", manifest["claim_generator"]
    if kind == "camera":
        return "camera", "xmp", xmp["creator_tool"]
    if exif["camera"]:
        return "camera", "exif", None
    return None, None, None
