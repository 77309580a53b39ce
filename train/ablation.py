"""The ablation of docs/RESULTS.md: each paper question as training variants on one held-out set.

Every variant trains on the same renders (CAD meshes minus the held-out ones, plus
procedural models, `vantage.train.recipe.render_split`) from one shared cache of
frozen features, for the same few epochs, and is evaluated on the same renders of
the held-out CAD meshes. Each result is stored as JSON under `docs/results/ablation/`;
`vantage.train.results_doc` turns them into docs/RESULTS.md. Usage:

    python -m vantage.train.ablation --models ../shared/data/pascal3d_cad --out runs/ablation [--only NAME...]

The defaults train on the reference recipe's renders (the same meshes, views and seeds,
about 11,400 training views: an `OUT/data` of a recipe run is reused as it is) for 12
epochs on one cached augmented copy: 1-3 min a variant on one core. An earlier, smaller
set-up (2,600 views, 8 epochs) left every head near chance (R_G 89° MedErr), too weak to
answer the questions.
The "scratch CNN" variant trains the image-graphics paper's from-scratch CNN on the
same renders (`vantage.train.scratch_train`, end to end; the stored row: `--scratch-epochs 10`, ~10 min)
for the question "from-scratch vs transfer"; it reports the camera-position error only.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

from vantage.train.model import ModelConfig
from vantage.train.trainer import TrainConfig

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "ablation"

# name → (question, TrainConfig overrides, ModelConfig overrides); the base is R_G, weighted, compact
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "R_G": ("head", {}, {}),
    "R_E": ("head", {}, {"head": "regression_e"}),
    "C": ("head", {}, {"head": "classification"}),
    "M_S": ("head", {}, {"head": "bd_s"}),
    "M_G": ("head", {}, {"head": "bd_g"}),
    "M_LE": ("head", {}, {"head": "bd_le"}),
    "M_P": ("head", {}, {"head": "bd_p"}),
    "M_S+": ("head", {}, {"head": "bd_s", "per_bin_delta": True}),
    "M_G+": ("head", {}, {"head": "bd_g", "per_bin_delta": True}),
    "M_LE+": ("head", {}, {"head": "bd_le", "per_bin_delta": True}),
    "M_P+": ("head", {}, {"head": "bd_p", "per_bin_delta": True}),
    "M_G K=48": ("K", {}, {"head": "bd_g", "num_bins": 48}),
    "M_G+ K=4": ("K", {}, {"head": "bd_g", "per_bin_delta": True, "num_bins": 4}),
    "M_G+ α=0.1": ("alpha", {"alpha": 0.1}, {"head": "bd_g", "per_bin_delta": True}),
    "M_G+ α=10": ("alpha", {"alpha": 10.0}, {"head": "bd_g", "per_bin_delta": True}),
    "R_G λ=1": ("lambda", {"lambda_category": 1.0}, {}),
    "R_G cat-independent": ("category dependence", {}, {"category_dependent": False}),
    "M_G+ cat-independent": ("category dependence", {}, {"head": "bd_g", "per_bin_delta": True,
                                                          "category_dependent": False}),
    "R_G top-1 fusion": ("fusion", {}, {"fusion": "top1"}),
    "M_G+ top-1 fusion": ("fusion", {}, {"head": "bd_g", "per_bin_delta": True, "fusion": "top1"}),
    "R_G pose-first": ("protocol", {"protocol": "pose_first"}, {}),
    "R_G balanced": ("protocol", {"protocol": "balanced"}, {}),
    "R_G tap 15": ("tap", {}, {"tap": 15}),
}
SCRATCH = "scratch CNN"  # the image-graphics paper's from-scratch CNN, compared with the transfer models
SCRATCH_QUESTION = "from-scratch vs transfer"


def base_config(train_dirs: list[str], out: Path, epochs: int) -> TrainConfig:
    """The shared settings: small and fast (cached features, one augmented copy)."""
    return TrainConfig(data=train_dirs, out="", epochs=epochs, augmented_copies=1, progress=False, threads=1,
                       feature_cache=str(out / "features"), model=ModelConfig())


def run_variant(name: str, base: TrainConfig, test_dir: str, out: Path, results: Path = RESULTS) -> dict:
    """Train and evaluate one variant; returns the stored summary."""
    from vantage.train.evaluate import evaluate
    from vantage.train.trainer import train

    question, train_over, model_over = VARIANTS[name]
    cfg = copy.deepcopy(base)
    for k, v in train_over.items():
        setattr(cfg, k, v)
    for k, v in model_over.items():
        setattr(cfg.model, k, v)
    cfg.out = str(out / slug(name))
    t = time.time()
    ckpt = train(cfg)
    seconds = time.time() - t
    report = evaluate(ckpt, test_dir, Path(cfg.out) / "eval")
    return _store(name, question, seconds, cfg.to_dict(), report, results, topk=report["topk"])


def run_scratch(train_dirs: list[str], test_dir: str, out: Path, epochs: int | None = None,
                results: Path = RESULTS) -> dict:
    """Train and evaluate the from-scratch CNN on the variants' renders; returns the stored summary."""
    from vantage.train.scratch_train import ScratchConfig, evaluate_scratch, train_scratch

    cfg = ScratchConfig(data=train_dirs, out=str(out / slug(SCRATCH)), progress=False, threads=1)
    cfg.epochs = epochs or cfg.epochs
    t = time.time()
    ckpt = train_scratch(cfg)
    seconds = time.time() - t
    report = evaluate_scratch(ckpt, test_dir, Path(cfg.out) / "eval")
    return _store(SCRATCH, SCRATCH_QUESTION, seconds, cfg.to_dict(), report, results)


