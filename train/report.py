"""Evaluation report: markdown tables in the papers' layout and PNG plots.

Tables follow the papers: one column per category (short names as in the
papers' tables) plus the mean over categories, one row per metric (Bin & Delta
paper Tables 1–2, joint-pose paper Tables 5 and 7), and the top-1/2/3 category
analysis of the joint-pose paper's Table 13.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vantage.train.metrics import PI6_DEG

SHORT = {"aeroplane": "aero", "bicycle": "bike", "diningtable": "dtable", "motorbike": "mbike", "tvmonitor": "tv"}
METRICS = (
    ("med_err", "MedErr (°)", "{:.1f}"),
    ("acc_pi6", "Acc@π/6", "{:.3f}"),
    ("p_22_5", "P(<22.5°)", "{:.3f}"),
    ("p_45", "P(<45°)", "{:.3f}"),
    ("aaai", "AAAI", "{:.3f}"),
    ("cat_acc", "cat-acc", "{:.3f}"),
    ("cam_err", "camera-position err (°)", "{:.1f}"),
)


def category_table(report: dict, metrics: tuple[tuple[str, str, str], ...] = METRICS) -> str:
    """Markdown table: metrics × (categories, mean over categories, all images)."""
    cats = list(report["per_category"])
    head = ["metric", *[SHORT.get(c, c) for c in cats], "mean", "all"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, name, fmt in metrics:
        cells = [fmt.format(report["per_category"][c][key]) for c in cats]
        cells += [fmt.format(report["mean_over_categories"][key]), fmt.format(report["overall"][key])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    counts = [str(report["per_category"][c]["count"]) for c in cats]
    lines.append("| images | " + " | ".join(counts) + f" |  | {report['overall']['count']} |")
    return "\n".join(lines)


def topk_table(report: dict) -> str:
    """Joint-pose paper Table 13: cat-acc and pose error with the top-k categories' heads and the oracle."""
    keys = [k for k in report["topk"]]
    head = " | ".join(f"{k.replace('top', 'Top-').replace('gt', 'GT')} cat-acc | pose-err" for k in keys)
    row = " | ".join(f"{report['topk'][k]['cat_acc']:.3f} | {report['topk'][k]['med_err']:.1f}" for k in keys)
    return f"| {head} |\n|" + "---|" * (2 * len(keys)) + f"\n| {row} |"


def symmetry_section(report: dict, heading: str = "##") -> list[str]:
    """Markdown lines on the symmetry-reduced error (`vantage.train.symmetry`); none without it."""
    sym = report.get("symmetry")
    if not sym:
        return []
    found = {m: a for m, a in sym["angles_deg"].items() if a}
    listed = "; ".join(f"`{m}` {', '.join(f'{x:g}°' for x in a)}" for m, a in found.items()) or "none"
    return [
        f"\n{heading} Symmetry-reduced error\n",
        "min over the test mesh's rotations S about its up axis of Δ(R̂, R·S): the part of the plain "
        "error that no image could remove is taken out (vantage.train.symmetry). The plain error above "
        f"is POSE.md's metric. Meshes with such symmetries: {listed}. Views whose mesh was not found: "
        f"{sym['unresolved']}.\n",
        category_table(sym, METRICS[:4]),
    ]


MISS_ROWS = (
    ("missed", "missed (Δ ≥ π/6)", "{:.3f}"),
    ("wrong_category", "… wrong category", "{:.3f}"),
    ("half_turn", "… half turn (front/back)", "{:.3f}"),
    ("other", "… other", "{:.3f}"),
)


def _linked(lines: list[str], plot: str, with_plot: bool) -> list[str]:
    """A report section's lines, followed by a link to its `<plot>.png` (drawn beside report.md) when asked."""
    return lines + [f"\n![{plot}]({plot}.png)\n"] if with_plot else lines


def miss_section(report: dict, heading: str = "##", with_plot: bool = True) -> list[str]:
    """Markdown lines on why views are missed (`vantage.train.metrics.miss_kinds`); none without it.

    `with_plot` links misses.png, which `write_report` draws beside report.md.
    """
    if not report.get("misses"):
        return []
    lines = [
        f"\n{heading} Why views are missed\n",
        "Shares of the images whose pose error is π/6 or more (1 − Acc@π/6), split by cause: the "
        "fused category is wrong; else the prediction lies within π/6 of the true pose turned by 180° "
        "about the up axis (front/back confusion); else other.\n",
        category_table(report["misses"], MISS_ROWS),
    ]
    return _linked(lines, "misses", with_plot)


