"""What reading provenance adds to a request: `utils/provenance.read_provenance` timed in process, per payload.

The server calls it once per image, on the upload's bytes, so its time is the extra server time. Payloads: a
32x32 JPEG and a 2048x1536 JPEG without metadata, the committed C2PA and Stable Diffusion fixtures, an image signed
in the run as AI-generated, and the metadata bombs of tests/utils/imaging/test_provenance.py (a 10 MB XMP packet, 10,000 PNG text
chunks, a text chunk that inflates to 1 GiB, a corrupt JUMBF box). Each is timed --repeats times after a warm-up;
p50 and max are printed, in milliseconds, with the machine.

    python bench/provenance_cost.py [--repeats 200] [--output bench/results/provenance.json]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PROJECT_ROOT, git_info, machine_info, markdown_table, utc_now, write_json  # noqa: E402


def payloads() -> dict[str, tuple[bytes, str]]:
    from tests import c2pa_signing, images
    from tests.utils.imaging.test_provenance import C2PA_FIXTURES, METADATA_BOMBS, SD_FIXTURES

    out = {"JPEG 32x32, no metadata": (images.jpeg(32, 32), "JPEG"),
           "JPEG 2048x1536, no metadata": (images.jpeg(2048, 1536), "JPEG"),
           "PNG 32x32, no metadata": (images.png(32, 32), "PNG"),
           "C2PA fixture CA (valid)": ((C2PA_FIXTURES / "adobe-20220124-CA.jpg").read_bytes(), "JPEG"),
           "C2PA signed as AI in this run": (c2pa_signing.ai_created_jpeg(images.jpeg(512, 384)), "JPEG"),
           "AUTOMATIC1111 PNG": ((SD_FIXTURES / "AUTOMATIC1111" / "automatic1111_cropped.png").read_bytes(), "PNG"),
           "AUTOMATIC1111 stealth PNG": ((SD_FIXTURES / "AUTOMATIC1111" / "automatic1111_stealth.png").read_bytes(),
                                         "PNG")}
    for name, build in METADATA_BOMBS.items():
        data = build()
        out[f"bomb: {name}"] = (data, "JPEG" if data[:2] == b"\xff\xd8" else "PNG")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--output", default=str(PROJECT_ROOT / "bench" / "results" / "provenance.json"))
    args = parser.parse_args(argv)
    from utils.imaging.decoding import MEDIA_TYPES
    from utils.imaging.provenance import read_provenance, warm_up

    warm_up()
    rows, document = [], {"benchmark": "provenance_cost", "started_at": utc_now(), "machine": machine_info(),
                          "git": git_info(), "payloads": []}
    for name, (data, fmt) in payloads().items():
        read_provenance(data, fmt, MEDIA_TYPES[fmt])
        repeats = args.repeats if len(data) < 1_000_000 else max(5, args.repeats // 20)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            result = read_provenance(data, fmt, MEDIA_TYPES[fmt])
            times.append((time.perf_counter() - started) * 1000)
        entry = {"payload": name, "bytes": len(data), "repeats": repeats, "p50_ms": round(statistics.median(times), 4),
                 "max_ms": round(max(times), 3), "declared": result["declared"]}
        document["payloads"].append(entry)
        rows.append([name, f"{len(data):,}", entry["p50_ms"], entry["max_ms"], entry["declared"]])
    write_json(Path(args.output), document)
    machine = document["machine"]
    print(f"## Provenance cost ({document['started_at']})\n\nmachine: {machine['cpu_model']}, "
          f"{machine['logical_cores']} logical cores; commit {document['git']['commit']}\n")
    print(markdown_table(["payload", "bytes", "p50 ms", "max ms", "declared"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
