"""`python -m backend.cli predict PATH... --engine ray`: the batch CLI distributed by Ray Data.

Ray only distributes. The paths become a Ray dataset. `map_batches` hands each batch to a callable class that loads
the detector once per worker (Ray Data's batch-inference pattern). It scores its batch with the very function the
local engine uses (`backend.cli.score_chunk`), so a file gets the same row from either engine. Rows come back in
input order (`preserve_order`). Ray is an optional dependency (requirements-ray.txt): this module is imported only
when `--engine ray` is asked for, and the service never imports it.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

# ray.init(address=...) takes "auto", "local", "host:port" (a GCS address) or "ray://host:port" (Ray Client).
_ADDRESS = re.compile(r"^(auto|local|ray://[^\s:/]+:\d{1,5}|[^\s:/]+:\d{1,5})$")


def check_address(address: str | None) -> str | None:
    """The address as given, or ValueError saying what an address looks like."""
    if address is None:
        return None
    if not _ADDRESS.match(address.strip()):
        raise ValueError(f"--address {address!r} is not a Ray address: use host:port, ray://host:port or auto")
    return address.strip()


class DetectorBatchScorer:
    """One per Ray worker: loads the detector once, then scores batches of paths into rows (as JSON text)."""

    def __init__(self, settings: dict, runtime_threads: int) -> None:
        import torch

        from backend.detector import Detector
        from backend.settings import detector_options

        torch.set_num_threads(runtime_threads)
        self.max_pixels = settings["max_pixels"]
        self.detector = Detector.from_weights_dir(settings["weights_dir"], settings["model_files"],
                                                  runtime=settings["runtime"], threads=runtime_threads,
                                                  explanations=False, **detector_options(settings))

    def __call__(self, batch: dict) -> dict:
        from backend.cli import score_chunk

        rows = score_chunk([Path(p) for p in batch["path"]], self.detector, self.max_pixels)
        return {"index": batch["index"], "row": [json.dumps(row) for row in rows]}


def start_ray(address: str | None, cpus: int) -> None:
    """Join the cluster at `address`, or start a local Ray with `cpus` CPUs; RuntimeError saying why not."""
    import ray

    init = {"address": address} if address else {"num_cpus": cpus}
    try:
        ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False, **init)
    except Exception as error:  # Ray raises ConnectionError, RuntimeError, ValueError... with long texts
        raise RuntimeError(f"could not {'join the Ray cluster at ' + address if address else 'start Ray'}: "
                           f"{str(error).splitlines()[0][:300] if str(error) else type(error).__name__}") from None
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its execution plans and timings are not our output


def score_with_ray(paths: list[Path], settings: dict, batch_size: int, workers: int, runtime_threads: int,
                   progress: bool = True) -> Iterator[dict]:
    """One row per path, in input order, scored by `workers` Ray actors on the Ray that `start_ray` joined or
    started; shuts Ray down when done."""
    import ray

    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = progress
        items = [{"index": index, "path": str(path)} for index, path in enumerate(paths)]
        dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items) // batch_size + 1, 10_000)))
        scored = dataset.map_batches(DetectorBatchScorer, batch_size=batch_size, batch_format="numpy",
                                     fn_constructor_kwargs={"settings": settings, "runtime_threads": runtime_threads},
                                     concurrency=workers, num_cpus=runtime_threads, max_restarts=0)
        for record in scored.iter_rows():
            yield json.loads(record["row"])
    finally:
        ray.shutdown()
