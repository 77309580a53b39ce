"""What a client's camera intrinsics are worth: a bundle on views of its test set re-imaged off axis.

For each largest turn in `angles`, the test views are re-imaged with the object's centre up to that
many degrees off the optical axis (vantage.train.off_axis) and the bundle is evaluated twice on
them: answers as the network gives them (relative to the ray through the box centre, what a
request without `camera` gets) and turned to each view's optical axis (a request with `camera`,
vantage.geometry.ray_rotation). Prints a table, writes `off_axis.json` and `off_axis.png`
(median error per band of off-axis angle, at the largest turn).

    python -m vantage.train.off_axis_bench --model BUNDLE --data TEST_DIR --out docs/results/off_axis
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from vantage.train.evaluate import evaluate
from vantage.train.off_axis import OffAxisConfig, make_off_axis

BAND_DEG = 10.0


def measure(model: str | Path, data: str | Path, angles: Sequence[float] = (0.0, 15.0, 30.0, 45.0),
            seed: int = 0) -> dict:
    """{"model", "data", "rows": [{max_angle, camera, med_err, acc_pi6, cat_acc, views}], "bands": at the
    largest angle, the median error per BAND_DEG band of off-axis angle with and without the camera}."""
    rows, bands = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for angle in angles:
            folder = Path(tmp) / f"off_axis_{angle:g}"
            manifest = make_off_axis(data, folder, OffAxisConfig(max_angle=angle, seed=seed))
            off = np.array([json.loads(line)["off_axis_deg"] for line in manifest.read_text().splitlines()])
            errors = {}
            for camera in (False, True):
                report = evaluate(model, folder, camera=camera)
                o = report["overall"]
                rows.append({"max_angle": angle, "camera": camera, "med_err": o["med_err"], "acc_pi6": o["acc_pi6"],
                             "cat_acc": o["cat_acc"], "views": o["count"]})
                errors[camera] = np.array([row["pose_err"] for row in report["images"]])
            if angle == max(angles):
                edges = np.arange(0.0, angle + BAND_DEG, BAND_DEG)
                for lo, hi in zip(edges[:-1], edges[1:]):
                    inside = (off >= lo) & (off < hi)
                    if inside.any():
                        bands.append({"from": float(lo), "to": float(hi), "views": int(inside.sum()),
                                      "med_err": float(np.median(errors[False][inside])),
                                      "med_err_camera": float(np.median(errors[True][inside]))})
    return {"model": str(model), "data": str(data), "seed": seed, "rows": rows, "bands": bands}


def table(result: dict) -> str:
    """Markdown: one row per largest turn, without and with the camera."""
    by = {(r["max_angle"], r["camera"]): r for r in result["rows"]}
    lines = ["| object's centre off the axis | views | without camera: MedErr° / Acc@π/6 "
             "| with camera: MedErr° / Acc@π/6 |", "|---|---|---|---|"]
    for angle in dict.fromkeys(r["max_angle"] for r in result["rows"]):
        plain, cam = by[(angle, False)], by[(angle, True)]
        lines.append(f"| 0-{angle:g}° | {plain['views']} | {plain['med_err']:.1f} / {plain['acc_pi6']:.3f} | "
                     f"{cam['med_err']:.1f} / {cam['acc_pi6']:.3f} |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Median error per band of off-axis angle, with and without the camera."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands = result["bands"]
    mid = [(b["from"] + b["to"]) / 2 for b in bands]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(mid, [b["med_err"] for b in bands], "o-", label="without camera (relative to the box ray)")
    ax.plot(mid, [b["med_err_camera"] for b in bands], "s-", label="with camera (rectified crop, turned to the optical axis)")
    ax.set_xlabel("object's centre off the optical axis (°)")
    ax.set_ylabel("median pose error (°)")
    ax.grid(alpha=0.3), ax.legend(fontsize=8)
    fig.tight_layout(), fig.savefig(path, dpi=90), plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="bundle folder or checkpoint")
    parser.add_argument("--data", required=True, help="labelled test renders (manifest.jsonl with K)")
    parser.add_argument("--out", required=True, help="folder for off_axis.json and off_axis.png")
    parser.add_argument("--angles", type=float, nargs="+", default=[0.0, 15.0, 30.0, 45.0],
                        help="largest turns to measure, degrees")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = measure(args.model, args.data, args.angles, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "off_axis.json").write_text(json.dumps(result, indent=1))
    plot(result, out / "off_axis.png")
    print(table(result))
    print(f"wrote {out / 'off_axis.json'} and {out / 'off_axis.png'}")


if __name__ == "__main__":
    main()
