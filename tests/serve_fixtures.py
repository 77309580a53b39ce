"""A real, small model bundle made by the real exporter, for serving tests.

The network is Vantage's joint network (ImageNet EfficientNet-Lite0 features, random
heads, 64² inputs) exported by `vantage.export.onnx_export`, so
serving tests run the exact graph contract a trained bundle has.
"""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

from vantage.categories import CATEGORIES
from vantage.serve.bench_images import synthetic_image as make_test_image  # noqa: F401 (the tests' images)

INPUT_SIZE = 64


def make_tiny_bundle(
    path: str | Path, categories: tuple[str, ...] = CATEGORIES, input_size: int = INPUT_SIZE
) -> Path:
    """Export a random-weight joint network to a bundle at `path` and return `path`."""
    import torch

    from vantage.export.onnx_export import export_bundle
    from vantage.train.model import JointPoseNet, ModelConfig

    torch.manual_seed(0)
    model = JointPoseNet(
        ModelConfig(categories=list(categories), input_size=input_size, head_hidden=(32, 16), pretrained=True)
    )
    with torch.no_grad():  # spread the heads so that rotations differ between categories
        for head in model.pose_heads:
            head.net[-1].weight.mul_(20.0)
            head.net[-1].bias.normal_(0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_bundle(model.eval(), path, training={"note": "random weights, serving tests only"},
                             model_version="test-1", name="tiny-test")


def process_resources() -> tuple[int, int, int]:
    """(OS threads, Python threads, resident memory in bytes) of this process, from /proc.

    The gRPC handler pool ("vantage-grpc-*") starts its threads lazily, up to the
    configured `workers`: growth up to there is not a leak, so those are not counted.
    """
    import threading

    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    pool = sum(t.name.startswith("vantage-grpc") for t in threading.enumerate())
    return int(status["Threads"]) - pool, threading.active_count() - pool, int(status["VmRSS"].split()[0]) * 1024


def edited_bundle(bundle: Path, dest: Path, **changes) -> Path:
    """A copy of `bundle` at `dest` whose vantage.json has `changes` (a field's new value, or what a bundle
    written by another Vantage version, or by hand, would say)."""
    import json
    import shutil

    shutil.copytree(bundle, dest)
    meta = json.loads((dest / "vantage.json").read_text())
    meta.update(changes)
    (dest / "vantage.json").write_text(json.dumps(meta))
    return dest


def add_version(bundle: Path, models: Path, version: str, model_version: str | None = None) -> Path:
    """Copy `bundle` to `models/<version>/` (written under a hidden name, then renamed into place)."""
    import json
    import shutil

    hidden = models / f".{version}.tmp"
    shutil.copytree(bundle, hidden)
    if model_version is not None:
        meta = json.loads((hidden / "vantage.json").read_text())
        meta["model_version"] = model_version
        (hidden / "vantage.json").write_text(json.dumps(meta))
    return hidden.rename(models / version)


def slow_server(tiny_bundle: Path, delay_s: float, **config):
    """A server whose every inference batch takes `delay_s` longer; `.runs` records the batch sizes
    and `.running` is set once a batch has started (both reset after the warm-up)."""
    from vantage.serve.config import ServerConfig
    from vantage.serve.engine import Predictor
    from vantage.serve.server import start_server

    predictor = Predictor(tiny_bundle, intra_op_threads=1)
    run = predictor.run
    predictor.runs = []
    predictor.running = threading.Event()

    def slow_run(prepared):
        predictor.running.set()
        time.sleep(delay_s)
        predictor.runs.append(len(prepared))
        return run(prepared)

    predictor.run = slow_run
    running = start_server(predictor, ServerConfig(port=0, **config))  # returns once warmed up
    predictor.runs.clear()
    predictor.running.clear()
    return running, predictor
