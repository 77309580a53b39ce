"""What a client's camera intrinsics and gravity are worth: a bundle on views of its test set re-imaged by a turned camera.

Two benches share this module's loop: re-image the test views by a camera turned about its centre
(vantage.train.off_axis: labels exact), evaluate the bundle on them once per request mode, and
break the median error down by how far each view was turned.

- `off-axis`: the object's centre up to each of `angles` off the optical axis; answered as the
  network gives them (relative to the ray through the box centre, a request without `camera`) and
  turned to each view's optical axis (a request with `camera`, vantage.geometry.ray_rotation).
  Writes `off_axis.json` / `off_axis.png` (median error per band of off-axis angle).
- `roll`: the camera rolled about its axis by up to each of `angles` either way (a phone held
  askew); answered plain, with each view's gravity (the crop levelled, vantage.geometry.level_turn)
  and with gravity and `upright` (vantage.geometry.stand_upright). The views' gravity is their
  label's: rendered objects stand upright. Writes `roll.json` / `roll.png` (per band of |roll|).

    python -m vantage.train.off_axis_bench --model BUNDLE --data TEST_DIR --out docs/results/off_axis [--bench roll]
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vantage.train.evaluate import evaluate
from vantage.train.report import bench_parser, write_bench
from vantage.train.off_axis import OffAxisConfig, make_off_axis

BAND_DEG = 10.0


@dataclass(frozen=True)
class Bench:
    """One bench: how the views are turned, which requests answer them, how the results are named."""

    name: str
    turn_key: str  # the manifest's record of each view's turn, banded in the plot
    angle_field: str  # OffAxisConfig's field set to each largest angle (the other stays 0)
    # mode → (evaluate's keyword arguments, legend label); the first mode is the plain request
    modes: dict[str, tuple[dict[str, bool], str]]
    heading: str  # of the table's first column
    xlabel: str


BENCHES = {
    "off-axis": Bench("off_axis", "off_axis_deg", "max_angle",
                      {"plain": ({}, "without camera (relative to the box ray)"),
                       "camera": ({"camera": True}, "with camera (rectified crop, turned to the optical axis)")},
                      "object's centre off the axis", "object's centre off the optical axis (°)"),
    "roll": Bench("roll", "roll_deg", "max_roll",
                  {"plain": ({}, "without gravity"),
                   "gravity": ({"gravity": True}, "with gravity (crop levelled, turned back)"),
                   "upright": ({"gravity": True, "upright": True}, "with gravity, upright (only azimuth from the image)")},
                  "camera rolled by", "camera roll |°|"),
}


def measure(model: str | Path, data: str | Path, angles: Sequence[float] = (0.0, 15.0, 30.0, 45.0),
            seed: int = 0, bench: str = "off-axis") -> dict:
    """{"model", "data", "seed", "bench", "rows": [{max_angle, mode, <its flags>, med_err, acc_pi6, cat_acc, views}],
    "bands": at the largest angle, the median error per BAND_DEG band of |turn| for each mode (key `med_err` for
    the first mode, `med_err_<mode>` for the others)}."""
    spec = BENCHES[bench]
    rows, bands = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for angle in angles:
            folder = Path(tmp) / f"{spec.name}_{angle:g}"
            config = OffAxisConfig(**{"max_angle": 0.0, spec.angle_field: angle, "seed": seed})
            manifest = make_off_axis(data, folder, config)
            turned = np.abs([json.loads(line)[spec.turn_key] for line in manifest.read_text().splitlines()])
            errors = {}
            for mode, (flags, _) in spec.modes.items():
                report = evaluate(model, folder, **flags)
                o = report["overall"]
                rows.append({"max_angle": angle, "mode": mode, "camera": False, **flags, "med_err": o["med_err"],
                             "acc_pi6": o["acc_pi6"], "cat_acc": o["cat_acc"], "views": o["count"]})
                errors[mode] = np.array([row["pose_err"] for row in report["images"]])
            if angle == max(angles):
                edges = np.arange(0.0, angle + BAND_DEG, BAND_DEG)
                for lo, hi in zip(edges[:-1], edges[1:]):
                    inside = (turned >= lo) & (turned < hi)
                    if inside.any():
                        bands.append({"from": float(lo), "to": float(hi), "views": int(inside.sum()),
                                      **{_band_key(spec, mode): float(np.median(err[inside]))
                                         for mode, err in errors.items()}})
    return {"model": str(model), "data": str(data), "seed": seed, "bench": bench, "rows": rows, "bands": bands}


def _band_key(spec: Bench, mode: str) -> str:
    return "med_err" if mode == next(iter(spec.modes)) else f"med_err_{mode}"


def _mode(row: dict) -> str:
    """A row's mode; off-axis results stored before modes named it by its camera flag."""
    return row.get("mode", "camera" if row["camera"] else "plain")


def table(result: dict) -> str:
    """Markdown: one row per largest turn, one column per request mode."""
    spec = BENCHES[result.get("bench", "off-axis")]
    by = {(r["max_angle"], _mode(r)): r for r in result["rows"]}
    lines = [f"| {spec.heading} | views | " + " | ".join(f"{label.split(' (')[0]}: MedErr° / Acc@π/6"
                                                         for _, label in spec.modes.values()) + " |",
             "|---|---|" + "---|" * len(spec.modes)]
    for angle in dict.fromkeys(r["max_angle"] for r in result["rows"]):
        cells = [by[(angle, mode)] for mode in spec.modes]
        span = f"0-{angle:g}°" if spec.angle_field == "max_angle" else f"±{angle:g}°"
        lines.append(f"| {span} | {cells[0]['views']} | "
                     + " | ".join(f"{c['med_err']:.1f} / {c['acc_pi6']:.3f}" for c in cells) + " |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Median error per band of the turn, one line per request mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = BENCHES[result.get("bench", "off-axis")]
    bands = result["bands"]
    mid = [(b["from"] + b["to"]) / 2 for b in bands]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (mode, (_, label)), marker in zip(spec.modes.items(), "osd"):
        ax.plot(mid, [b[_band_key(spec, mode)] for b in bands], f"{marker}-", label=label)
    ax.set_xlabel(spec.xlabel)
    ax.set_ylabel("median pose error (°)")
    ax.grid(alpha=0.3), ax.legend(fontsize=8)
    fig.tight_layout(), fig.savefig(path, dpi=90), plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = bench_parser(__doc__.split("\n\n")[0], "labelled test renders (manifest.jsonl with K)",
                          "<bench>.json and <bench>.png")
    parser.add_argument("--bench", choices=sorted(BENCHES), default="off-axis")
    parser.add_argument("--angles", type=float, nargs="+", default=[0.0, 15.0, 30.0, 45.0],
                        help="largest turns (off-axis angle or roll either way) to measure, degrees")
    args = parser.parse_args(argv)
    write_bench(measure(args.model, args.data, args.angles, args.seed, args.bench), args.out, BENCHES[args.bench].name,
                plot, table)


if __name__ == "__main__":
    main()
