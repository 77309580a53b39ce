"""Generate docs/RESULTS.md from the stored evaluation JSON (never typed by hand).

Reads `docs/results/ablation/*.json` (written by `vantage.train.ablation`),
`docs/results/reference.json` (a copy of the reference recipe's `recipe.json`) and
`docs/results/folds/*.json` (the recipe's `recipe.json` of other held-out folds,
`vantage recipe reference --fold K`), `docs/results/seeds/*.json` (the recipe's `recipe.json` trained again on a
fold's renders and feature cache with other training seeds, `member_shift` naming them) and
`docs/results/levers/*.json` (the recipe's `recipe.json` with one setting changed, trained on a fold's renders and
feature cache), `docs/results/off_axis/off_axis.json` and `roll.json`
(`vantage.train.off_axis_bench`) and writes the tables, among them the image-graphics paper's from-scratch vs
transfer comparison (Sec. 4) by camera-position error. Usage: python -m vantage.train.results_doc
"""

from __future__ import annotations

import functools
import json
import statistics
from dataclasses import asdict
from pathlib import Path

import numpy as np

from vantage.train.ablation import RESULTS, SCRATCH, SCRATCH_QUESTION, VARIANTS
from vantage.train.off_axis_bench import table as off_axis_table
from vantage.train.recipe import RecipeConfig
from vantage.train.report import (category_table, elevation_section, hypothesis_section, miss_section, symmetry_section,
                                  topk_table)

DOCS = RESULTS.parents[1]
TRANSFER = ("R_G", "M_G+")  # the transfer rows beside the from-scratch CNN
# (stored dict, key, format) of the comparison's metric columns
SCRATCH_COLUMNS = (("mean_over_categories", "cam_err", "{:.1f}"), ("mean_over_categories", "cam_acc_pi6", "{:.3f}"),
                   ("overall", "cam_err", "{:.1f}"), ("mean_over_categories", "med_err", "{:.1f}"),
                   ("mean_over_categories", "cat_acc", "{:.3f}"))


def _row(s: dict) -> str:
    m, o = s["mean_over_categories"], s["overall"]
    return (f"| {s['name']} | {m['med_err']:.1f} | {m['acc_pi6']:.3f} | {m['p_22_5']:.3f} | {m['p_45']:.3f} | "
            f"{m['aaai']:.3f} | {m['cat_acc']:.3f} | {o['med_err']:.1f} | {s['train_seconds']:.0f} |")


def ablation_section(results: list[dict]) -> str:
    """One table per paper question, variants in the order of `VARIANTS`, each under the default it varies
    ("M_G+ K=4" under "M_G+", "R_G λ=1" under "R_G"), so that every table holds its own comparison."""
    order = {name: i for i, name in enumerate(VARIANTS)}
    results = sorted(_transfer(results), key=lambda s: order.get(s["name"], len(order)))
    by_name = {s["name"]: s for s in results}
    head = ("| variant | MedErr° (mean cats) | Acc@π/6 | P<22.5° | P<45° | AAAI | cat-acc | MedErr° (all) | train s (shared, loaded CPU) |\n"
            "|---|---|---|---|---|---|---|---|---|")
    parts = []
    for question in dict.fromkeys(s["question"] for s in results):
        rows = [s for s in results if s["question"] == question]
        defaults = dict.fromkeys(n for s in rows if (n := s["name"].split()[0]) in by_name)
        rows = [*(by_name[n] for n in defaults if by_name[n] not in rows), *rows]
        parts.append(f"\n### {question}\n\n{head}\n" + "\n".join(_row(s) for s in rows))
    return "\n".join(parts)


def _transfer(results: list[dict]) -> list[dict]:
    return [s for s in results if s["question"] != SCRATCH_QUESTION]


def _learner(s: dict) -> str:
    c = s["config"]
    if s["name"] == SCRATCH:
        return f"from scratch, end to end ({c['input_size']}², {c['epochs']} epochs)"
    return f"transfer: frozen {c['model']['backbone']} features + trained head, {c['epochs']} epochs"


def _scratch_row(s: dict) -> str:
    missing = "—" if s["name"] == SCRATCH else "n/r"
    cells = [fmt.format(s[part][key]) if key in s[part] else missing for part, key, fmt in SCRATCH_COLUMNS]
    return f"| {s['name']} | {_learner(s)} | " + " | ".join(cells) + f" | {s['train_seconds']:.0f} |"