def elevation_section(report: dict, heading: str = "##", with_plot: bool = True) -> list[str]:
    """Markdown lines: per band of true elevation, the hits' signed elevation error (a pull to the middle).

    `with_plot` links elevation.png, which `write_report` draws beside report.md.
    """
    bands = report.get("elevation")
    if not bands:
        return []
    lines = [f"\n{heading} Error by elevation\n",
             "Signed elevation error (predicted − true) of the views within π/6 (hits), per band of true "
             "elevation: a positive bias low and a negative one high means elevations pulled to the middle.\n",
             "| true elevation | images | hits | elevation bias (°) | MedErr (°) |", "|---|---|---|---|---|"]
    lines += [f"| {b['from']:.0f}° to {b['to']:.0f}° | {b['count']} | {b['hits']} | {b['bias']:+.1f} | {b['med_err']:.1f} |"
              for b in bands]
    return _linked(lines, "elevation", with_plot)


def hypothesis_section(report: dict, heading: str = "##", with_plot: bool = True) -> list[str]:
    """Markdown lines on the ranked pose hypotheses (`vantage.train.metrics.hypothesis_report`); none without them.

    `with_plot` links confidence.png, which `write_report` draws beside report.md.
    """
    hyp = report.get("hypotheses")
    if not hyp:
        return []
    lines = [f"\n{heading} Pose hypotheses\n",
             "The bundle ranks its answer and alternative poses by their shares of the pose probability mass "
             "(vantage.train.hypotheses). Best of k: the error of the best of the first k hypotheses, for a "
             "client that can check k poses.\n",
             "| | " + " | ".join(f"best of {b['k']}" for b in hyp["best_of"]) + " |",
             "|---|" + "---|" * len(hyp["best_of"]),
             "| MedErr (°) | " + " | ".join(f"{b['med_err']:.1f}" for b in hyp["best_of"]) + " |",
             "| Acc@π/6 | " + " | ".join(f"{b['acc_pi6']:.3f}" for b in hyp["best_of"]) + " |",
             "| mean score | " + " | ".join(f"{v:.3f}" for v in hyp["mean_scores"]) + " |",
             "\nThe answer's score as a confidence: the share of views within π/6 per band of score.\n",
             "| answer's score | images | Acc@π/6 |", "|---|---|---|"]
    lines += [f"| {b['from']:.1f} to {b['to']:.1f} | {b['count']} | {b['hit_rate']:.3f} |" for b in hyp["confidence"]]
    if "ece" in hyp:
        cal = hyp.get("calibration")
        kind = (f"calibrated scores (vantage.calibration; {cal['views']} views: {cal['source']})" if cal
                else "raw shares of probability mass (no calibration in the bundle)")
        lines.append(f"\nExpected calibration error, the score read as P(error < π/6), 0 = the score is the hit "
                     f"rate: answers {hyp['ece']:.3f}, every shown hypothesis {hyp['ece_all']:.3f}; {kind}.")
    if "best_of_2" in hyp:
        lines += ["\nThe better of the first two hypotheses per category (compare the answer's table above):\n",
                  category_table(hyp["best_of_2"], METRICS[:2])]
    return _linked(lines, "confidence", with_plot)


def bench_parser(description: str, data: str, outputs: str) -> argparse.ArgumentParser:
    """The arguments every bench that derives test sets from labelled renders takes: the model, the renders
    (`data` says what they need), where it writes (`outputs` names the files) and the derivation's seed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True, help="bundle folder or checkpoint")
    parser.add_argument("--data", required=True, help=data)
    parser.add_argument("--out", required=True, help=f"folder for {outputs}")
    parser.add_argument("--seed", type=int, default=0, help="seed of the derived views")
    return parser


def write_bench(result: dict, out: str | Path, name: str, plot: Callable[[dict, Path], None],
                table: Callable[[dict], str]) -> None:
    """A bench's output: OUT/<name>.json (what docs/RESULTS.md is generated from), OUT/<name>.png and its
    table printed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    plot(result, out / f"{name}.png")
    print(table(result))
    print(f"wrote {out / name}.json and {out / name}.png")


