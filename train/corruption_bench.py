"""How a bundle holds up on photo-like frames: its test views under each camera corruption, at each severity.

Every corruption of vantage.train.corruptions is applied to the labelled test views at severities 1-3
(labels exact), the bundle is evaluated on each set, and the table puts each beside the clean views'
figures. Writes `corruptions.json` and `corruptions.png` (median error against severity, one line each).

    python -m vantage.train.corruption_bench --model BUNDLE --data TEST_DIR --out docs/results/corruptions
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

from vantage.train.corruptions import CORRUPTIONS, SEVERITIES, corruption, make_corrupted
from vantage.train.evaluate import evaluate
from vantage.train.report import bench_parser, write_bench


def _figures(report: dict) -> dict:
    o = report["overall"]
    return {"med_err": o["med_err"], "acc_pi6": o["acc_pi6"], "cat_acc": o["cat_acc"], "views": o["count"]}


def measure(model: str | Path, data: str | Path, names: Sequence[str] = tuple(CORRUPTIONS),
            severities: Sequence[int] = SEVERITIES, seed: int = 0, progress: bool = True) -> dict:
    """{"model", "data", "seed", "clean": figures, "rows": [{corruption, severity, level, med_err, acc_pi6,
    cat_acc, views}]}: the bundle on the views as they are and on each corrupted copy of them."""
    for name in names:
        corruption(name)  # every name is checked before minutes of evaluation
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for severity in severities:
                folder = Path(tmp) / f"{name}_{severity}"
                make_corrupted(data, folder, name, severity, seed, progress)
                rows.append({"corruption": name, "severity": severity,
                             "level": CORRUPTIONS[name].levels[severity - 1], **_figures(evaluate(model, folder))})
    return {"model": str(model), "data": str(data), "seed": seed, "clean": _figures(evaluate(model, data)),
            "rows": rows}


def table(result: dict) -> str:
    """Markdown: one row per corruption, MedErr° / Acc@π/6 at each severity, and the clean views above them."""
    severities = list(dict.fromkeys(r["severity"] for r in result["rows"]))
    clean = result["clean"]
    lines = ["| corruption | its level at severity " + ", ".join(map(str, severities)) + " | "
             + " | ".join(f"severity {s}: MedErr° / Acc@π/6" for s in severities) + " |",
             "|---|---|" + "---|" * len(severities),
             "| none (clean views) | | " + " | ".join(f"{clean['med_err']:.1f} / {clean['acc_pi6']:.3f}"
                                                      for _ in severities) + " |"]
    for name in dict.fromkeys(r["corruption"] for r in result["rows"]):
        cells = {r["severity"]: r for r in result["rows"] if r["corruption"] == name}
        levels = ", ".join(f"{cells[s]['level']:g}" for s in severities)
        lines.append(f"| {name} | {CORRUPTIONS[name].unit}: {levels} | "
                     + " | ".join(f"{cells[s]['med_err']:.1f} / {cells[s]['acc_pi6']:.3f}" for s in severities) + " |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Median error against severity (0 = the clean views), one line per corruption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    clean = result["clean"]["med_err"]
    for name in dict.fromkeys(r["corruption"] for r in result["rows"]):
        rows = sorted((r for r in result["rows"] if r["corruption"] == name), key=lambda r: r["severity"])
        ax.plot([0] + [r["severity"] for r in rows], [clean] + [r["med_err"] for r in rows], "o-", label=name)
    ax.set_xlabel("severity (0 = clean views)")
    ax.set_ylabel("median pose error (°)")
    ax.set_xticks([0, *SEVERITIES])
    ax.grid(alpha=0.3), ax.legend(fontsize=7, ncol=2)
    fig.tight_layout(), fig.savefig(path, dpi=90), plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = bench_parser(__doc__.split("\n\n")[0], "labelled test renders (manifest.jsonl)",
                          "corruptions.json and corruptions.png")
    parser.add_argument("--corruptions", nargs="+", default=list(CORRUPTIONS), choices=list(CORRUPTIONS))
    parser.add_argument("--severities", type=int, nargs="+", default=list(SEVERITIES), choices=list(SEVERITIES))
    args = parser.parse_args(argv)
    write_bench(measure(args.model, args.data, args.corruptions, args.severities, args.seed), args.out, "corruptions",
                plot, table)


if __name__ == "__main__":
    main()