def scratch_section(results: list[dict]) -> str:
    """The image-graphics paper's question (Sec. 4): the from-scratch CNN against transfer models, on the same
    renders, by camera-position error E(c, c'); empty without a stored from-scratch result."""
    scratch = [s for s in results if s["name"] == SCRATCH]
    if not scratch:
        return ""
    rows = scratch + [s for name in TRANSFER for s in results if s["name"] == name]
    head = ("| variant | learner | camera-position err° (mean cats) | camera P<30° (mean cats) | "
            "camera-position err° (all) | MedErr° (mean cats) | cat-acc | train s (shared, loaded CPU) |\n"
            "|---|---|---|---|---|---|---|---|")
    return (f"\n### {SCRATCH_QUESTION}\n\n"
            "The from-scratch CNN (4 conv + 2 FC layers, unit camera position, squared loss) against transfer "
            "models, trained on the same renders with the same augmentation settings (drawn afresh every epoch "
            "for the from-scratch CNN, from one cached augmented copy for the transfer models) and tested on the "
            "same held-out views. E(c, c') is the angle between predicted and true camera positions C/d. —: the from-scratch "
            "CNN predicts neither the category nor the in-plane rotation, so it has no MedErr (full rotation) "
            "and no cat-acc. n/r: not recorded in that variant's stored JSON (re-run it with the ablation).\n\n"
            f"{head}\n" + "\n".join(_scratch_row(s) for s in rows))


def _members(cfg: dict) -> str:
    """The recipe's ensemble and test-time averaging in words (absent from results stored before they existed)."""
    n, tta = cfg.get("members", 1), cfg.get("test_time", "none")
    net = f"an ensemble of {n} networks" if n > 1 else "one network"
    return net + (" averaged with the mirrored crop" if tta == "flip" else "")


FOLDS_PLOT = "results/folds.png"  # relative to docs/
# (label, part of recipe.json, key, format) of the cross-validation table's columns
FOLD_COLUMNS = (("MedErr° (all)", "overall", "med_err", "{:.1f}"), ("Acc@π/6 (all)", "overall", "acc_pi6", "{:.3f}"),
                ("cat-acc (all)", "overall", "cat_acc", "{:.3f}"),
                ("MedErr° symmetry-reduced", "symmetry", "med_err", "{:.1f}"),
                ("Acc@π/6 symmetry-reduced", "symmetry", "acc_pi6", "{:.3f}"),
                ("Acc@π/6 best of 2 hypotheses", "hypotheses", 2, "{:.3f}"),
                ("Acc@π/6 best of 4 hypotheses", "hypotheses", 4, "{:.3f}"))
HEADLINE_COLUMNS = FOLD_COLUMNS[:5]  # those every evaluation has (the levers' and the seen views' tables)


def recipe_runs() -> list[dict]:
    """docs/results/reference.json (fold 0) and the stored runs of other folds; empty without the reference."""
    ref = DOCS / "results" / "reference.json"
    if not ref.is_file():
        return []
    return [json.loads(p.read_text()) for p in (ref, *sorted((DOCS / "results" / "folds").glob("*.json")))]


def _fold(r: dict) -> int:
    return r["config"].get("fold", 0)  # runs stored before folds existed are fold 0


def _held_out(r: dict) -> list[str]:
    """The held-out meshes of a recipe run (recorded since folds exist; before, the symmetry table names them)."""
    return r.get("held_out") or sorted(r["symmetry"]["angles_deg"])


def _column(r: dict, part: str, key: str | int) -> float:
    if part == "hypotheses":  # key: k of best of the first k (vantage.train.metrics.hypothesis_report)
        return next(b["acc_pi6"] for b in r["hypotheses"]["best_of"] if b["k"] == key)
    return r["symmetry"]["overall"][key] if part == "symmetry" else r[part][key]


def seed_reruns() -> list[dict]:
    """docs/results/seeds/*.json: reference-recipe runs trained again with other training seeds."""
    return [json.loads(p.read_text()) for p in sorted((DOCS / "results" / "seeds").glob("*.json"))]


def _seeds(r: dict) -> str:
    """Which training seeds a run's members had: member i trains as member i + `member_shift` (its
    initialisation and batch order; vantage.train.trainer), on the same renders and augmented features."""
    first = r.get("member_shift", 0)
    return f"members {first}-{first + r['config']['members'] - 1}"