def slug(name: str) -> str:
    """The file and folder name of a variant: "M_G+ α=0.1" → "M_G+_α0.1"."""
    return name.replace(" ", "_").replace("=", "")


def _store(name: str, question: str, seconds: float, config: dict, report: dict, results: Path, **extra: Any) -> dict:
    """Write one variant's summary to RESULTS/NAME.json (read by `vantage.train.results_doc`)."""
    summary = {
        "name": name, "question": question, "train_seconds": seconds, "config": config, "overall": report["overall"],
        "mean_over_categories": report["mean_over_categories"], "per_category": report["per_category"], **extra,
    }
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{slug(name)}.json").write_text(json.dumps(summary, indent=1))
    return summary


def _headline(m: dict) -> str:
    """Mean-over-categories figures of a variant (the from-scratch CNN has the camera error only)."""
    if "med_err" not in m:
        return f"camera err {m['cam_err']:6.1f}  P<30° {m['cam_acc_pi6']:.3f}"
    return f"MedErr {m['med_err']:6.1f}  Acc@π/6 {m['acc_pi6']:.3f}  cat-acc {m['cat_acc']:.3f}"


def main() -> None:
    from vantage.train.recipe import RecipeConfig, render_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True)
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--cad-views", type=int, default=160, help="training views per CAD mesh")
    ap.add_argument("--builtin", type=int, default=8, help="procedural training models per category")
    ap.add_argument("--builtin-views", type=int, default=30, help="views per procedural model")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--scratch-epochs", type=int, help="epochs of the from-scratch CNN (default: ScratchConfig's)")
    ap.add_argument("--only", nargs="+", choices=[*VARIANTS, SCRATCH])
    args = ap.parse_args()
    out = Path(args.out)
    split = RecipeConfig(models=args.models, out=str(out), cad_views=args.cad_views, builtin_instances=args.builtin,
                         builtin_views=args.builtin_views, seen_test_views=0)
    # the test renders equal the recipe's (same meshes, seeds)
    train_dirs, test_dir = render_split(split)[:2]
    base = base_config(train_dirs, out, args.epochs)
    for name in args.only or [*VARIANTS, SCRATCH]:
        s = run_scratch(train_dirs, test_dir, out, args.scratch_epochs) if name == SCRATCH else \
            run_variant(name, base, test_dir, out)
        print(f"{name:<24} {_headline(s['mean_over_categories'])}  ({s['train_seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
