"""Pose and category metrics of POSE.md and the papers (numpy only).

MedErr and Acc@π/6 (Bin & Delta paper, Sec. 4), P(<22.5°), P(<45°), cat-acc and
AAAI = mean of 1 − Δ/π (joint-pose paper, Sec. 4.4, the accuracy measure of its
ref. [8] applied to the 3D pose error Δ ∈ [0, π]), and the camera-position error
E(c, c') of the image-graphics paper (Sec. 4: median and fraction < 30°), reported
per category, as the mean over categories (as the papers do) and over all images.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from vantage.calibration import PI6_DEG, calibration_error  # PI6_DEG: a view is a hit below it (Acc@π/6)
from vantage.geometry import geodesic_distance, rotation_to_camera_position, vector_angle


def summarise(
    errors_deg: np.ndarray, correct: np.ndarray | None = None, camera_errors_deg: np.ndarray | None = None
) -> dict[str, float]:
    """Summary of one group of images: count, MedErr, Acc@π/6, P<22.5°, P<45°, AAAI, cat-acc, camera error."""
    e = np.asarray(errors_deg, dtype=np.float64)
    nan = float("nan")
    out = {
        "count": int(e.size),
        "med_err": float(np.median(e)) if e.size else nan,
        "acc_pi6": float(np.mean(e < PI6_DEG)) if e.size else nan,
        "p_22_5": float(np.mean(e < 22.5)) if e.size else nan,
        "p_45": float(np.mean(e < 45.0)) if e.size else nan,
        "aaai": float(np.mean(1.0 - e / 180.0)) if e.size else nan,
    }
    if correct is not None:
        out["cat_acc"] = float(np.mean(correct)) if e.size else nan
    if camera_errors_deg is not None:
        out.update(camera_summary(camera_errors_deg))
    return out


def camera_summary(camera_errors_deg: np.ndarray) -> dict[str, float]:
    """Median camera-position error E(c, c') and its fraction under 30° (image-graphics paper, Sec. 4)."""
    c = np.asarray(camera_errors_deg, dtype=np.float64)
    if not c.size:
        return {"cam_err": float("nan"), "cam_acc_pi6": float("nan")}
    return {"cam_err": float(np.median(c)), "cam_acc_pi6": float(np.mean(c < PI6_DEG))}


def by_category(true_cat: Sequence[str], categories: Sequence[str], summary: Callable[[np.ndarray], dict]) -> dict:
    """Overall, mean-over-categories and per-category metrics; `summary` maps a mask of images to their metrics."""
    true_cat = np.asarray(true_cat)
    per_cat = {c: summary(true_cat == c) for c in categories if np.any(true_cat == c)}
    keys = [k for k in next(iter(per_cat.values()), {}) if k != "count"]
    return {
        "overall": summary(np.ones(true_cat.shape, bool)),
        "mean_over_categories": {k: float(np.mean([v[k] for v in per_cat.values()])) for k in keys},
        "per_category": per_cat,
    }


def pose_report(
    pred_rot: np.ndarray,
    true_rot: np.ndarray,
    pred_cat: Sequence[str],
    true_cat: Sequence[str],
    categories: Sequence[str],
) -> dict:
    """Per-category, mean-over-categories and overall metrics; also returns the per-image errors."""
    errors = geodesic_distance(pred_rot, true_rot)
    cam = vector_angle(rotation_to_camera_position(pred_rot), rotation_to_camera_position(true_rot))
    correct = np.asarray(pred_cat) == np.asarray(true_cat)
    report = by_category(true_cat, categories, lambda sel: summarise(errors[sel], correct[sel], cam[sel]))
    return {**report, "errors_deg": errors.tolist()}


def camera_report(
    pred_cam: np.ndarray, true_cam: np.ndarray, true_cat: Sequence[str], categories: Sequence[str]
) -> dict:
    """Camera-position metrics of a learner that predicts only C/d (the from-scratch CNN); per-image errors too."""
    errors = vector_angle(pred_cam, true_cam)
    report = by_category(true_cat, categories, lambda sel: {"count": int(sel.sum()), **camera_summary(errors[sel])})
    return {**report, "cam_errors_deg": errors.tolist()}


# object-frame rotation by 180° about the up axis +z (POSE.md): the pose an object's back shows from the front
HALF_TURN = np.diag([-1.0, -1.0, 1.0])
MISS_KINDS = ("wrong_category", "half_turn", "other")


def miss_kinds(pred_rot: np.ndarray, true_rot: np.ndarray, correct: np.ndarray,
               threshold_deg: float = PI6_DEG) -> list[str]:
    """Why each view is missed (Δ ≥ π/6, the complement of Acc@π/6): "" for a hit, else one of MISS_KINDS.

    A miss counts as "wrong_category" when the fused category is wrong (its pose then comes
    mostly from another category's head), else as "half_turn" when the prediction lies within
    π/6 of the true pose turned by 180° about the up axis (the front/back confusion that
    near-symmetric objects invite: trains, buses, boats, tables), else "other" (elevation,
    in-plane rotation or azimuth off by another amount). The three shares add up to 1 − Acc@π/6,
    so a report says which kind of error a change would have to remove.
    """
    err = geodesic_distance(pred_rot, true_rot)
    turned = geodesic_distance(pred_rot, np.asarray(true_rot) @ HALF_TURN)
    return ["" if e < threshold_deg else MISS_KINDS[0] if not ok else MISS_KINDS[1] if t < threshold_deg else MISS_KINDS[2]
            for e, t, ok in zip(err, turned, np.asarray(correct, bool))]


def miss_report(kinds: Sequence[str], true_cat: Sequence[str], categories: Sequence[str]) -> dict:
    """Per-category, mean and overall shares of the images missed for each of MISS_KINDS (and in all)."""
    kinds = np.asarray(kinds)

    def shares(sel: np.ndarray) -> dict:
        n = int(sel.sum())
        return {"count": n, "missed": float(np.mean(kinds[sel] != "")),
                **{k: float(np.mean(kinds[sel] == k)) for k in MISS_KINDS}}

    return by_category(true_cat, categories, shares)


def elevation_report(true_el: np.ndarray, pred_el: np.ndarray, errors_deg: np.ndarray,
                     band_deg: float = 20.0) -> list[dict]:
    """Per band of true elevation: views, hits (Δ < π/6), the hits' mean signed elevation error and MedErr.

    The signed error of the hits shows whether the model pulls elevations towards the middle of
    the range it was trained on: the reference bundle answers views from 40-60° about 6° too
    low and views from below the horizon about 7° too high. Misses are left out of the bias
    because a front/back or category confusion moves the elevation by chance, not by hedging.
    """
    true_el, pred_el, err = (np.asarray(a, np.float64) for a in (true_el, pred_el, errors_deg))
    bands = []
    for lo in np.arange(-np.ceil(90.0 / band_deg) * band_deg, 90.0, band_deg):  # bands meet at 0°
        sel = (true_el >= lo) & (true_el < lo + band_deg)
        if not sel.any():
            continue
        hit = sel & (err < PI6_DEG)
        bands.append({"from": float(lo), "to": float(lo + band_deg), "count": int(sel.sum()), "hits": int(hit.sum()),
                      "bias": float(np.mean(pred_el[hit] - true_el[hit])) if hit.any() else float("nan"),
                      "med_err": float(np.median(err[sel]))})
    return bands


CONFIDENCE_BANDS: tuple[float, ...] = (0.0, 0.3, 0.5, 0.7, 0.9, 1.0)


def hypothesis_report(errors_deg: np.ndarray, scores: np.ndarray, true_cat: Sequence[str] | None = None,
                      categories: Sequence[str] | None = None) -> dict:
    """What the bundle's ranked pose hypotheses are worth (vantage.train.hypotheses).

    `errors_deg` (N, H): each hypothesis' pose error, hypothesis 0 = the answer;
    `scores` (N, H): their shares of the pose probability mass, or calibrated probabilities. "best_of": MedErr
    and Acc@π/6 when the best of the first k hypotheses counts (a client that can
    check k poses, e.g. by rendering or by moving, like Top-k categories in the
    joint-pose paper's Table 13); "confidence": per band of the answer's score,
    the views and the share of them within π/6, which says whether the score can
    be trusted as a confidence; "mean_scores": each rank's mean score; with the
    images' true categories, "best_of_2": MedErr and Acc@π/6 of the better of the
    first two per category (which categories a second guess rescues: front/back
    look-alikes and symmetric objects). "ece" / "ece_all": expected calibration error
    (vantage.calibration) of the answers' / of every shown hypothesis' score as the
    probability of lying within π/6 (0 = the score is the hit rate).
    """
    err, sc = np.asarray(errors_deg, np.float64), np.asarray(scores, np.float64)
    best_of = []
    for k in range(1, err.shape[1] + 1):
        e = err[:, :k].min(1)
        best_of.append({"k": k, "med_err": float(np.median(e)), "acc_pi6": float(np.mean(e < PI6_DEG))})
    bands = []
    edges = CONFIDENCE_BANDS
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        sel = (sc[:, 0] >= lo) & ((sc[:, 0] < hi) | (i == len(edges) - 2))  # the last band includes 1
        if sel.any():
            bands.append({"from": lo, "to": hi, "count": int(sel.sum()), "hit_rate": float(np.mean(err[sel, 0] < PI6_DEG))})
    hit = err < PI6_DEG
    report = {"best_of": best_of, "confidence": bands, "mean_scores": [float(v) for v in sc.mean(0)],
              "ece": calibration_error(sc[:, 0], hit[:, 0]), "ece_all": calibration_error(sc[sc > 0], hit[sc > 0])}
    if true_cat is not None and categories is not None and err.shape[1] > 1:
        best2 = err[:, :2].min(1)
        report["best_of_2"] = by_category(true_cat, categories, lambda sel: summarise(best2[sel]))
    return report


def format_table(report: dict) -> str:
    """Plain-text table: one row per category plus the mean and overall rows."""
    head = f"{'category':<12} {'n':>5} {'MedErr°':>8} {'Acc@π/6':>8} {'P<22.5':>7} {'P<45':>6} {'cat-acc':>8}"
    rows = [head, "-" * len(head)]

    def row(name: str, m: dict, n: int | str) -> str:
        return (
            f"{name:<12} {n:>5} {m['med_err']:>8.2f} {m['acc_pi6']:>8.3f} {m['p_22_5']:>7.3f}"
            f" {m['p_45']:>6.3f} {m.get('cat_acc', float('nan')):>8.3f}"
        )

    for c, m in report["per_category"].items():
        rows.append(row(c, m, m["count"]))
    rows.append("-" * len(head))
    if report["mean_over_categories"]:
        rows.append(row("mean(cats)", report["mean_over_categories"], ""))
    rows.append(row("all images", report["overall"], report["overall"]["count"]))
    return "\n".join(rows)