def _beside_stored(runs: list[dict], others: list[dict]) -> list[tuple[dict, dict]]:
    """(stored run of the fold, other run) for each other run whose fold has a stored run, by fold."""
    by_fold = {_fold(r): r for r in runs}
    return [(by_fold[_fold(r)], r) for r in sorted(others, key=_fold) if _fold(r) in by_fold]


def run_noise(runs: list[dict], reruns: list[dict]) -> list[float] | None:
    """The largest difference per FOLD_COLUMNS figure between a rerun and its fold's stored run; None without one."""
    pairs = _beside_stored(runs, reruns)
    if not pairs:
        return None
    return [max(abs(_column(rerun, part, key) - _column(stored, part, key)) for stored, rerun in pairs)
            for _, part, key, _ in FOLD_COLUMNS]


def seeds_section(runs: list[dict], reruns: list[dict]) -> list[str]:
    """Run-to-run noise: each rerun beside the stored run of its fold and their difference per figure, then the
    largest difference over the folds: what a lever has to beat on one run before it counts; empty without
    a rerun of a stored fold."""
    pairs = _beside_stored(runs, reruns)
    if not pairs:
        return []
    head = ("| fold | training seeds | " + " | ".join(label for label, *_ in FOLD_COLUMNS) + " |\n|---|---|" +
            "---|" * len(FOLD_COLUMNS))
    rows = []
    for stored, rerun in pairs:
        for r in (stored, rerun):
            rows.append(f"| {_fold(r)} | {_seeds(r)} | " +
                        " | ".join(fmt.format(_column(r, part, key)) for _, part, key, fmt in FOLD_COLUMNS) + " |")
        rows.append(f"| {_fold(rerun)} | difference | " +
                    " | ".join(fmt.format(abs(_column(rerun, part, key) - _column(stored, part, key)))
                               for _, part, key, fmt in FOLD_COLUMNS) + " |")
    noise = run_noise(runs, reruns)
    largest = ", ".join(f"{label} {fmt.format(g)}" for g, (label, _, _, fmt) in zip(noise[:4], FOLD_COLUMNS))
    return [
        "### Run-to-run noise", "",
        "The same recipe trained again on the same fold's renders and cached augmented features, with other "
        "training seeds only (the members' initialisation and batch order): how far one run's figures move "
        "when nothing is changed.", "", head, *rows, "",
        f"Largest difference over the folds: {largest}. A lever measured on one run per fold is noise unless it "
        "moves the figures further than this, on every fold.", "",
    ]


def lever_runs() -> list[dict]:
    """docs/results/levers/*.json: the reference recipe with one setting changed, each on a fold's renders and
    cached features (the stored run's), so that it differs from that fold's stored run in the change alone."""
    return [json.loads(p.read_text()) for p in sorted((DOCS / "results" / "levers").glob("*.json"))]


# Settings of a recipe.json that say where it ran or what else it measured, not what it trained
WHERE = ("models", "out", "data", "train.data", "train.out", "train.feature_cache", "train.threads", "train.progress",
         "confidence_calibration", "seen_test_views")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


@functools.cache
def _recipe_defaults() -> dict:
    """Today's RecipeConfig flattened as a recipe.json stores it (tuples as JSON lists), built once."""
    return _flat(json.loads(json.dumps(asdict(RecipeConfig(models="", out="")))))


def lever_settings(lever: dict, stored: dict) -> list[tuple[str, object, object]]:
    """(dotted key, the stored run's value, the lever's value) of each setting a lever run trained with that its
    fold's stored run did not, read from their configs; a setting the stored run predates counts at today's
    default (`RecipeConfig`), one the code no longer has is left out."""
    defaults, base = _recipe_defaults(), _flat(stored["config"])
    return [(k, base.get(k, defaults[k]), v) for k, v in _flat(lever["config"]).items()
            if k in defaults and k not in WHERE and v != base.get(k, defaults[k])]


def changed_defaults(stored: dict) -> list[tuple[str, object, object]]:
    """(dotted key, the stored run's value, today's default) of each training setting in which today's recipe
    differs from a stored run: a lever adopted after the stored runs, which the levers were measured against.
    The fold says which run it is, and `train.model.input_size` is set from `input_size`."""
    defaults = _recipe_defaults()
    return [(k, v, defaults[k]) for k, v in _flat(stored["config"]).items()
            if k in defaults and k not in (*WHERE, "fold", "train.model.input_size") and v != defaults[k]]


