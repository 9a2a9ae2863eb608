"""What hostile uploads and slow clients cost the production server: peak RSS, time to answer, health under load.

What it does
    1. Starts the production server as `make run` does (`python -m backend.serve`, its defaults: a worker per core)
       with the shipped weights, and waits until every worker is ready.
    2. Sends each payload of tests/hostile_images.py (decompression bombs of every kind, scan bombs, a TIFF of
       100,000 pages, the largest images the decode budget admits, ordinary photos) once on its own to
       /api/predict and once as a batch of copies (32, or as many as fit in 60 MiB) to /api/predict/batch, with
       Grad-CAM. Before each request it opens a new peak-RSS window in every server process (Linux clear_refs) and
       afterwards reads the largest rise of VmHWM over VmRSS; it records the status and the time to the answer.
    3. Holds --slow-connections connections that announce a 1 MB body and send 10 bytes every 5 s for --slow-seconds,
       and meanwhile asks /api/health once a second: how many answers arrive within 2 s.
    4. Prints a Markdown table and writes JSON (--output) with the machine and git commit.

Usage
    python bench/hostile_clients.py                      # everything (about 4 minutes on 2 cores)
    python bench/hostile_clients.py --slow-connections 0 # uploads only
The machine should be otherwise idle.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (PROJECT_ROOT, git_info, machine_info, markdown_table, proc_status,  # noqa: E402
                          utc_now, write_json)
from bench.load_test import ProductionServer  # noqa: E402

log = logging.getLogger("hostile_clients")
BOUNDARY = "bench-boundary"
BATCH_BYTES = 60 * 2**20


def payloads() -> dict[str, bytes]:
    """Every payload, built in memory (tests/hostile_images.py)."""
    from PIL import Image

    from tests import hostile_images as hostile
    from tests import images

    return {
        "lossless WebP 8000x8000 (38 B)": hostile.lossless_webp(8000),
        "lossless WebP RGBA 8000x8000": hostile.lossless_webp(8000, "RGBA"),
        "16-bit grey PNG 8000x8000": hostile.png_16bit_grey(8000),
        "RGBA PNG 8000x8000": hostile.png_rgba(8000),
        "palette+alpha PNG 8000x8000": hostile.png_palette_transparent(8000),
        "float32 TIFF 8000x8000": hostile.tiff_float32(8000),
        "RGBA PNG 5000x5000 (fits)": hostile.png_rgba(5000),
        "progressive JPEG, 5,000 scans": hostile.progressive_scan_bomb(5000),
        "progressive JPEG 8000x8000, 3,000 scans": _big_scan_bomb(Image),
        "progressive JPEG 8000x8000": images.encode(Image.new("RGB", (8000, 8000), (120, 60, 30)), "JPEG",
                                                    quality=90, progressive=True),
        "TIFF of 100,000 1x1 pages": hostile.tiff_many_pages(100_000),
        "JPEG cut to 10% + EOI": hostile.jpeg_cut_with_end_marker(0.1),
        "APNG claiming 2^31 frames": hostile.apng_claiming_frames(),
        "JPEG 2048x1536": images.jpeg(2048, 1536),
        "PNG 32x32": images.png(32, 32),
    }


def _big_scan_bomb(Image) -> bytes:
    from tests.images import encode

    data = encode(Image.new("RGB", (8000, 8000), (120, 60, 30)), "JPEG", quality=90, progressive=True)
    last, end = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    return data[:end] + data[last:end] * 3000 + data[end:]


def multipart(files: list[bytes]) -> bytes:
    out = bytearray()
    for index, data in enumerate(files):
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"f{index}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return bytes(out + f"--{BOUNDARY}--\r\n".encode())


def measured_post(server: ProductionServer, path: str, body: bytes, content_type: str) -> dict:
    pids = [server.process.pid, *server.worker_pids()]
    before = {}
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        before[pid] = proc_status(pid).get("VmRSS", 0)
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        payload = json.loads(response.read())
        status = response.status
    except OSError as error:  # a body over the limit: the server answers 413 and closes before reading it all
        status, payload = f"closed ({type(error).__name__})", {}
    finally:
        connection.close()
    seconds = time.perf_counter() - started
    rise = max(proc_status(pid).get("VmHWM", 0) - rss for pid, rss in before.items()) / 1024
    statuses = sorted({entry["status"] for entry in payload.get("results", [])})
    return {"status": status, "file_statuses": statuses, "seconds": round(seconds, 3), "peak_rise_mib": round(rise),
            "error": (payload.get("error") or {}).get("code")}


async def slow_clients(port: int, connections: int, hold: float) -> dict:
    """Slow-body connections for `hold` seconds, and a health probe each second meanwhile."""
    outcomes, probes = [], []

    async def slow() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /api/predict HTTP/1.1\r\nHost: bench\r\nContent-Type: image/png\r\n"
                         b"Content-Length: 1000000\r\n\r\n")
            end = time.monotonic() + hold
            while time.monotonic() < end:
                writer.write(b"0123456789")
                await writer.drain()
                try:
                    line = await asyncio.wait_for(reader.readline(), 5)
                    if line:
                        outcomes.append(line.decode().strip())
                        return
                except asyncio.TimeoutError:
                    pass
            outcomes.append("still open")
            writer.close()
        except OSError as error:
            outcomes.append(f"error {type(error).__name__}")

    async def probe() -> None:
        await asyncio.sleep(2)
        end = time.monotonic() + hold - 4
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /api/health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                line = await asyncio.wait_for(reader.readline(), 2)
                probes.append((line.startswith(b"HTTP/1.1 200"), time.monotonic() - started))
                writer.close()
            except (OSError, asyncio.TimeoutError):
                probes.append((False, time.monotonic() - started))
            await asyncio.sleep(max(0.0, 1 - (time.monotonic() - started)))

    await asyncio.gather(*[slow() for _ in range(connections)], probe())
    answered = {outcome: outcomes.count(outcome) for outcome in sorted(set(outcomes))}
    return {"connections": connections, "hold_s": hold, "probes": len(probes),
            "probes_ok_within_2s": sum(1 for ok, took in probes if ok and took < 2),
            "slowest_probe_s": round(max((took for _, took in probes), default=0), 3), "slow_clients": answered}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow-connections", type=int, default=200)
    parser.add_argument("--slow-seconds", type=float, default=60.0)
    parser.add_argument("--output", default=str(PROJECT_ROOT / "bench" / "results" / "hostile.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    document = {"benchmark": "hostile_clients", "started_at": utc_now(), "machine": machine_info(),
                "git": git_info(), "uploads": []}
    server = ProductionServer({}, str(PROJECT_ROOT / "saved_models"))
    try:
        server.start()
        server.wait_ready(600)
        document["server"] = server.config
        for name, data in payloads().items():
            copies = max(1, min(32, BATCH_BYTES // max(1, len(data))))
            single = measured_post(server, "/api/predict", data, "application/octet-stream")
            batch = measured_post(server, "/api/predict/batch", multipart([data] * copies),
                                  f"multipart/form-data; boundary={BOUNDARY}")
            document["uploads"].append({"payload": name, "bytes": len(data), "single": single,
                                        "batch": {"copies": copies, **batch}})
            log.info("%s: single %s, batch %s", name, single, batch)
        if args.slow_connections:
            document["slow_clients"] = asyncio.run(slow_clients(server.port, args.slow_connections,
                                                                args.slow_seconds))
    finally:
        server.stop()
    document["finished_at"] = utc_now()
    write_json(Path(args.output), document)
    print(report(document))
    return 0


def report(document: dict) -> str:
    machine = document["machine"]
    rows = [[u["payload"], f"{u['bytes']:,}", u["single"]["status"], u["single"]["peak_rise_mib"],
             u["single"]["seconds"], f"{u['batch']['copies']} -> {u['batch']['status']} {u['batch']['file_statuses']}",
             u["batch"]["peak_rise_mib"], u["batch"]["seconds"]] for u in document["uploads"]]
    lines = [f"## Hostile clients ({document['started_at']})", "",
             f"machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores; commit "
             f"{document['git']['commit']}{' (dirty)' if document['git']['dirty'] else ''}", "",
             markdown_table(["payload", "bytes", "single", "peak rise MiB", "s", "batch (copies -> status)",
                             "peak rise MiB", "s"], rows), ""]
    worst_single = max(u["single"]["peak_rise_mib"] for u in document["uploads"])
    worst_batch = max(u["batch"]["peak_rise_mib"] for u in document["uploads"])
    worst_time = max(max(u["single"]["seconds"], u["batch"]["seconds"]) for u in document["uploads"])
    lines.append(f"worst peak RSS rise: single {worst_single} MiB, batch {worst_batch} MiB; slowest answer "
                 f"{worst_time} s")
    slow = document.get("slow_clients")
    if slow:
        lines.append(f"{slow['connections']} slow-body connections for {slow['hold_s']:g} s: /api/health answered "
                     f"{slow['probes_ok_within_2s']} of {slow['probes']} probes within 2 s (slowest "
                     f"{slow['slowest_probe_s']} s); the slow clients got {slow['slow_clients']}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