def write_report(report: dict, out: Path) -> None:
    """report.md and errors_hist.png, error_vs_azimuth.png, elevation.png, confusion.png, misses.png,
    confidence.png (bundles with pose hypotheses) in `out`."""
    md = [
        f"# Evaluation of `{report.get('model', '?')}`",
        f"\nData: `{report.get('data', '?')}`, {report['overall']['count']} images. Pose error Δ(R, R*) "
        "in degrees (POSE.md); category unknown to the model (fused prediction).\n",
        category_table(report),
        "\n## Top-k categories (joint-pose paper, Table 13)\n",
        "Pose error with top-k = the smallest error among the heads of the k most probable "
        "categories; GT = the true category's head (oracle).\n",
        topk_table(report),
        *miss_section(report),
        *symmetry_section(report),
        *elevation_section(report),
        *hypothesis_section(report),
        "\n![errors](errors_hist.png) ![azimuth](error_vs_azimuth.png) ![confusion](confusion.png)\n",
    ]
    (out / "report.md").write_text("\n".join(md))
    _plots(report, out)


def _plots(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    err = np.array([r["pose_err"] for r in report["images"]])
    az = np.array([r["azimuth"] for r in report["images"]])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(err, bins=np.arange(0, 185, 5))
    ax.axvline(30, color="k", ls="--", lw=1)
    ax.set_xlabel("pose error (°)"), ax.set_ylabel("images")
    fig.tight_layout(), fig.savefig(out / "errors_hist.png", dpi=90), plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.scatter(az, err, s=4, alpha=0.4)
    edges = np.arange(0, 361, 30)
    mids = [np.median(err[(az >= a) & (az < b)]) if ((az >= a) & (az < b)).any() else np.nan
            for a, b in zip(edges[:-1], edges[1:])]
    ax.plot(edges[:-1] + 15, mids, "r-o", ms=3, label="median per 30°")
    ax.set_xlabel("true azimuth (°)"), ax.set_ylabel("pose error (°)"), ax.legend()
    fig.tight_layout(), fig.savefig(out / "error_vs_azimuth.png", dpi=90), plt.close(fig)

    el = np.array([r["elevation"] for r in report["images"]])
    pred_el = np.array([r["pred_elevation"] for r in report["images"]])
    hit = err < PI6_DEG
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.scatter(el[~hit], pred_el[~hit], s=4, c="0.6", label="missed (Δ ≥ π/6)")
    ax.scatter(el[hit], pred_el[hit], s=4, label="hit")
    lo, hi = min(el.min(), pred_el.min()), max(el.max(), pred_el.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel("true elevation (°)"), ax.set_ylabel("predicted elevation (°)"), ax.legend(fontsize=7)
    fig.tight_layout(), fig.savefig(out / "elevation.png", dpi=90), plt.close(fig)

    cats = [SHORT.get(c, c) for c in report["categories"]]
    conf = np.array(report["confusion"], float)
    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cats)), cats, rotation=90), ax.set_yticks(range(len(cats)), cats)
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    for i in range(len(cats)):
        for j in range(len(cats)):
            if conf[i, j]:
                ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout(), fig.savefig(out / "confusion.png", dpi=90), plt.close(fig)

    if report.get("misses"):
        per = report["misses"]["per_category"]
        names = [SHORT.get(c, c) for c in per]
        fig, ax = plt.subplots(figsize=(6, 3.2))
        bottom = np.zeros(len(per))
        for key, label, _ in MISS_ROWS[1:]:
            share = np.array([m[key] for m in per.values()])
            ax.bar(names, share, bottom=bottom, label=label.lstrip("… "))
            bottom += share
        ax.set_ylabel("share of images missed"), ax.set_ylim(0, 1), ax.legend(fontsize=7)
        ax.tick_params(axis="x", rotation=90)
        fig.tight_layout(), fig.savefig(out / "misses.png", dpi=90), plt.close(fig)

    if report.get("hypotheses"):
        hyp = report["hypotheses"]
        fig, (left, right) = plt.subplots(1, 2, figsize=(7.5, 3.2))
        ks = [b["k"] for b in hyp["best_of"]]
        left.bar(ks, [b["acc_pi6"] for b in hyp["best_of"]])
        left.set_xlabel("best of the first k hypotheses"), left.set_ylabel("Acc@π/6"), left.set_ylim(0, 1)
        left.set_xticks(ks)
        bands = hyp["confidence"]
        mids = [(b["from"] + b["to"]) / 2 for b in bands]
        right.bar(mids, [b["hit_rate"] for b in bands], width=[b["to"] - b["from"] for b in bands], edgecolor="k")
        for m, b in zip(mids, bands):
            right.text(m, b["hit_rate"] + 0.02, str(b["count"]), ha="center", fontsize=7)
        right.plot([0, 1], [0, 1], "k--", lw=1)
        right.set_xlabel("answer's score (numbers: images)"), right.set_ylabel("Acc@π/6"), right.set_ylim(0, 1.1)
        fig.tight_layout(), fig.savefig(out / "confidence.png", dpi=90), plt.close(fig)