def set_flag(key: str, value: object) -> str:
    """`KEY=VALUE` as `vantage recipe reference --set` reads it back (the value as YAML: JSON but bare strings)."""
    return f"{key}={value if isinstance(value, str) else json.dumps(value)}"


def lever_change(lever: dict, stored: dict) -> str:
    """A lever's change as the `--set` flags that rerun it, each with the value it replaced."""
    return ", ".join(f"`{set_flag(k, now)}` (was {was})" for k, was, now in lever_settings(lever, stored)) or "nothing"


def lever_thresholds(stored: dict, noise: list[float] | None) -> list[float] | None:
    """How far each headline figure (FOLD_COLUMNS' first five) must move to count: the run-to-run noise, and for an
    accuracy at least its standard error over the fold's test views, sqrt(p(1 − p) / n): two reruns per fold
    are too few to bound a rate that a handful of views moves (cat-acc's 0.006 is two of 360)."""
    if noise is None:
        return None
    n = stored["overall"]["count"]
    return [g if key == "med_err" else max(g, (_column(stored, part, key) * (1 - _column(stored, part, key)) / n) ** 0.5)
            for g, (_, part, key, _) in zip(noise, FOLD_COLUMNS[:5])]


def lever_verdict(deltas: list[float], thresholds: list[float] | None) -> str:
    """better / worse / mixed / within the noise: whether the change moved any headline figure further than
    its threshold (`lever_thresholds`), and which way (a lower MedErr, a higher accuracy)."""
    if thresholds is None:
        return "no noise measured"
    moves = {d * (-1 if key == "med_err" else 1) > 0
             for d, t, (_, _, key, _) in zip(deltas, thresholds, FOLD_COLUMNS) if abs(d) > t}
    return {frozenset(): "within the noise", frozenset({True}): "better", frozenset({False}): "worse"}.get(
        frozenset(moves), "mixed")


def levers_section(runs: list[dict], levers: list[dict], noise: list[float] | None) -> list[str]:
    """Every stored lever run beside its fold's stored run: its change, the headline figures with their
    difference, and its verdict against the run-to-run noise; empty without a lever run of a stored fold."""
    pairs = _beside_stored(runs, levers)
    if not pairs:
        return []
    columns = HEADLINE_COLUMNS
    head = ("| change | fold | " + " | ".join(f"{label} (Δ)" for label, *_ in columns) + " | verdict |\n|---|---|" +
            "---|" * (len(columns) + 1))
    rows = []
    for change, stored, lever in sorted(((lever_change(lever, stored), stored, lever) for stored, lever in pairs),
                                        key=lambda c: (c[0], _fold(c[2]))):
        deltas = [_column(lever, part, key) - _column(stored, part, key) for _, part, key, _ in columns]
        cells = [f"{fmt.format(_column(lever, part, key))} ({'+' if d > 0 else ''}{fmt.format(d).replace('-', '−')})"
                 for d, (_, part, key, fmt) in zip(deltas, columns)]
        rows.append(f"| {change} | {_fold(lever)} | " + " | ".join(cells) +
                    f" | {lever_verdict(deltas, lever_thresholds(stored, noise))} |")
    return [
        "### Levers tried in the recipe", "",
        "The recipe with one setting changed (or two, where a change costs compute that it gives back), trained on "
        "a fold's renders and cached features: each beside that fold's stored run above, Δ = lever − stored. "
        "The verdict weighs every figure against the run-to-run noise (the largest difference above; for an "
        "accuracy at least its standard error over the test views): *better* or *worse* where a figure moves "
        "further, *mixed* where figures move both ways, *within the noise* where none does. "
        "A lever is adopted only when it is better on every fold it was run on. Each reruns with "
        "`vantage recipe reference --models DIR --out OUT --fold F --set KEY=VALUE` for each setting its change "
        "names.", "", head, *rows, "",
    ]


