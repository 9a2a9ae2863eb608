"""Per-stage profile of one /api/predict request, in-process, with the floor each stage could reach on this CPU.

    python bench/profile_request.py [--output bench/results/profile.json] [--repeats 200] [--threads 1]
                                    [--markdown docs/performance.md] [--weights-dir saved_models]

Each stage of the request path is timed on its own (median of --repeats runs after a warm-up), for two uploads: a
32x32 CIFAKE JPEG and a 2048x1536 JPEG. The forward passes are timed in both runtimes (ONNX Runtime, which serves,
and PyTorch eager, the baseline). The floor of a compute stage is its FLOPs over the best matrix-multiply rate
measured on this machine at the same thread count; the floor of a byte-bound stage is its bytes over the measured
memory-copy bandwidth. Stages far above their floor are where time can still be won. HTTP and the WSGI server are
not in this profile: bench/load_test.py measures them end to end.

The Markdown table is printed; the JSON goes to --output.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.detector import Detector  # noqa: E402
from backend.settings import serving_settings  # noqa: E402
from bench.common import machine_info, write_json  # noqa: E402
from models import split_at_gradcam_layer  # noqa: E402
from utils.imaging.decoding import decode_image  # noqa: E402
from utils.inference.calibration import p_fake_from_logits  # noqa: E402
from utils.inference.gradcam import GradCamExplainer  # noqa: E402
from utils.inference.overlay import display_image, jpeg_data_uri, overlay_jpeg  # noqa: E402
from utils.inference.preprocessing import fit_to_input, normalize_batch  # noqa: E402
from utils.inference.runtime import OnnxForward, TorchForward  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "cifake_test_sample" / "FAKE"
OOD_DIRS = (ROOT / "data" / "sd-vs-coco-200" / "REAL", ROOT / "data" / "sd-vs-coco-200" / "FAKE")


def timed(fn, repeats: int, warmup: int = 10) -> float:
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def machine_rates(threads: int) -> dict:
    """Best fp32 matmul GFLOP/s at this thread count and memory-copy GB/s, measured here."""
    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    ms = timed(lambda: torch.mm(a, b), 20, warmup=5)
    gflops = 2 * 1024 ** 3 / (ms / 1000) / 1e9
    src = np.ones(64 * 2 ** 20, dtype=np.uint8)
    dst = np.empty_like(src)
    copy_ms = timed(lambda: np.copyto(dst, src), 20, warmup=3)
    bandwidth = 2 * src.nbytes / (copy_ms / 1000) / 1e9  # read + write
    return {"matmul_gflops": round(gflops, 1), "copy_gbps": round(bandwidth, 1)}


def sample_uploads() -> dict[str, bytes]:
    """The 32x32 CIFAKE JPEG and a 2048x1536 JPEG made from a 512 px sd-vs-coco-200 image (or, without that
    data, from the CIFAKE image enlarged; the decode time then differs a little)."""
    small = sorted(FIXTURE.glob("*.jpg"))[0].read_bytes()
    source = next((sorted(d.glob("*.jpg"))[0] for d in OOD_DIRS if d.is_dir() and any(d.glob("*.jpg"))), None)
    base = Image.open(source if source else io.BytesIO(small)).convert("RGB")
    buffer = io.BytesIO()
    base.resize((2048, 1536), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
    return {"cifake-32px.jpg": small, "2048x1536.jpg": buffer.getvalue()}


def model_flops(model: torch.nn.Module, input_size: int) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size))
    return counter.get_total_flops()


def _forward_stages(detector: Detector, torch_forwards: dict, batch: np.ndarray, gflops: float, repeats: int,
                    add) -> tuple[list, list[float], list[float]]:
    """Each model's forward pass, PyTorch eager and the serving runtime; its layer output, p_fake and confidence."""
    layer_outputs, p_fake, confidences = [], [], []
    for m in detector.models:
        flops = model_flops(m.model, m.spec.input_size)
        floor = flops / gflops * 1000
        add(f"forward {m.name} (PyTorch eager)", timed(lambda: torch_forwards[m.name](batch), repeats), floor,
            f"{flops / 1e6:.1f} MFLOP at the matmul rate")
        add(f"forward {m.name} ({m.forward.name})", timed(lambda: m.forward(batch), repeats), floor,
            f"{flops / 1e6:.1f} MFLOP at the matmul rate")
        logits, layer_output = m.forward(batch)
        layer_outputs.append(layer_output)
        p = float(p_fake_from_logits(torch.from_numpy(logits), m.temperature)[0])
        p_fake.append(p)
        confidences.append(p if p >= m.threshold else 1 - p)
    return layer_outputs, p_fake, confidences


