"""`vantage quickstart`: the whole product path once, on built-in procedural models.

render (train models, and unseen test models) → train → export bundle → start
`vantage serve` on a free loopback port → predict the unseen renders through gRPC
→ print MedErr, Acc@π/6, cat-acc and p50 latency, and write a contact sheet with
predicted (solid) and true (dashed) axes on each crop. Sized to finish in under
15 minutes on 2 CPU cores with the defaults.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

TEST_FIRST_SEED = 10_000  # built-in test models never overlap the training seeds


@dataclass
class QuickstartConfig:
    """Sizes of the main job; the defaults fit the 15-minute budget on 2 cores."""

    out: str = "runs/quickstart"
    instances: int = 10
    views: int = 40
    test_instances: int = 3
    test_views: int = 8
    epochs: int = 25
    workers: int = 2
    sheet_tiles: int = 48


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server_process(bundle: Path, port: int, log_path: Path) -> subprocess.Popen:
    """`vantage serve` as a child process, as a user would run it."""
    log = open(log_path, "w")
    cmd = [sys.executable, "-m", "vantage", "serve", "--model", str(bundle), "--port", str(port)]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _stage(name: str, t0: float) -> None:
    print(f"\n== {name}  (t = {time.time() - t0:.0f} s)", flush=True)


def run_quickstart(cfg: QuickstartConfig) -> dict:
    """Run the main job; returns (and writes to OUT/quickstart.json) its measurements."""
    from vantage.export.onnx_export import export_bundle
    from vantage.serve.client import PoseClient
    from vantage.train.data import load_crop, read_samples
    from vantage.train.meshes import builtin_specs
    from vantage.train.metrics import format_table, pose_report
    from vantage.train.render import RenderConfig, render_dataset
    from vantage.train.trainer import TrainConfig, load_model, train
    from vantage.categories import CATEGORIES
    from vantage.imaging import IMAGENET_MEAN, IMAGENET_STD, normalise
    from vantage.overlay import contact_sheet, draw_axes, label

    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    _stage("render built-in training and unseen test models", t0)
    t = time.time()
    train_dir, test_dir = out / "data" / "train", out / "data" / "test"
    render_dataset(builtin_specs(cfg.instances), train_dir, RenderConfig(views_per_model=cfg.views, seed=1), cfg.workers)
    render_dataset(
        builtin_specs(cfg.test_instances, first_seed=TEST_FIRST_SEED),
        test_dir,
        RenderConfig(views_per_model=cfg.test_views, seed=2),
        cfg.workers,
    )
    timings["render_s"] = time.time() - t

    _stage("train", t0)
    t = time.time()
    tcfg = TrainConfig(data=[str(train_dir)], out=str(out / "run"), epochs=cfg.epochs)
    ckpt = train(tcfg)
    timings["train_s"] = time.time() - t

    _stage("export bundle", t0)
    t = time.time()
    model, info = load_model(ckpt)
    test_samples = read_samples(test_dir, list(CATEGORIES))
    parity = normalise(np.stack([load_crop(s, tcfg.model.input_size, tcfg.crop_margin) for s in test_samples[:8]]), IMAGENET_MEAN, IMAGENET_STD)
    history = info["history"]
    bundle = export_bundle(
        model, out / "bundle", training={"epochs": cfg.epochs, "train_models_per_category": cfg.instances,
                                          "last_epoch": history[-1] if history else {}},
        crop_margin=tcfg.crop_margin, parity_images=parity,
    )
    timings["export_s"] = time.time() - t

    _stage("serve on a free loopback port and predict unseen models through gRPC", t0)
    port = free_port()
    server = start_server_process(bundle, port, out / "server.log")
    try:
        client = PoseClient(f"127.0.0.1:{port}")
        client.wait_ready(timeout=120)
        latencies, results = [], []
        for s in test_samples:
            data = s.image_path.read_bytes()
            t = time.perf_counter()
            results.append(client.estimate_result(data, box=list(s.box)))
            latencies.append((time.perf_counter() - t) * 1000.0)
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)

    pred_rot = np.array([r.rotation for r in results], np.float64)
    true_rot = np.stack([s.rotation for s in test_samples])
    report = pose_report(pred_rot, true_rot, [r.category for r in results],
                         [CATEGORIES[s.category] for s in test_samples], CATEGORIES)
    lat = np.asarray(latencies)
    summary = {
        "config": asdict(cfg),
        "test_images": len(test_samples),
        "overall": report["overall"],
        "mean_over_categories": report["mean_over_categories"],
        "per_category": report["per_category"],
        "latency_ms": {"p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
                       "p99": float(np.percentile(lat, 99))},
        "stage_seconds": timings,
        "total_seconds": time.time() - t0,
    }

    tiles = []
    step = max(1, len(test_samples) // cfg.sheet_tiles)
    for s, r, err in list(zip(test_samples, results, report["errors_deg"]))[::step][: cfg.sheet_tiles]:
        crop = load_crop(s, 128, tcfg.crop_margin)
        tile = draw_axes(draw_axes(crop, s.rotation, 1, dashed=True), np.array(r.rotation), 2)
        ok = r.category == CATEGORIES[s.category]
        tiles.append(label(tile, f"{r.category[:9]} {err:.0f}deg", (255, 255, 255) if ok else (255, 80, 80)))
    sheet = out / "contact_sheet.png"
    cv2.imwrite(str(sheet), contact_sheet(tiles)[:, :, ::-1])
    (out / "quickstart.json").write_text(json.dumps(summary, indent=2))

    print("\n" + format_table(report))
    print(
        f"\nunseen built-in models: {len(test_samples)} images  MedErr {report['overall']['med_err']:.1f}°  "
        f"Acc@π/6 {report['overall']['acc_pi6']:.3f}  cat-acc {report['overall']['cat_acc']:.3f}  "
        f"gRPC p50 latency {summary['latency_ms']['p50']:.1f} ms"
    )
    print(f"total {summary['total_seconds']:.0f} s; bundle {bundle}; contact sheet {sheet}; summary {out / 'quickstart.json'}")
    return summary