def seen_section(runs: list[dict], levers: list[dict]) -> list[str]:
    """Each stored run that also measured its bundle on new views of its training meshes (recipe.json's "seen"):
    its figures on the held-out meshes beside those, and per category for the first: how much of the error is
    left on meshes the model has learnt (a floor more meshes would not lower) and how much is the gap to unseen
    ones (what more meshes could close); empty without such a run."""
    measured = [r for r in runs if r.get("seen")]
    measured += [r for _, r in _beside_stored(runs, levers) if r.get("seen")]
    if not measured:
        return []
    by_fold = {_fold(r): r for r in runs}
    head = ("| run | fold | " + " | ".join(f"{label}: unseen / seen" for label, *_ in HEADLINE_COLUMNS) +
            " | seen views |\n|---|---|" + "---|" * (len(HEADLINE_COLUMNS) + 1))
    rows = []
    for r in measured:
        name = "stored run" if r in runs else lever_change(r, by_fold[_fold(r)])
        cells = [f"{fmt.format(_column(r, part, key))} / {fmt.format(_column(r['seen'], part, key))}"
                 for _, part, key, fmt in HEADLINE_COLUMNS]
        rows.append(f"| {name} | {_fold(r)} | " + " | ".join(cells) + f" | {r['seen']['overall']['count']} |")
    first = measured[0]
    categories = list(first["per_category"])
    cat_head = "| figure | " + " | ".join(categories) + " |\n|---|" + "---|" * len(categories)

    def cat_row(label: str, of: dict, key: str, fmt: str) -> str:
        return f"| {label} | " + " | ".join(fmt.format(of[c][key]) if c in of else "—" for c in categories) + " |"

    cat_rows = [cat_row("MedErr° unseen", first["per_category"], "med_err", "{:.1f}"),
                cat_row("MedErr° seen", first["seen"]["per_category"], "med_err", "{:.1f}"),
                cat_row("MedErr° seen, symmetry-reduced", first["seen"]["symmetry"]["per_category"], "med_err", "{:.1f}"),
                cat_row("Acc@π/6 unseen", first["per_category"], "acc_pi6", "{:.3f}"),
                cat_row("Acc@π/6 seen", first["seen"]["per_category"], "acc_pi6", "{:.3f}"),
                cat_row("cat-acc unseen", first["per_category"], "cat_acc", "{:.3f}"),
                cat_row("cat-acc seen", first["seen"]["per_category"], "cat_acc", "{:.3f}"),
                cat_row("seen views", first["seen"]["per_category"], "count", "{}")]
    return [
        "### Seen meshes, new views", "",
        "The same bundle on new views of its training CAD meshes (`RecipeConfig.seen_test_views` per mesh, other "
        "render seeds, rendered as the test views are, over the same backgrounds; OUT/eval_seen): the error left on "
        "meshes the model has learnt is a floor that more training meshes alone would not lower, and the gap from "
        "there to the held-out (unseen) meshes is what they could close. Symmetry-reduced figures forgive each "
        "mesh its own symmetries, held-out or training.", "",
        head, *rows, "", f"Per category ({'stored run' if first in runs else lever_change(first, by_fold[_fold(first)])}, "
        f"fold {_fold(first)}):", "", cat_head, *cat_rows, "",
    ]


def folds_section(runs: list[dict]) -> list[str]:
    """Cross-validation over which meshes are unseen: the reference recipe on disjoint held-out folds, the
    headline figures per fold with their mean and spread, and MedErr per category per fold (which category's
    error is its held-out mesh's, which is the category's); empty with fewer than two folds."""
    if len(runs) < 2:
        return []
    runs = sorted(runs, key=_fold)
    head = ("| fold | held-out meshes | " + " | ".join(label for label, *_ in FOLD_COLUMNS) + " | min |\n|---|---|" +
            "---|" * (len(FOLD_COLUMNS) + 1))
    rows = []
    for r in runs:
        mesh_ids = ", ".join(m.rsplit("/", 2)[-2] + " " + m.rsplit("/", 1)[-1] for m in _held_out(r))
        cells = [fmt.format(_column(r, part, key)) for _, part, key, fmt in FOLD_COLUMNS]
        rows.append(f"| {_fold(r)} | {mesh_ids} | " + " | ".join(cells) + f" | {r['seconds']['total'] / 60:.1f} |")
    spread = []
    for _, part, key, fmt in FOLD_COLUMNS:
        values = [_column(r, part, key) for r in runs]
        spread.append(f"{fmt.format(statistics.mean(values))} ± {fmt.format(statistics.stdev(values))}")
    rows.append("| mean ± sd | | " + " | ".join(spread) + " | |")
    rows += ["", *(f"- Fold {_fold(r)}: {r['reexported']}." for r in runs if "reexported" in r)]
    categories = list(runs[0]["per_category"])

    def cat_row(label: str, of: list[dict], key: str, fmt: str) -> str:
        """The mean of `key` per category over the runs `of` that tested it ("—" where none did)."""
        def cell(c: str) -> str:
            values = [r["per_category"][c][key] for r in of if c in r["per_category"]]
            return fmt.format(statistics.mean(values)) if values else "—"
        return f"| {label} | " + " | ".join(cell(c) for c in categories) + " |"

    cat_head = "| fold | " + " | ".join(categories) + " |\n|---|" + "---|" * len(categories)
    cat_rows = [cat_row(str(_fold(r)), [r], "med_err", "{:.1f}") for r in runs]
    cat_rows += [cat_row("mean MedErr°", runs, "med_err", "{:.1f}"), cat_row("mean Acc@π/6", runs, "acc_pi6", "{:.2f}"),
                 cat_row("mean cat-acc", runs, "cat_acc", "{:.2f}")]
    return [
        "### Cross-validation over the held-out meshes", "",
        f"The same recipe on {len(runs)} disjoint sets of held-out CAD meshes (`--fold`; one mesh per category each, "
        "so each category's figure is one mesh's): how much the figures above depend on which meshes are unseen.", "",
        head, *rows, "", "MedErr° per category and fold, and each category's mean over the folds (over its held-out meshes):", "", cat_head, *cat_rows, "",
        f"![MedErr per category and fold]({FOLDS_PLOT})", "",
    ]