def _gradcam_stages(model, layer_output: np.ndarray, target: int, gflops: float, repeats: int, add) -> np.ndarray:
    """Grad-CAM on the more confident model, on its runtime and (for comparison) on autograd; its heatmap."""
    explainer = model.explainer
    suffix = split_at_gradcam_layer(model.metadata["arch"], model.model).suffix
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        suffix(torch.from_numpy(layer_output))
    suffix_flops = counter.get_total_flops()
    add(f"Grad-CAM on the winner ({model.name}, {explainer.runtime}, from its layer output)",
        timed(lambda: explainer.heatmap(layer_output, target), repeats), 2 * suffix_flops / gflops * 1000,
        f"the layers after the explained one, forward and backward to their input: 2 x {suffix_flops / 1e6:.1f} "
        f"MFLOP at the matmul rate")
    if explainer.runtime != "torch":  # the autograd path, for comparison
        autograd = GradCamExplainer(split_at_gradcam_layer(model.metadata["arch"], model.model),
                                    model.spec.input_size, runtime="torch")
        add(f"Grad-CAM on the winner ({model.name}, PyTorch autograd, from its layer output)",
            timed(lambda: autograd.heatmap(layer_output, target), repeats), 2 * suffix_flops / gflops * 1000,
            f"as above: 2 x {suffix_flops / 1e6:.1f} MFLOP at the matmul rate")
    return explainer.heatmap(layer_output, target)


def _response_stages(detector: Detector, decoded, upload: bytes, heat: np.ndarray, bandwidth: float, repeats: int,
                     add) -> None:
    """The overlay, its data URI, the JSON body, and the whole Detector.predict with and without Grad-CAM."""
    rgb = display_image(decoded.image, detector.overlay_size)
    add(f"overlay image ({rgb.shape[1]}x{rgb.shape[0]}) + JPEG encode",
        timed(lambda: overlay_jpeg(display_image(decoded.image, detector.overlay_size), heat), repeats),
        rgb.size * 4 / bandwidth * 1000, "a few passes over the overlay's pixels")
    jpeg = overlay_jpeg(rgb, heat)
    add("base64 data URI", timed(lambda: jpeg_data_uri(jpeg), repeats), len(jpeg) * 2.33 / bandwidth * 1000,
        f"{len(jpeg)} JPEG bytes read, 4/3 as many written")
    result = detector.predict([decoded], [upload], explain=True)[0]
    body = json.dumps(result)
    add("JSON response body", timed(lambda: json.dumps(result), repeats), len(body) / bandwidth * 1000,
        f"{len(body):,} bytes written at memory bandwidth")
    add("whole Detector.predict (explain)", timed(lambda: detector.predict([decoded], [upload], explain=True),
                                                  repeats), None, "sum of the stages above it")
    add("whole Detector.predict (no explain)", timed(lambda: detector.predict([decoded], [upload], explain=False),
                                                     repeats), None, "decode is measured separately")


