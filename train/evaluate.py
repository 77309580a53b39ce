"""`vantage eval`: a bundle or a checkpoint on a rendered dataset → per-image CSV, report JSON/markdown, plots.

Everything goes through the model contract forward(image, category_hint), so a
bundle (ONNX Runtime) and a checkpoint (PyTorch) are measured the same way. Besides
the fused prediction (hint = zeros) the model is run with the hint set to each of
its top-3 categories and to the true one, which gives the joint-pose paper's
Table 13 (pose error with the top-1/2/3 categories' heads, and with the oracle).
Where a test view's symmetry is known (recorded in manifests since format 2; for
older renders detected on the mesh: built-in models always, mesh files with
`models`), the report also gives the symmetry-reduced error of
`vantage.train.symmetry`: how much of the plain error no image could remove.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable

import numpy as np

from vantage.bundle import HYPOTHESIS_OUTPUT_NAMES, METADATA_FILE, OUTPUT_NAMES, load_metadata
from vantage.geometry import (axis_angle_to_rotation, checked_gravity, geodesic_distance, rotation_to_axis_angle,
                              rotation_to_viewpoint, stand_upright)
from vantage.train.data import Sample, batches, normalised_crops, read_samples, view_turns
from vantage.train.meshes import MeshError, ModelSpec, builtin_spec, scan_repository
from vantage.train.metrics import (by_category, elevation_report, hypothesis_report, miss_kinds, miss_report, pose_report,
                                   summarise)
from vantage.train.report import write_report

# hints (N, K) → named outputs: category_probs, rotation, and pose_hypotheses / hypothesis_scores where the model has them
Runner = Callable[[np.ndarray], dict[str, np.ndarray]]
EVAL_OUTPUTS = ("category_probs", "rotation", *HYPOTHESIS_OUTPUT_NAMES)


def bundle_runner(bundle: Path, data: str | Path, calibrated: bool = True, camera: bool = False,
                  gravity: bool = False) -> tuple[list[str], list[Sample], Runner]:
    """Categories, samples and a runner of an exported bundle (ONNX Runtime, CPU).

    `calibrated`: hypothesis scores through the bundle's confidence calibration, as the server
    reports them; False gives the graph's raw scores (what `vantage calibrate` fits).
    `camera`, `gravity`: crops of the views as the server takes them for a request with the camera
    or gravity (vantage.train.data.view_turns); the answers stay in the crops' axes (`with_turns`).
    """
    from vantage.export.onnx_export import ort_session

    meta = load_metadata(bundle)
    calibration = meta.calibration() if calibrated else None
    samples = read_samples(data, meta.categories)
    x = normalised_crops(samples, meta.input_size, meta.crop_margin, meta.mean, meta.std,
                         views=view_turns(samples, camera, gravity))
    sess = ort_session(bundle / meta.onnx_file)
    names = [n for n in EVAL_OUTPUTS if n in meta.output_names]  # bundles exported before hypotheses lack them

    def run(hints: np.ndarray) -> dict[str, np.ndarray]:
        outs = [sess.run(names, {meta.input_name: x[sl], meta.hint_name: hints[sl]}) for sl in batches(len(x), 64)]
        fused = {n: np.concatenate([o[i] for o in outs]) for i, n in enumerate(names)}
        if calibration is not None and "hypothesis_scores" in fused:
            fused["hypothesis_scores"] = calibration.apply(fused["hypothesis_scores"])
        return fused

    return meta.categories, samples, run


def checkpoint_runner(checkpoint: Path, data: str | Path, camera: bool = False,
                      gravity: bool = False) -> tuple[list[str], list[Sample], Runner]:
    """Categories, samples and a runner of a training checkpoint (as its one-network bundle would answer);
    frozen features are computed once; `camera`, `gravity` as for `bundle_runner`."""
    import torch

    from vantage.imaging import IMAGENET_MEAN, IMAGENET_STD
    from vantage.train.hypotheses import conclude
    from vantage.train.trainer import load_model

    model, info = load_model(checkpoint)
    cfg = model.config
    samples = read_samples(data, cfg.categories)
    x = normalised_crops(samples, cfg.input_size, info["config"].crop_margin, IMAGENET_MEAN, IMAGENET_STD,
                         views=view_turns(samples, camera, gravity))
    with torch.no_grad():
        feats = [model.features(torch.from_numpy(x[sl])) for sl in batches(len(x), 64)]

    def run(hints: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outs = [conclude(model.looks(f, torch.from_numpy(hints[sl]))) for f, sl in zip(feats, batches(len(x), 64))]
        return {n: torch.cat([o[i] for o in outs]).numpy() for i, n in enumerate(OUTPUT_NAMES) if n in EVAL_OUTPUTS}

    return list(cfg.categories), samples, run


def evaluate_runner(categories: list[str], samples: list[Sample], run: Runner,
                    meshes: dict[str, ModelSpec] | None = None) -> dict:
    """Metrics of one model on labelled samples: fused prediction, top-k heads, the oracle head, symmetry."""
    if not samples:
        raise ValueError(f"no test samples of the model's categories {categories}")
    n, k = len(samples), len(categories)
    true_idx = np.array([s.category for s in samples])
    true_rot = np.stack([s.rotation for s in samples])
    fused = run(np.zeros((n, k), np.float32))
    probs, rot = fused["category_probs"], fused["rotation"]
    eye = np.eye(k, dtype=np.float32)
    ranked = np.argsort(-probs, 1)[:, : min(3, k)]
    head_err = np.stack([geodesic_distance(run(eye[ranked[:, r]])["rotation"], true_rot)
                         for r in range(ranked.shape[1])], 1)
    oracle_err = geodesic_distance(run(eye[true_idx])["rotation"], true_rot)
    pred_names = [categories[i] for i in ranked[:, 0]]
    true_names = [categories[i] for i in true_idx]
    report = pose_report(rot, true_rot, pred_names, true_names, categories)
    hits = ranked == true_idx[:, None]
    report["topk"] = {
        **{f"top{r + 1}": {"cat_acc": float(hits[:, : r + 1].any(1).mean()),
                           "med_err": float(np.median(head_err[:, : r + 1].min(1)))} for r in range(ranked.shape[1])},
        "gt": {"cat_acc": 1.0, "med_err": float(np.median(oracle_err))},
    }
    confusion = np.zeros((k, k), int)
    np.add.at(confusion, (true_idx, ranked[:, 0]), 1)
    report["confusion"] = confusion.tolist()
    report["categories"] = list(categories)
    az_t, el_t, th_t = rotation_to_viewpoint(true_rot)
    az_p, el_p, th_p = rotation_to_viewpoint(rot)
    report["images"] = [
        {"file": str(s.image_path), "model_id": s.model_id, "category": true_names[i], "predicted": pred_names[i],
         "prob": float(probs[i, ranked[i, 0]]), "pose_err": float(report["errors_deg"][i]),
         "oracle_err": float(oracle_err[i]), "azimuth": float(az_t[i]), "elevation": float(el_t[i]),
         "theta": float(th_t[i]), "pred_azimuth": float(az_p[i]), "pred_elevation": float(el_p[i]),
         "pred_theta": float(th_p[i])}
        for i, s in enumerate(samples)
    ]
    report["elevation"] = elevation_report(el_t, el_p, report["errors_deg"])
    kinds = miss_kinds(rot, true_rot, np.array(pred_names) == np.array(true_names))
    report["misses"] = miss_report(kinds, true_names, categories)
    for row, kind in zip(report["images"], kinds):
        row["miss"] = kind
    if "pose_hypotheses" in fused:
        hyp_err = geodesic_distance(axis_angle_to_rotation(fused["pose_hypotheses"]), true_rot[:, None])
        report["hypotheses"] = hypothesis_report(hyp_err, fused["hypothesis_scores"], true_names, categories)
        for row, e, score in zip(report["images"], hyp_err, fused["hypothesis_scores"]):
            row["confidence"], row["best2_err"] = float(score[0]), float(e[:2].min())
    del report["errors_deg"]
    add_symmetry(report, samples, rot, true_rot, meshes or {})
    return report


def add_symmetry(report: dict, samples: list[Sample], pred: np.ndarray, true: np.ndarray,
                 meshes: dict[str, ModelSpec]) -> None:
    """Symmetry-reduced errors (`vantage.train.symmetry`) of the views whose symmetry is known.

    A view's recorded `z_symmetry` comes first; a view rendered before manifests
    recorded it needs its mesh: `meshes` maps model ids to mesh files, built-in ids
    are resolved without it. Adds
    report["symmetry"] (the detected angles per mesh, overall / mean / per-category
    metrics of the reduced errors) and a "sym_err" per image; views of meshes not
    found keep their plain error and are counted in "unresolved".
    """
    from vantage.train.symmetry import symmetry_group, symmetry_reduced_errors, z_symmetry_angles

    angles = {s.model_id: list(s.z_symmetry.angles) for s in samples if s.z_symmetry is not None}
    for model_id in dict.fromkeys(s.model_id for s in samples if s.model_id not in angles):
        spec = meshes.get(model_id) or builtin_spec(model_id)
        if spec is not None:
            try:
                angles[model_id] = z_symmetry_angles(spec.load())
            except MeshError:
                continue
    if not angles:
        return
    groups = [symmetry_group(angles.get(s.model_id, [])) for s in samples]
    reduced = symmetry_reduced_errors(pred, true, groups)
    true_names = [r["category"] for r in report["images"]]
    report["symmetry"] = {
        "angles_deg": angles,
        "unresolved": sum(s.model_id not in angles for s in samples),
        **by_category(true_names, report["categories"], lambda sel: summarise(reduced[sel])),
    }
    for row, err in zip(report["images"], reduced):
        row["sym_err"] = float(err)


def with_turns(samples: list[Sample], run: Runner, camera: bool = False, gravity: bool = False,
               upright: bool = False) -> Runner:
    """`run` with its rotations turned from the crops' axes to each view's camera (vantage.train.data.
    view_turns: the ray to the box centre with `camera`, the levelling roll with `gravity`), and with
    `upright` stood against each view's gravity (vantage.geometry.stand_upright), as the server
    answers a request with its camera, gravity and `upright` (EstimateRequest)."""
    views = view_turns(samples, camera, gravity)
    if views is None:  # neither: nothing to turn (and nothing to stand upright against)
        return run
    turns = np.stack([turn for _, turn in views])
    down = [-np.asarray(s.rotation)[:, 2] for s in samples]

    def stood(rotations: np.ndarray) -> np.ndarray:
        return np.stack([stand_upright(r, g) for r, g in zip(rotations, down)]) if upright else rotations

    def turned(hints: np.ndarray) -> dict[str, np.ndarray]:
        out = dict(run(hints))
        out["rotation"] = stood(turns @ out["rotation"])
        if "pose_hypotheses" in out:
            poses = axis_angle_to_rotation(out["pose_hypotheses"])
            out["pose_hypotheses"] = rotation_to_axis_angle(stood(turns[:, None] @ poses))
        return out

    return turned


def evaluate(model: str | Path, data: str | Path, out: str | Path | None = None,
             models: str | Path | None = None, camera: bool = False, gravity: bool = False,
             upright: bool = False) -> dict:
    """Evaluate a bundle folder or a checkpoint file on a rendered dataset; write the report to `out`.

    `models`: the mesh folder the test views were rendered from, for the symmetry-reduced error
    of views whose manifest predates recorded symmetries. `camera`: as the server answers a request with
    its camera: crops of the views turned to the box centres, answers turned back to each view's optical
    axis (`with_turns`); for views whose object is off the axis (vantage.train.off_axis). `gravity`: as
    for a request with gravity (each view's own: the crop levelled), `upright` (needs gravity): answers
    stood upright against it; for views whose camera rolls (`vantage off-axis --max-roll`).
    """
    if not gravity:
        checked_gravity(None, upright)  # GravityError: upright needs gravity, before anything is read
    model = Path(model)
    # the mesh folder is read first, so a wrong path fails before the model runs over every image
    meshes = {s.model_id: s for s in scan_repository(models)} if models is not None else {}
    make = bundle_runner if (model / METADATA_FILE).is_file() else checkpoint_runner
    if not model.exists():
        raise FileNotFoundError(f"{model} is neither a bundle folder nor a checkpoint file")
    categories, samples, run = make(model, data, camera=camera, gravity=gravity)
    if camera or gravity:
        run = with_turns(samples, run, camera, gravity, upright)
    report = evaluate_runner(categories, samples, run, meshes=meshes)
    report["model"], report["data"] = str(model), str(data)
    report["camera"], report["gravity"], report["upright"] = camera, gravity, upright
    if "hypotheses" in report and make is bundle_runner:  # which scores the confidence figures are of
        report["hypotheses"]["calibration"] = load_metadata(model).confidence_calibration
    if out is not None:
        write_outputs(report, Path(out))
    return report


def write_outputs(report: dict, out: Path) -> None:
    """per_image.csv, report.json (without the per-image rows), report.md and the PNG plots."""
    out.mkdir(parents=True, exist_ok=True)
    rows = report["images"]
    with open(out / "per_image.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / "report.json").write_text(json.dumps({k: v for k, v in report.items() if k != "images"}, indent=1))
    write_report(report, out)