def plot_folds(runs: list[dict], path: Path) -> None:
    """Grouped bars of each category's MedErr per fold, with the 8° target: which categories are hard
    whatever mesh is held out (bottle, diningtable) and which depend on the mesh (car, train)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(runs, key=_fold)
    categories = list(runs[0]["per_category"])
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for i, r in enumerate(runs):
        errs = [r["per_category"].get(c, {}).get("med_err", np.nan) for c in categories]
        ax.bar(np.arange(len(categories)) + (i - (len(runs) - 1) / 2) * width, errs, width,
               label=f"fold {_fold(r)}: {r['overall']['med_err']:.1f}° all")
    ax.axhline(8, color="k", ls="--", lw=1, label="target 8°")
    ax.set_xticks(np.arange(len(categories)), categories, rotation=30, ha="right")
    ax.set_ylabel("MedErr (°), held-out mesh"), ax.legend(fontsize=7, ncols=2)
    fig.tight_layout(), fig.savefig(path, dpi=90), plt.close(fig)


def calibration_section(r: dict) -> list[str]:
    """The reference bundle's pose confidence before and after its calibration (`vantage calibrate`), from the
    run's "hypotheses" (calibrated) and "hypotheses_uncalibrated" (the same bundle, raw scores)."""
    cal, raw = r.get("hypotheses", {}), r.get("hypotheses_uncalibrated")
    if not raw or not cal.get("calibration"):
        return []
    maps = cal["calibration"]

    def bands(report: dict) -> dict[tuple[float, float], dict]:
        return {(b["from"], b["to"]): b for b in report["confidence"]}

    before, after = bands(raw), bands(cal)
    rows = ["| pose confidence | raw: views | raw: Acc@π/6 | calibrated: views | calibrated: Acc@π/6 |",
            "|---|---|---|---|---|"]
    for lo, hi in sorted(set(before) | set(after)):
        cells = [f"{b['count']} | {b['hit_rate']:.3f}" if b else "0 | —"
                 for b in (before.get((lo, hi)), after.get((lo, hi)))]
        rows.append(f"| {lo:.1f} to {hi:.1f} | " + " | ".join(cells) + " |")
    return [
        "\n### Pose confidence calibration\n",
        f"The bundle's pose confidence is P(error < {maps['within_deg']:g}°): Platt maps (vantage.calibration) "
        f"σ({maps['answer'][0]:.3f} · logit(score) {maps['answer'][1]:+.3f}) for the answer and "
        f"σ({maps['alternatives'][0]:.3f} · logit(score) {maps['alternatives'][1]:+.3f}) for the alternatives. "
        f"Where they come from: {maps['source']} ({maps['views']} views of other folds' held-out meshes, scored by "
        "those folds' bundles; none of this bundle's held-out views), so the held-out views here test it. "
        "Expected calibration error (0 = the confidence is the hit rate): "
        f"answers {raw['ece']:.3f} raw → {cal['ece']:.3f} calibrated, every shown hypothesis "
        f"{raw['ece_all']:.3f} → {cal['ece_all']:.3f}; the answers' mean confidence {raw['mean_scores'][0]:.3f} → "
        f"{cal['mean_scores'][0]:.3f} against Acc@π/6 {r['overall']['acc_pi6']:.3f}.\n",
        *rows,
    ]