def profile(upload: bytes, detector: Detector, torch_forwards: dict, rates: dict, repeats: int) -> list[dict]:
    """Stage rows for one upload: name, measured ms, floor ms, what the floor is based on."""
    gflops, bandwidth = rates["matmul_gflops"] * 1e9, rates["copy_gbps"] * 1e9
    rows = []

    def add(stage: str, ms: float, floor_ms: float | None, basis: str) -> None:
        rows.append({"stage": stage, "ms": round(ms, 3), "floor_ms": None if floor_ms is None else round(floor_ms, 4),
                     "floor_basis": basis})

    decoded = decode_image(upload)
    add("decode (JPEG, full resolution)", timed(lambda: decode_image(upload), repeats),
        decoded.image.width * decoded.image.height * 3 / bandwidth * 1000,
        f"writing {decoded.image.width}x{decoded.image.height} RGB at memory bandwidth (entropy decoding excluded)")
    add("sha256 of the upload", timed(lambda: hashlib.sha256(upload).hexdigest(), repeats),
        len(upload) / bandwidth * 1000, f"{len(upload)} bytes at memory bandwidth")

    spec = detector.models[0].spec
    add("resize to 32x32 + normalise", timed(
        lambda: normalize_batch(torch.from_numpy(fit_to_input(decoded.image, spec.input_size)[None]), spec)
        .contiguous().numpy(), repeats), 32 * 32 * 3 * 4 / bandwidth * 1000, "one 32x32x3 float32 tensor written")
    batch = normalize_batch(torch.from_numpy(fit_to_input(decoded.image, spec.input_size)[None]), spec)
    batch = batch.contiguous().numpy()

    layer_outputs, p_fake, confidences = _forward_stages(detector, torch_forwards, batch, gflops, repeats, add)
    winner = int(np.argmax(confidences))
    target = int(p_fake[winner] >= detector.models[winner].threshold)
    heat = _gradcam_stages(detector.models[winner], layer_outputs[winner], target, gflops, repeats, add)
    _response_stages(detector, decoded, upload, heat, bandwidth, repeats, add)
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "profile.json"))
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads, as in one server worker")
    parser.add_argument("--markdown", help="also write the tables as a Markdown page (e.g. docs/performance.md)")
    parser.add_argument("--weights-dir", help="profile the checkpoints in this folder (default: saved_models/)")
    args = parser.parse_args(argv)

    rates = machine_rates(args.threads)
    settings = serving_settings({"weights_dir": args.weights_dir} if args.weights_dir else None)
    # the thumbnail (CIFAKE) pair's stages, every upload resized for it; docs/photo-models.md profiles the photo pair
    thumbnail_files = {k: v for k, v in settings["model_files"].items() if not k.endswith("_photo")}
    detector = Detector.from_weights_dir(settings["weights_dir"], thumbnail_files, runtime="onnxruntime",
                                         threads=args.threads, overlay_size=settings["overlay_size"])
    torch.set_num_threads(args.threads)
    torch_forwards = {m.name: TorchForward(split_at_gradcam_layer(m.metadata["arch"], m.model))
                      for m in detector.models}
    if not all(isinstance(m.forward, OnnxForward) for m in detector.models):
        print("warning: ONNX Runtime is not in use; the 'onnxruntime' rows are PyTorch", file=sys.stderr)

    cpu = machine_info()["cpu_model"] or platform.processor() or "unknown"
    report = {"machine": {"cpu": cpu, "cores": os.cpu_count(), "threads": args.threads,
                          "python": platform.python_version(), "torch": str(torch.__version__), **rates},
              "repeats": args.repeats, "uploads": {}}
    for name, upload in sample_uploads().items():
        rows = profile(upload, detector, torch_forwards, rates, args.repeats)
        report["uploads"][name] = {"bytes": len(upload), "stages": rows}
    tables = markdown_tables(report)
    print(tables)
    write_json(Path(args.output), report)
    if args.markdown:
        command = "python bench/profile_request.py " + " ".join(sys.argv[1:] if argv is None else argv)
        Path(args.markdown).write_text(PAGE_HEADER.format(command=command.strip()) + tables, encoding="utf-8")
    return report


PAGE_HEADER = """# Where the time of one request goes

Generated by `{command}` (the whole page; do not edit by hand). Each stage of the
request path is timed in-process on its own (median), with one intra-op thread, as in one server worker. The
*floor* is what the stage would cost if it ran at this machine's best measured rate: FLOPs over the fp32 matrix-
multiply rate, or bytes over the memory-copy bandwidth. *x floor* is how far above it the stage is; a big ratio
on a stage that matters is where time can still be won, a small one means the stage is near what the hardware
allows. HTTP and the WSGI server are not in this profile; `bench/load_test.py` measures requests end to end.
"""


def markdown_tables(report: dict) -> str:
    """The per-upload stage tables, with the machine they were measured on."""
    machine = report["machine"]
    lines = [f"\nMachine: {machine['cpu']}, {machine['cores']} cores, {machine['threads']} thread(s) used; "
             f"fp32 matmul {machine['matmul_gflops']} GFLOP/s, memory copy {machine['copy_gbps']} GB/s; "
             f"Python {machine['python']}, torch {machine['torch']}.\n"]
    for name, upload in report["uploads"].items():
        lines.append(f"\n## {name} ({upload['bytes']:,} bytes)\n")
        lines.append("| stage | measured ms | floor ms | x floor | floor basis |")
        lines.append("| --- | ---: | ---: | ---: | --- |")
        for row in upload["stages"]:
            floor = row["floor_ms"]
            ratio = "" if not floor else (f"{row['ms'] / floor:.2f}" if row["ms"] < 10 * floor
                                          else f"{row['ms'] / floor:,.0f}")
            lines.append(f"| {row['stage']} | {row['ms']:.3f} | {'' if floor is None else f'{floor:.4f}'} | {ratio} "
                         f"| {row['floor_basis']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
