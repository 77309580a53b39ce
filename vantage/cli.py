"""`vantage` command line: one subcommand per stage of render → train → export → serve → predict.

Subcommands import their stage lazily, so `vantage serve` and `vantage predict`
never load torch (an edge image has no training stack).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence


def _render(args: argparse.Namespace) -> int:
    from vantage.train.meshes import builtin_specs, scan_repository
    from vantage.train.render import RenderConfig, render_dataset

    specs = scan_repository(args.models) if args.models else []
    if args.builtin:
        specs += builtin_specs(args.builtin, first_seed=args.first_seed)
    if not specs:
        print("nothing to render: give --models DIR and/or --builtin N", file=sys.stderr)
        return 2
    cfg = RenderConfig(
        image_size=args.size,
        views_per_model=args.views,
        sampling=args.sampling,
        seed=args.seed,
        photo_dir=args.photos,
        crop=args.crop,
    )
    manifest = render_dataset(specs, args.out, cfg, workers=args.workers)
    print(f"wrote {manifest}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from vantage.train.config_file import load_train_config
    from vantage.train.trainer import train

    cfg = load_train_config(args.config, data=args.data, out=args.out, epochs=args.epochs, fusion=args.fusion)
    print(f"checkpoint: {train(cfg, resume=not args.restart)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from vantage.export.onnx_export import export_bundle
    from vantage.train.trainer import load_model

    model, info = load_model(args.checkpoint)
    history = info["history"]
    summary = {"epochs": info["epoch"] + 1, "last_epoch": history[-1] if history else {}, "checkpoint": str(args.checkpoint)}
    out = export_bundle(model, args.out, training=summary, crop_margin=info["config"].crop_margin)
    print(f"wrote bundle {out}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from vantage.serve.server import serve

    serve(args.model, host=args.host, port=args.port, max_workers=args.workers)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from vantage.serve.predict import predict_files

    if bool(args.server) == bool(args.model):
        print("give exactly one of --server HOST:PORT or --model BUNDLE", file=sys.stderr)
        return 2
    results = predict_files(args.images, server=args.server, model=args.model, box=args.box, category=args.category)
    for r in results:
        if args.json:
            print(json.dumps(r))
        elif "error" in r:
            print(f"{r['file']}: error: {r['error']}")
        else:
            v = r["viewpoint"]
            print(
                f"{r['file']}: {r['category']} ({r['category_scores'][r['category']]:.2f})"
                f"  azimuth {v['azimuth']:.1f}°  elevation {v['elevation']:.1f}°  theta {v['theta']:.1f}°"
            )
    return 1 if any("error" in r for r in results) else 0


def _quickstart(args: argparse.Namespace) -> int:
    from vantage.quickstart import QuickstartConfig, run_quickstart

    cfg = QuickstartConfig(
        out=args.out, instances=args.instances, views=args.views, epochs=args.epochs, workers=args.workers,
        test_instances=args.test_instances, test_views=args.test_views,
    )
    run_quickstart(cfg)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vantage", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="render labelled views of 3D models")
    r.add_argument("--out", required=True, help="output dataset folder")
    r.add_argument("--models", help="repository DIR/<category>/*.{off,obj,ply,stl,glb}")
    r.add_argument("--builtin", type=int, default=0, help="procedural models per category")
    r.add_argument("--first-seed", type=int, default=0, help="seed of the first procedural model")
    r.add_argument("--views", type=int, default=40, help="views per model")
    r.add_argument("--size", type=int, default=160, help="image size in pixels")
    r.add_argument("--sampling", choices=("random", "icosphere"), default="random")
    r.add_argument("--crop", choices=("none", "box", "square"), default="none")
    r.add_argument("--photos", help="folder of background photos")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=_render)

    t = sub.add_parser("train", help="train the joint category + pose network")
    t.add_argument("--config", help="YAML file of TrainConfig fields (see configs/)")
    t.add_argument("--data", nargs="+", help="rendered dataset folders")
    t.add_argument("--out", help="run folder (checkpoint, logs, curves)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--fusion", choices=("weighted", "top1"))
    t.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in --out")
    t.set_defaults(func=_train)

    e = sub.add_parser("export", help="export a checkpoint to a model bundle (ONNX + vantage.json)")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--out", required=True, help="bundle folder")
    e.set_defaults(func=_export)

    s = sub.add_parser("serve", help="serve a bundle over gRPC")
    s.add_argument("--model", required=True, help="bundle folder")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=50051)
    s.add_argument("--workers", type=int, default=8)
    s.set_defaults(func=_serve)

    q = sub.add_parser("predict", help="estimate category and pose of images")
    q.add_argument("images", nargs="+")
    q.add_argument("--server", help="HOST:PORT of a running `vantage serve`")
    q.add_argument("--model", help="bundle folder, run in-process")
    q.add_argument("--box", type=float, nargs=4, metavar=("X_MIN", "Y_MIN", "X_MAX", "Y_MAX"))
    q.add_argument("--category", help="known category name")
    q.add_argument("--json", action="store_true", help="one JSON object per image and line")
    q.set_defaults(func=_predict)

    k = sub.add_parser("quickstart", help="render, train, export, serve and measure on built-in models")
    k.add_argument("--out", default="runs/quickstart")
    k.add_argument("--instances", type=int, default=10, help="training models per category")
    k.add_argument("--views", type=int, default=40, help="training views per model")
    k.add_argument("--test-instances", type=int, default=3, help="unseen test models per category")
    k.add_argument("--test-views", type=int, default=8, help="views per unseen test model")
    k.add_argument("--epochs", type=int, default=25)
    k.add_argument("--workers", type=int, default=2)
    k.set_defaults(func=_quickstart)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