OFF_AXIS = "results/off_axis"  # relative to docs/: vantage.train.off_axis_bench's off_axis and roll .json / .png


def off_axis_section(result: dict | None) -> list[str]:
    """What a request's camera intrinsics are worth (vantage.train.off_axis_bench), when it was measured."""
    if not result:
        return []
    return [
        "## Objects off the optical axis (`EstimateRequest.camera`)", "",
        f"The reference bundle on its held-out views re-imaged by a camera turned away from the object "
        f"(`vantage off-axis`: the object's centre uniformly up to the angle off the optical axis, the labels "
        "exact), answered without the camera's intrinsics (relative to the ray through the box centre) and "
        "with them (as the server does for a request with `camera`: the crop taken from the view turned to the box "
        "centre, the answer turned back to the optical axis). "
        f"`python -m vantage.train.off_axis_bench --model {result['model']} --data {result['data']}`. "
        "The 0° row is the views re-imaged unturned (resampled and re-encoded once, which alone moves the median "
        "by about half a degree); there the camera's turn is only the few degrees between the ray through the box "
        "centre and the one through the object's centre, which the renders put on the axis.", "",
        off_axis_table(result), "",
        f"![median error against the off-axis angle]({OFF_AXIS}/off_axis.png)", "",
    ]


def roll_section(result: dict | None) -> list[str]:
    """What a request's gravity is worth (vantage.train.off_axis_bench --bench roll), when it was measured."""
    if not result:
        return []
    return [
        "## Cameras held askew (`EstimateRequest.gravity`, `upright`)", "",
        "The reference bundle on its held-out views re-imaged by a camera rolled about its optical axis "
        "(`vantage off-axis --max-angle 0 --max-roll R`: uniformly up to R either way, the labels exact), answered "
        "without gravity, with each view's gravity (as the server does for a request with `gravity`: the crop "
        "rolled until gravity points down in it, the answer turned back) and also `upright` (each pose replaced by "
        "the nearest one standing against gravity: elevation and in-plane rotation from gravity, the azimuth from "
        "the image). A view's gravity is its label's, −R[:, 2]: the rendered objects stand upright, as a phone's "
        "accelerometer would report for a car on a road. "
        f"`python -m vantage.train.off_axis_bench --bench roll --model {result['model']} --data {result['data']}`. "
        "The ±0° row is the views re-imaged unrolled: gravity also levels the renders' own small roll "
        "(θ ~ N(0°, 8°)).", "",
        off_axis_table(result), "",
        f"![median error against the camera's roll]({OFF_AXIS}/roll.png)", "",
    ]


CORRUPTIONS = "results/corruptions"  # relative to docs/: vantage.train.corruption_bench's .json / .png


def trained_corruptions(augment: dict) -> str:
    """Which of the bench's corruptions a recipe's training augmentation (TrainConfig.augment) already shows it."""
    q0, q1 = augment.get("jpeg_quality", (30, 90))
    text = (f"Training augments with colour jitter (±{augment.get('colour_jitter', 0.25):g}), noise (σ ≤ "
            f"{augment.get('noise_std', 8.0):g}), Gaussian blur (σ 0.4-1.5), JPEG (quality {q0}-{q1})")
    if augment.get("occlude_prob"):
        text += f", {augment.get('occluder', 'noise')} occluders on {augment['occlude_prob']:.0%} of the augmented crops"
    if augment.get("camera_prob"):
        return (text + f" and, on {augment['camera_prob']:.0%} of them, one of {', '.join(augment['camera_effects'])} "
                "at a random level between severity 1 and 3: those rows measure corruptions it trained on (at other "
                "levels); the others, and solid occluders, it never saw.")
    return text + "; the other corruptions are new to it."


