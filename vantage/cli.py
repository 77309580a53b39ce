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
        ground_prob=args.ground_prob,
        coordinates=args.coordinates,
    )
    manifest = render_dataset(specs, args.out, cfg, workers=args.workers)
    print(f"wrote {manifest}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from vantage.train.config_file import load_train_config
    from vantage.train.distributed import is_main_process
    from vantage.train.trainer import train

    try:  # an unknown or mistyped setting: a message, not a traceback
        cfg = load_train_config(args.config, data=args.data, out=args.out, epochs=args.epochs, fusion=args.fusion,
                                sets=args.set or [])
    except ValueError as exc:
        print(f"vantage train: {exc}", file=sys.stderr)
        return 2
    ckpt = train(cfg, resume=not args.restart)
    if is_main_process():  # once under torchrun
        print(f"checkpoint: {ckpt}")
    return 0


# Renders used by `vantage export` and `vantage bench-export`: int8 calibration (more views gave steadier int8
# accuracy: 100 → +1.9°, 200 → +0.3° MedErr on the quickstart model) and evaluation.
CALIBRATION_VIEWS = 200
EVALUATION_VIEWS = 500


def _export(args: argparse.Namespace) -> int:
    from vantage.export.onnx_export import export_bundle
    from vantage.train.ensemble import exported_model

    if args.engine != "onnx":
        from vantage.export.tensorrt_engine import missing

        problem = missing()
        if problem:
            print(f"cannot build a TensorRT {args.engine} engine here: {problem}. "
                  "`--engine onnx` (the default) exports for ONNX Runtime only.", file=sys.stderr)
            return 2
    needs_calibration = "int8" in (args.quantize or []) or args.engine == "int8"
    if needs_calibration and not args.calibration:
        print("int8 needs --calibration DIR: rendered views of the training meshes (`vantage render`)", file=sys.stderr)
        return 2
    if args.quantize and not args.eval_data:
        print("--quantize needs --eval-data DIR: labelled held-out renders to measure the accuracy change on",
              file=sys.stderr)
        return 2
    model, info = exported_model(args.checkpoint, args.test_time)
    history = info["history"]
    summary = {"epochs": info["epoch"] + 1, "last_epoch": history[-1] if history else {},
               "checkpoint": [str(c) for c in args.checkpoint]}
    out = export_bundle(model, args.out, training=summary, crop_margin=info["config"].crop_margin)
    print(f"wrote bundle {out}")
    return _export_variants(args, out)


def _export_variants(args: argparse.Namespace, out: Path) -> int:
    """The optional parts of `vantage export`: quantised ONNX variants, a TensorRT plan, a Triton repository."""
    from vantage.bundle import load_metadata
    from vantage.export.renders import load_renders

    meta = load_metadata(out)
    status = 0
    calibration = load_renders(args.calibration, meta, limit=CALIBRATION_VIEWS) if args.calibration else None
    evaluation = load_renders(args.eval_data, meta, limit=EVALUATION_VIEWS) if args.eval_data else None
    if args.quantize:
        from vantage.export.quantize import build_variants

        results = build_variants(out, args.quantize, evaluation, calibration, args.max_mederr_increase)
        for name, e in results.items():
            if "refused" in e:
                print(e["refused"], file=sys.stderr)
                status = 1
                continue
            print(f"{name}: {e['file']}  MedErr {e['med_err']:.2f}° ({e['mederr_increase_deg']:+.2f}°)  "
                  f"cat-acc {e['cat_acc']:.3f} ({e['cat_acc_change']:+.3f})  "
                  f"batch-1 {e['latency_ms']['batch1']['median_ms']:.2f} ms ({e['speedup_vs_fp32']['batch1']:.2f}x fp32)")
    if args.engine != "onnx":
        from vantage.export.tensorrt_engine import EngineError, export_engine

        try:
            e = export_engine(out, args.engine, max_batch=args.max_batch, calibration=calibration,
                              comparison=evaluation, timing_cache=args.timing_cache)
            agree = e["agreement_with_onnxruntime"]
            print(f"TensorRT {args.engine}: {e['file']} for {e['gpu']} (TensorRT {e['tensorrt']}), "
                  f"median rotation difference to ONNX Runtime {agree['rotation_median_deg']:.3f}°, "
                  f"category agreement {agree['category_agreement']:.3f}")
        except EngineError as exc:
            print(f"TensorRT {args.engine}: {exc}", file=sys.stderr)
            status = 1
    if args.triton:
        from vantage.export.triton import write_repository

        for path in write_repository(out, args.triton, max_batch=args.max_batch):
            print(f"wrote Triton model {path.parent}")
    return status


def _bench_export(args: argparse.Namespace) -> int:
    from vantage.export.bench import format_table, run_bench

    result = run_bench(args.model, checkpoint=args.checkpoint, data=args.data, repeats=args.repeats,
                       limit=EVALUATION_VIEWS)
    print(format_table(result))
    path = Path(args.json) if args.json else Path(args.model) / "bench.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from vantage.serve.config import config_from_args
    from vantage.serve.server import serve

    try:  # bad settings, files or paths: a message, not a traceback
        serve(config_from_args(args))
    except ValueError as exc:
        print(f"vantage serve: {exc}", file=sys.stderr)
        return 2
    return 0


def _bench(args: argparse.Namespace) -> int:
    from vantage.serve.bench import bench_from_args

    return bench_from_args(args)


def _predict(args: argparse.Namespace) -> int:
    import grpc

    from vantage.serve.predict import predict_files
    from vantage.serve.security import client_security

    if bool(args.server) == bool(args.model):
        print("give exactly one of --server HOST:PORT or --model BUNDLE", file=sys.stderr)
        return 2
    secured = [args.token_file, args.tls_ca, args.tls_cert, args.tls_key]
    if args.model and any(secured):
        print("--token-file and --tls-* reach a server: they go with --server, not --model", file=sys.stderr)
        return 2
    try:  # unreadable token, half a client certificate: a message, not a traceback
        options = client_security(*secured)
        results = predict_files(args.images, server=args.server, model=args.model, box=args.box,
                                category=args.category, concurrency=args.concurrency, client_options=options,
                                alternatives=args.alternatives, camera=args.camera, gravity=args.gravity,
                                upright=args.upright)
    except ValueError as exc:
        print(f"vantage predict: {exc}", file=sys.stderr)
        return 2
    except TimeoutError as exc:  # the server never answered SERVING
        print(f"vantage predict: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:  # refused (token, certificate) or failed for every file alike
        print(f"vantage predict: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    for r in results:
        if args.json:
            print(json.dumps(r))
        elif "error" in r:
            print(f"{r['file']}: error: {r['error']}")
        else:
            v = r["viewpoint"]
            confidence = f"  pose confidence {r['pose_confidence']:.2f}" if "pose_confidence" in r else ""
            print(
                f"{r['file']}: {r['category']} ({r['category_scores'][r['category']]:.2f})"
                f"  azimuth {v['azimuth']:.1f}°  elevation {v['elevation']:.1f}°  theta {v['theta']:.1f}°{confidence}"
            )
            for alt in r.get("alternatives", []):
                a = alt["viewpoint"]
                print(f"    or azimuth {a['azimuth']:.1f}°  elevation {a['elevation']:.1f}°  theta {a['theta']:.1f}°"
                      f"  (score {alt['score']:.3f})")
    return 1 if any("error" in r for r in results) else 0


def _index(args: argparse.Namespace) -> int:
    from vantage.serve.retrieval import INDEX_DIR_NAME, HnswParams
    from vantage.train.indexing import IndexConfig, add_models, build_index
    from vantage.train.meshes import builtin_specs, scan_repository

    specs = scan_repository(args.models) if args.models else []
    if args.builtin:
        specs += builtin_specs(args.builtin)
    if not specs:
        print("nothing to index: give --models DIR and/or --builtin N", file=sys.stderr)
        return 2
    out = args.out or str(Path(args.model) / INDEX_DIR_NAME)
    if args.add:
        index, skipped = add_models(out, args.model, specs, workers=args.workers, threads=args.threads)
        if skipped:
            print(f"already indexed, skipped: {len(skipped)} models")
    else:
        cfg = IndexConfig(subdivisions=args.subdivisions, upper_hemisphere=args.upper_hemisphere,
                          backgrounds=args.backgrounds, tilts=tuple(args.tilts), pca_dim=args.pca,
                          hnsw=HnswParams(M=args.M, ef_construction=args.ef_construction, ef=args.ef))
        index = build_index(args.model, specs, out, cfg, workers=args.workers, threads=args.threads)
    d = index.projection.describe()
    print(f"wrote {out}: {len(index)} views of {len(index.model_ids)} models "
          f"({', '.join(index.categories)}), {d['kind']} {d['dim']}-d descriptors")
    return 0


def _off_axis(args: argparse.Namespace) -> int:
    from vantage.train.off_axis import OffAxisConfig, make_off_axis

    manifest = make_off_axis(args.data, args.out, OffAxisConfig(max_angle=args.max_angle, seed=args.seed,
                                                                max_roll=args.max_roll))
    print(f"wrote {manifest}")
    return 0


def _corrupt(args: argparse.Namespace) -> int:
    from vantage.train.corruptions import make_corrupted

    try:  # a missing data folder, an output folder over its input: a message, not a traceback
        manifest = make_corrupted(args.data, args.out, args.corruption, args.severity, args.seed)
    except (ValueError, FileNotFoundError) as exc:
        print(f"vantage corrupt: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {manifest}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from vantage.train.evaluate import evaluate
    from vantage.train.metrics import format_table

    try:  # a missing model or data folder, views without intrinsics, --upright alone: a message, not a traceback
        report = evaluate(args.model, args.data, args.out, models=args.models, camera=args.camera,
                          gravity=args.gravity, upright=args.upright)
    except (ValueError, FileNotFoundError) as exc:
        print(f"vantage eval: {exc}", file=sys.stderr)
        return 2
    print(format_table(report))
    if "symmetry" in report:
        sym = report["symmetry"]["overall"]
        print(f"symmetry-reduced (each mesh's own rotations about its up axis forgiven): MedErr {sym['med_err']:.2f}°  "
              f"Acc@π/6 {sym['acc_pi6']:.3f}")
    if args.out:
        print(f"wrote {args.out}/report.md, report.json, per_image.csv and plots")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from vantage.train.calibrate import calibrate

    if len(args.model) != len(args.data):
        raise SystemExit(f"give one --data per --model (got {len(args.model)} --model, {len(args.data)} --data)")
    report = calibrate(list(zip(args.model, args.data)), args.into or (), args.within, args.out)
    cal = report["calibration"]
    for name in ("answer", "alternatives"):
        slope, bias = cal[name]
        print(f"{name}: P(within {cal['within_deg']:g}°) = σ({slope:.3f} · logit(score) {bias:+.3f})")
    print(f"fitted on {cal['views']} views")
    for name, key in (("answers", "ece_answer"), ("all shown hypotheses", "ece_all")):
        print(f"expected calibration error of {name} on those views: raw {report[key]['raw']:.3f} → "
              f"{report[key]['calibrated']:.3f}")
    print("wrote the calibration into " + ", ".join(report["into"])
          + (f"; {args.out}/reliability.png" if args.out else ""))
    return 0


def _recipe(args: argparse.Namespace) -> int:
    from vantage.train.config_file import override
    from vantage.train.recipe import RecipeConfig, check_recipe, run_recipe

    given = {"input_size": args.input_size, "members": args.members, "fold": args.fold,
             "held_out_per_category": args.held_out,
             "member_backbones": tuple(args.member_backbones) if args.member_backbones else None}
    cfg = RecipeConfig(models=args.models, out=args.out, photos=args.photos, workers=args.workers,
                       **{k: v for k, v in given.items() if v is not None})
    try:  # settings unknown or the networks cannot take: a message before any rendering, not a traceback
        override(cfg, args.set or [])
        check_recipe(cfg)
    except ValueError as exc:
        print(f"vantage recipe: {exc}", file=sys.stderr)
        return 2
    run_recipe(cfg)
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from vantage.quickstart import QuickstartConfig, run_quickstart

    cfg = QuickstartConfig(
        out=args.out, instances=args.instances, views=args.views, epochs=args.epochs, workers=args.workers,
        test_instances=args.test_instances, test_views=args.test_views,
    )
    run_quickstart(cfg)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from vantage.demo import DemoConfig, run_demo

    try:  # contradictory options (two gravities, upright without one): a message, not a traceback
        cfg = DemoConfig(
            source=args.source, server=args.server, model=args.model, box_mode=args.box_mode,
            box=tuple(args.box) if args.box else None, category=args.category, headless=args.headless,
            out=args.out, max_frames=args.frames, synthetic_category=args.synthetic_category,
            synthetic_off_axis=args.synthetic_off_axis, camera=tuple(args.camera) if args.camera else None,
            gravity=tuple(args.gravity) if args.gravity else None, synthetic_gravity=args.synthetic_gravity,
            upright=args.upright,
        )
        summary = run_demo(cfg)
    except ValueError as exc:
        print(f"vantage demo: {exc}", file=sys.stderr)
        return 2
    err = summary["median_pose_error_deg"]
    print(
        f"{summary['frames']} frames, {summary['fps']:.1f} fps, p50 latency {summary['latency_ms_p50']:.1f} ms"
        + (f", median pose error {err:.1f}°" if err is not None else "")
        + "".join(f", {n} {why}" for why, n in summary["frames_skipped"].items())
    )
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
    r.add_argument("--ground-prob", type=float, default=0.0,
                   help="share of views that cast the object's shadow on a ground plane under it (0 to 1)")
    r.add_argument("--coordinates", action="store_true",
                   help="also save each view's object-coordinate map (coords/), the target of a model trained with "
                        "model.coordinates (uncropped views only)")
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
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change any TrainConfig setting, a dotted path, the value read as YAML (repeatable; applied "
                        "last), e.g. --set model.shared_head_input=256 --set augment.occlude_prob=0.5")
    t.set_defaults(func=_train)

    e = sub.add_parser("export", help="export a checkpoint to a model bundle (ONNX + vantage.json)")
    e.add_argument("--checkpoint", required=True, nargs="+",
                   help="one checkpoint, or several members of an ensemble (vantage.train.ensemble: each "
                        "distinct frozen backbone runs once, poses are voted on SO(3))")
    e.add_argument("--out", required=True, help="bundle folder")
    e.add_argument("--test-time", choices=("none", "flip"), default="none",
                   help="flip: the graph also runs the mirrored crop and averages the poses on SO(3) (more "
                        "accurate, twice the backbone compute; vantage.train.test_time)")
    e.add_argument("--quantize", nargs="+", choices=("int8", "fp16"),
                   help="ONNX Runtime variants (backbone only): static int8 QDQ and/or float16")
    e.add_argument("--engine", choices=("onnx", "fp32", "fp16", "int8"), default="onnx",
                   help="also build a TensorRT plan of this precision (needs TensorRT and an NVIDIA GPU)")
    e.add_argument("--calibration", help="renders (`vantage render` folder) to calibrate int8 on")
    e.add_argument("--eval-data", help="labelled held-out renders to measure each variant's accuracy on")
    e.add_argument("--max-mederr-increase", type=float, default=1.0,
                   help="refuse a variant whose MedErr rises by more than this many degrees")
    e.add_argument("--max-batch", type=int, default=8, help="largest batch of TensorRT plans and Triton models")
    e.add_argument("--timing-cache", help="TensorRT timing cache file (default BUNDLE/tensorrt.timing.cache)")
    e.add_argument("--triton", help="also write a Triton Inference Server model repository here")
    e.set_defaults(func=_export)

    b = sub.add_parser("bench-export", help="latency and agreement of every runtime of a bundle, one run")
    b.add_argument("--model", required=True, help="bundle folder")
    b.add_argument("--checkpoint", nargs="+", help="checkpoint(s) of the bundle, for the PyTorch eager row")
    b.add_argument("--data", help="labelled held-out renders: inputs, MedErr and cat-acc")
    b.add_argument("--repeats", type=int, default=50)
    b.add_argument("--json", help="result file (default BUNDLE/bench.json)")
    b.set_defaults(func=_bench_export)

    from vantage.serve.bench import add_bench_arguments
    from vantage.serve.config import add_config_arguments
    from vantage.serve.security import add_client_arguments

    s = sub.add_parser("serve", help="serve a bundle (or a folder of bundle versions) over gRPC")
    add_config_arguments(s)
    s.set_defaults(func=_serve)

    b = sub.add_parser("bench", help="measure a server's throughput and latency (perf_analyzer-like)")
    add_bench_arguments(b)
    b.set_defaults(func=_bench)

    q = sub.add_parser("predict", help="estimate category and pose of images")
    q.add_argument("images", nargs="+")
    q.add_argument("--server", help="HOST:PORT of a running `vantage serve`")
    q.add_argument("--model", help="bundle folder, run in-process")
    q.add_argument("--box", type=float, nargs=4, metavar=("X_MIN", "Y_MIN", "X_MAX", "Y_MAX"))
    q.add_argument("--category", help="known category name")
    q.add_argument("--camera", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                   help="the camera's intrinsics in pixels of the images: the pose is turned to its optical axis "
                        "(without them it is relative to the ray through the box centre)")
    q.add_argument("--gravity", type=float, nargs=3, metavar=("GX", "GY", "GZ"),
                   help="gravity's direction in the camera's axes (x right, y down, z forward), e.g. from a phone's "
                        "accelerometer: the crop is levelled before the model sees it and the pose turned back")
    q.add_argument("--upright", action="store_true",
                   help="with --gravity: the object stands upright, so only its azimuth comes from the image")
    q.add_argument("--json", action="store_true", help="one JSON object per image and line")
    q.add_argument("--concurrency", type=int, default=4,
                   help="with --server: Estimate calls in flight at once, which the server may batch (default 4)")
    q.add_argument("--alternatives", type=int, default=0,
                   help="also print up to this many alternative poses, each with its score (default 0)")
    add_client_arguments(q)
    q.set_defaults(func=_predict)

    x = sub.add_parser("index", help="render, embed and index views of 3D models for image-graphics search")
    x.add_argument("--model", required=True, help="bundle folder whose graph embeds the views")
    x.add_argument("--models", help="repository DIR/<category>/*.{off,obj,ply,stl,glb}")
    x.add_argument("--builtin", type=int, default=0, help="procedural models per category")
    x.add_argument("--out", help="index folder (default BUNDLE/index, which `vantage serve` loads)")
    x.add_argument("--add", action="store_true", help="add models not yet in the index at --out (no rebuild)")
    x.add_argument("--subdivisions", type=int, default=2, help="icosphere subdivisions (2: 162 directions)")
    x.add_argument("--upper-hemisphere", action="store_true", help="only cameras at elevation >= 0")
    x.add_argument("--backgrounds", type=int, default=2, help="renders per viewpoint, each on its own background")
    x.add_argument("--tilts", type=float, nargs="+", default=[0.0], help="in-plane rotations (degrees) per viewpoint")
    x.add_argument("--pca", type=int, default=256, help="PCA descriptor dimension (<= 512); 0 = raw embedding")
    x.add_argument("--M", type=int, default=16, help="hnswlib graph degree")
    x.add_argument("--ef-construction", type=int, default=200)
    x.add_argument("--ef", type=int, default=64, help="hnswlib query beam (raised to k when smaller)")
    x.add_argument("--workers", type=int, default=1, help="render processes (0 = in this process)")
    x.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    x.set_defaults(func=_index)

    v = sub.add_parser("eval", help="evaluate a bundle or checkpoint on labelled renders (report, CSV, plots)")
    v.add_argument("--model", required=True, help="bundle folder or checkpoint file")
    v.add_argument("--data", required=True, help="rendered dataset folder (manifest.jsonl)")
    v.add_argument("--out", help="report folder: report.md, report.json, per_image.csv, PNG plots")
    v.add_argument("--models", help="mesh repository the test views were rendered from, for renders whose manifest "
                                    "predates recorded symmetries: adds the error reduced by each mesh's own "
                                    "symmetries (newer renders and built-in models need no mesh)")
    v.add_argument("--camera", action="store_true",
                   help="turn each answer from its crop's ray to the view's optical axis with the view's intrinsics, "
                        "as the server does for a request with `camera` (views off the axis: `vantage off-axis`)")
    v.add_argument("--gravity", action="store_true",
                   help="level each crop by the view's gravity (its object stands upright) and turn the answer back, "
                        "as the server does for a request with `gravity` (rolled views: `vantage off-axis --max-roll`)")
    v.add_argument("--upright", action="store_true",
                   help="with --gravity: stand each answer upright against it, as for a request with `upright`")
    v.set_defaults(func=_eval)

    oa = sub.add_parser("off-axis", help="re-image labelled renders by a camera turned away from the object "
                                         "(objects off the optical axis, as in photos; for `vantage eval --camera`)")
    oa.add_argument("--data", required=True, help="rendered dataset folder (manifest.jsonl)")
    oa.add_argument("--out", required=True, help="output dataset folder (replaced)")
    oa.add_argument("--max-angle", type=float, default=30.0,
                    help="largest angle between the optical axis and the object's centre, degrees (default 30)")
    oa.add_argument("--max-roll", type=float, default=0.0,
                    help="also roll the camera about its axis by up to this many degrees either way (default 0)")
    oa.add_argument("--seed", type=int, default=0)
    oa.set_defaults(func=_off_axis)

    from vantage.train.corruptions import CORRUPTIONS, SEVERITIES

    co = sub.add_parser("corrupt", help="copy labelled renders as a camera would spoil them (noise, exposure, blur, "
                                        "JPEG, colour cast, low resolution, occlusion; for `vantage eval`)")
    co.add_argument("--data", required=True, help="rendered dataset folder (manifest.jsonl)")
    co.add_argument("--out", required=True, help="output dataset folder (replaced)")
    co.add_argument("--corruption", required=True, choices=list(CORRUPTIONS))
    co.add_argument("--severity", type=int, default=2, choices=list(SEVERITIES), help="1 (mild) to 3 (severe)")
    co.add_argument("--seed", type=int, default=0)
    co.set_defaults(func=_corrupt)

    cb = sub.add_parser("calibrate", help="fit a bundle's pose confidence to labelled views it never trained on")
    cb.add_argument("--model", action="append", required=True, help="bundle folder (repeat, paired with --data)")
    cb.add_argument("--data", action="append", required=True,
                   help="labelled views the bundle did not train on (manifest.jsonl; repeat, one per --model)")
    cb.add_argument("--into", action="append", help="bundle to write the calibration into (repeat; default: every "
                                                   "--model): cross-fit from other folds' bundles and views")
    cb.add_argument("--within", type=float, default=30.0, help="degrees: the confidence is P(error < this)")
    cb.add_argument("--out", help="folder for reliability.png")
    cb.set_defaults(func=_calibrate)

    c = sub.add_parser("recipe", help="train, export and evaluate a reference model on a mesh repository")
    c.add_argument("name", choices=("reference",))
    c.add_argument("--models", required=True, help="repository DIR/<category>/*.off (e.g. ../shared/data/pascal3d_cad)")
    c.add_argument("--out", required=True, help="run folder; the bundle lands in OUT/bundle")
    c.add_argument("--photos", help="folder of background photos (else procedural textures)")
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--input-size", type=int,
                   help="network input side in pixels, a multiple of 64 with the default tap and 2x2 embedding grid; "
                        "views are rendered at 1.25x it (default: RecipeConfig's, 192)")
    c.add_argument("--members", type=int,
                   help="ensemble members trained side by side, one process each (default: RecipeConfig's, 2)")
    c.add_argument("--member-backbones", nargs="+", metavar="BACKBONE",
                   help="feature network of each member, one per member (e.g. efficientnet_lite0 efficientnet_lite1; "
                        "default: all on efficientnet_lite0)")
    c.add_argument("--fold", type=int,
                   help="which mesh of each category is held out for the test (default 0); folds 0, 1, 2 hold out "
                        "disjoint meshes of the PASCAL3D+ repository: how much the figures depend on that choice")
    c.add_argument("--held-out", type=int, metavar="N",
                   help="meshes held out per category for the test (default 1); 0 trains on every mesh and "
                        "evaluates nothing: the bundle to ship once the folds have measured the recipe")
    c.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change any RecipeConfig setting, a dotted path, the value read as YAML (repeatable; applied "
                        "after the flags above), e.g. --set train.instance_adversary=0.1 --set cad_views=320: "
                        "how each lever of docs/RESULTS.md reruns")
    c.set_defaults(func=_recipe)

    d = sub.add_parser("demo", help="live pose overlay on camera, video or synthetic frames: axes, and the "
                                    "retrieved 3D model's wireframe when the model has a view index")
    d.add_argument("--source", default="synthetic", help="camera index (0), video file, or 'synthetic'")
    d.add_argument("--server", help="HOST:PORT: stream frames through EstimateStream")
    d.add_argument("--model", help="bundle folder, run in-process")
    d.add_argument("--box-mode", choices=("source", "given", "center", "foreground"), default="source",
                   help="source: the synthetic source's true box (else centre); given: --box; center: centred "
                        "square; foreground: largest region unlike the border colour")
    d.add_argument("--box", type=float, nargs=4, metavar=("X_MIN", "Y_MIN", "X_MAX", "Y_MAX"))
    d.add_argument("--category", help="known category name")
    d.add_argument("--headless", action="store_true", help="no window (use with --out)")
    d.add_argument("--out", help="write the annotated video here (.mp4) and a summary .json beside it")
    d.add_argument("--frames", type=int, help="stop after this many frames (synthetic: trajectory length, 48)")
    d.add_argument("--synthetic-category", default="car")
    d.add_argument("--synthetic-off-axis", type=float, default=0.0, metavar="DEG",
                   help="put the synthetic object this far off the optical axis, circling the frame (default 0)")
    d.add_argument("--camera", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                   help="the camera's intrinsics in pixels of its frames: sent with every frame, so the pose is "
                        "relative to the optical axis and drawn in perspective (synthetic frames send their own)")
    d.add_argument("--gravity", type=float, nargs=3, metavar=("GX", "GY", "GZ"),
                   help="which way is down in the camera's axes (x right, y down, z forward), for a camera fixed on "
                        "a robot or a tripod (level: 0 1 0): sent with every frame, the crop is levelled")
    d.add_argument("--synthetic-gravity", action="store_true",
                   help="send each synthetic frame's own gravity, as a phone's accelerometer would")
    d.add_argument("--upright", action="store_true",
                   help="the object stands against gravity (cars, chairs...): elevation and roll come from gravity")
    d.set_defaults(func=_demo)

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