def corruption_section(result: dict | None, augment: dict | None = None) -> list[str]:
    """How the bundle holds up on photo-like frames (vantage.train.corruption_bench), when it was measured;
    `augment`: its recipe's training augmentation, to say which corruptions it trained on."""
    if not result:
        return []
    from vantage.train.corruption_bench import table

    worst = max((r for r in result["rows"] if r["severity"] == 2), key=lambda r: r["med_err"], default=None)
    ranked = "" if worst is None else (
        f" At severity 2 the worst is `{worst['corruption']}`: MedErr {worst['med_err']:.1f}° / Acc@π/6 "
        f"{worst['acc_pi6']:.3f} / cat-acc {worst['cat_acc']:.3f} against {result['clean']['med_err']:.1f}° / "
        f"{result['clean']['acc_pi6']:.3f} / {result['clean']['cat_acc']:.3f} on the clean views.")
    return [
        "## Photo-like frames: camera corruptions (`vantage corrupt`)", "",
        "The reference bundle on its held-out views as a camera spoils them, each corruption on the whole image "
        "at three severities (`vantage.train.corruptions`: 1 an ordinary bad frame, 3 one a user would still send; "
        "the labels unchanged). " + (trained_corruptions(augment) + " " if augment is not None else "") +
        f"`python -m vantage.train.corruption_bench --model {result['model']} --data {result['data']}`.{ranked}", "",
        table(result), "",
        f"![median error against severity]({CORRUPTIONS}/corruptions.png)", "",
    ]


def _adopted_since(r: dict) -> list[str]:
    """A line naming the settings today's recipe changed since the stored runs were trained; empty if none."""
    changes = changed_defaults(r)
    if not changes:
        return []
    named = ", ".join(f"`{set_flag(k, today)}` (these runs: {was})" for k, was, today in changes)
    return [f"Today's recipe differs from these stored runs in {named}: adopted from the levers table below after "
            "these runs, which stay the base that every lever was measured against; its own figures are that "
            "lever's rows.", ""]


def build(results_dir: Path = RESULTS) -> str:
    """The markdown of docs/RESULTS.md, from the JSON in `results_dir`."""
    results = [json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))]
    lines = ["# Results", "", "Generated by `python -m vantage.train.results_doc` from `docs/results/`; do not edit.", ""]
    runs = recipe_runs()
    if runs:
        r = runs[0]
        t = r["config"]["train"]
        lines += [
            "## Reference recipe (`vantage recipe reference`)", "",
            f"Head `{t['model']['head']}` (per-bin delta {t['model']['per_bin_delta']}, K = {t['model']['num_bins']}), "
            f"{t['epochs']} epochs, input {t['model']['input_size']}², tap block {t['model']['tap']}, "
            f"training flips {t['flip']}, {_members(r['config'])}; "
            f"{r['seconds']['total'] / 60:.1f} min in total on this machine "
            f"(render {r['seconds']['render']:.0f} s, train {r['seconds']['train']:.0f} s, the feature cache included; "
            "a rerun in the same folder reuses the renders and the cached frozen features). "
            "Test: renders of CAD meshes held out from training, over photo-like backgrounds.", "",
            *_adopted_since(r), category_table(r), "", topk_table(r), "", *miss_section(r, "###", with_plot=False), *symmetry_section(r, "###"),
            *elevation_section(r, "###", with_plot=False), *hypothesis_section(r, "###", with_plot=False),
            *calibration_section(r), "",
        ]
        reruns = seed_reruns()
        lines += folds_section(runs) + seeds_section(runs, reruns)
        lines += levers_section(runs, lever_runs(), run_noise(runs, reruns))
        lines += seen_section(runs, lever_runs())
    off_axis = DOCS / OFF_AXIS / "off_axis.json"
    lines += off_axis_section(json.loads(off_axis.read_text()) if off_axis.is_file() else None)
    roll = DOCS / OFF_AXIS / "roll.json"
    lines += roll_section(json.loads(roll.read_text()) if roll.is_file() else None)
    corrupted = DOCS / CORRUPTIONS / "corruptions.json"
    lines += corruption_section(json.loads(corrupted.read_text()) if corrupted.is_file() else None,
                                runs[0]["config"]["train"]["augment"] if runs else None)
    if _transfer(results):
        cfg = _transfer(results)[0]["config"]
        lines += [
            "## Ablation", "",
            f"Every variant: the same renders ({', '.join(Path(d).name for d in cfg['data'])}), "
            f"{cfg['model']['input_size']}² input, {cfg['epochs']} epochs on cached frozen features with "
            f"{cfg['augmented_copies']} augmented copy, "
            "evaluated on renders of the held-out CAD meshes (unseen models, textured backgrounds). "
            "Small data and short schedules: differences of a degree or two are within run-to-run noise; "
            "read the tables for large effects only. One run per variant (the papers average three).",
            ablation_section(results), scratch_section(results), "",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    (DOCS / "RESULTS.md").write_text(build())
    runs = recipe_runs()
    if len(runs) > 1:
        plot_folds(runs, DOCS / FOLDS_PLOT)
    print(f"wrote {DOCS / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
