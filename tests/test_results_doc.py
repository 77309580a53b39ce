"""docs/RESULTS.md's cross-validation table is computed from the stored recipe runs, not typed."""

from __future__ import annotations

import copy
import json
import statistics
from dataclasses import asdict
from pathlib import Path

import pytest

from vantage.train.config_file import override
from vantage.train.recipe import RecipeConfig
from vantage.train.results_doc import (DOCS, _adopted_since, _flat, changed_defaults, folds_section, lever_change, lever_runs, lever_settings,
                                       levers_section, plot_folds, recipe_runs, run_noise, seed_reruns,
                                       seeds_section, seen_section, set_flag)


def _runs() -> list[dict]:
    reference = json.loads((DOCS / "results" / "reference.json").read_text())
    other = copy.deepcopy(reference)
    other["config"]["fold"] = 1
    other["held_out"] = ["pascal3d_cad/car/08", "pascal3d_cad/train/02"]
    other["overall"]["med_err"] = reference["overall"]["med_err"] + 4.0
    del other["per_category"]["train"]
    other["hypotheses"]["best_of"][1]["acc_pi6"] -= 0.05
    return [other, reference]  # out of order: the table sorts by fold


def test_folds_table_gives_each_fold_and_their_mean_and_spread() -> None:
    runs = _runs()
    lines = folds_section(runs)
    text = "\n".join(lines)
    fold_rows = [line for line in lines if line.startswith("| 0 |") or line.startswith("| 1 |")]
    assert [row[:5] for row in fold_rows] == ["| 0 |", "| 1 |", "| 0 |", "| 1 |"]  # headline table, per-category table
    assert "car 08, train 02" in fold_rows[1] and "bottle 08" in fold_rows[0]  # older runs: held-out meshes from symmetry
    errs = [r["overall"]["med_err"] for r in runs]
    assert f"| mean ± sd | | {statistics.mean(errs):.1f} ± {statistics.stdev(errs):.1f} |" in text
    best2 = [r["hypotheses"]["best_of"][1]["acc_pi6"] for r in runs]
    assert f"| {statistics.mean(best2):.3f} ± {statistics.stdev(best2):.3f} |" in text, "best of 2 hypotheses"
    assert fold_rows[3].count("—") == 1, "a category a fold did not test is marked, not invented"
    mean_row = next(line for line in lines if line.startswith("| mean MedErr° |")).split(" | ")
    train_column = list(runs[1]["per_category"]).index("train") + 1
    assert mean_row[train_column] == f"{runs[1]['per_category']['train']['med_err']:.1f}", "the mean of the folds that tested it"
    assert folds_section(runs[1:]) == [], "one fold is no cross-validation"
    assert not any(line.startswith("- Fold ") for line in lines)
    runs[0]["reexported"] = "re-exported"
    assert "- Fold 1: re-exported." in folds_section(runs), "a run measured again says so under the table"


def test_seeds_table_sets_each_rerun_beside_its_fold_and_gives_the_largest_difference() -> None:
    runs = _runs()
    rerun = copy.deepcopy(runs[1])  # fold 0 trained again
    rerun["member_shift"] = 2
    rerun["overall"]["med_err"] += 1.5
    rerun["overall"]["acc_pi6"] -= 0.02
    lines = seeds_section(runs, [rerun])
    text = "\n".join(lines)
    assert "| 0 | members 0-1 |" in text and "| 0 | members 2-3 |" in text, "the stored run, then the rerun"
    diff = next(line for line in lines if line.startswith("| 0 | difference |")).split(" | ")
    assert diff[2:5] == ["1.5", "0.020", "0.000"]
    assert "Largest difference over the folds: MedErr° (all) " in text and "Acc@π/6 (all) 0.020" in text
    assert not any(line.startswith("| 1 |") for line in lines), "a fold without a rerun has no row"
    assert seeds_section(runs, []) == [] and seeds_section(runs[:1], [rerun]) == [], "a rerun needs its fold's run"


def test_a_lever_is_named_by_the_settings_it_changed_not_by_where_it_ran() -> None:
    stored = _runs()[1]
    lever = copy.deepcopy(stored)
    assert lever_change(lever, stored) == "nothing"
    lever["config"]["out"], lever["config"]["train"]["feature_cache"] = "runs/elsewhere", "runs/elsewhere/run"
    lever["config"]["train"]["alpha"] = 0.3
    lever["config"]["train"]["augment"]["blur_prob"] = 0.0
    blur = stored["config"]["train"]["augment"]["blur_prob"]
    assert lever_change(lever, stored) == f"`train.augment.blur_prob=0.0` (was {blur}), `train.alpha=0.3` (was 1.0)"
    assert "sam_rho" not in stored["config"]["train"], "a setting the stored run predates counts at today's default"
    lever["config"]["train"]["sam_rho"] = 0.05
    assert lever_change(lever, stored).endswith("`train.sam_rho=0.05` (was 0.0)")
    lever["config"]["train"]["gone"] = 1  # a setting the code no longer has
    assert "gone" not in lever_change(lever, stored)


def test_every_stored_lever_reruns_from_the_set_flags_its_row_names() -> None:
    stored = {r["config"]["fold"]: r for r in recipe_runs()}
    levers = [lever for lever in lever_runs() if lever["config"]["fold"] in stored]
    assert levers, "docs/results/levers holds runs of stored folds"
    for lever in levers:
        changes = lever_settings(lever, stored[lever["config"]["fold"]])
        assert changes, f"{lever['config']['out']} changed nothing"
        cfg = override(RecipeConfig(models="repo", out="out", fold=lever["config"]["fold"]),
                       [set_flag(key, now) for key, _, now in changes])
        rebuilt = _flat(json.loads(json.dumps({**asdict(cfg), "train": cfg.train.to_dict()})))
        assert {key: rebuilt[key] for key, _, _ in changes} == {key: now for key, _, now in changes}


def test_levers_table_weighs_each_lever_against_the_noise() -> None:
    runs = _runs()
    rerun = copy.deepcopy(runs[1])
    rerun["overall"]["med_err"] += 0.9  # fold 0 trained again: the noise
    noise = run_noise(runs, [rerun])
    assert noise[0] == pytest.approx(0.9) and noise[1] == 0.0

    def lever(fold: dict, alpha: float, med_err: float, acc: float) -> dict:
        r = copy.deepcopy(fold)
        r["config"]["train"]["alpha"] = alpha
        r["overall"]["med_err"] += med_err
        r["overall"]["acc_pi6"] += acc
        return r

    levers = [lever(runs[1], 0.3, -2.0, 0.0), lever(runs[0], 0.3, 0.5, 0.01), lever(runs[1], 3.0, 2.0, 0.0),
              lever(runs[1], 2.0, -2.0, -0.2)]
    lines = levers_section(runs, levers, noise)
    rows = [line for line in lines if line.startswith("| `train.alpha")]
    assert [r.split(" | ")[:2] for r in rows] == [["| `train.alpha=0.3` (was 1.0)", "0"],
                                                  ["| `train.alpha=0.3` (was 1.0)", "1"],
                                                  ["| `train.alpha=2.0` (was 1.0)", "0"],
                                                  ["| `train.alpha=3.0` (was 1.0)", "0"]]
    assert [r.rsplit(" | ", 1)[1] for r in rows] == ["better |", "within the noise |", "mixed |", "worse |"]
    med = runs[1]["overall"]["med_err"]
    assert f"| {med - 2.0:.1f} (−2.0) |" in rows[0] and f"| {med + 2.0:.1f} (+2.0) |" in rows[3]
    assert "no noise measured |" in levers_section(runs, levers, None)[-2]
    assert levers_section(runs, [], noise) == [] and levers_section(runs[1:], levers[1:2], noise) == [], \
        "a lever needs its fold's stored run"


def _seen(r: dict, med_err: float) -> dict:
    """recipe.json's "seen" part: the run's own figures moved to `med_err`, one category left untested."""
    seen = {"overall": {**r["overall"], "med_err": med_err, "count": 410},
            "per_category": {c: {**m, "med_err": med_err} for c, m in r["per_category"].items() if c != "bottle"},
            "symmetry": {"overall": {**r["symmetry"]["overall"], "med_err": med_err - 2.0},
                         "per_category": {c: {**m, "med_err": med_err - 2.0}
                                          for c, m in r["symmetry"]["per_category"].items() if c != "bottle"}},
            "misses": r["misses"]}
    return {**r, "seen": seen}


def test_seen_section_sets_the_training_meshes_new_views_beside_the_unseen_ones() -> None:
    runs = [{k: v for k, v in r.items() if k != "seen"} for r in _runs()]
    assert seen_section(runs, []) == [], "nothing measured on seen meshes: no section"
    runs[1] = _seen(runs[1], 11.0)
    lever = _seen(copy.deepcopy(runs[1]), 9.0)
    lever["config"]["train"]["model"]["num_bins"] = 32
    lines = seen_section(runs, [lever])
    rows = [line for line in lines if line.startswith("| stored run |") or line.startswith("| `train.model")]
    med = runs[1]["overall"]["med_err"]
    assert rows[0].startswith(f"| stored run | 0 | {med:.1f} / 11.0 | ") and rows[0].endswith(" | 410 |")
    assert rows[1].startswith(f"| `train.model.num_bins=32` (was 16) | 0 | {med:.1f} / 9.0 | ")
    sym = f"{runs[1]['symmetry']['overall']['med_err']:.1f} / 9.0"
    assert sym in rows[0]
    per_cat = {line.split(" | ")[0]: line for line in lines if line.startswith("| MedErr° seen")}
    assert "| 11.0 |" in per_cat["| MedErr° seen"] and "| — |" in per_cat["| MedErr° seen"]  # bottle untested
    assert "| 9.0 |" in per_cat["| MedErr° seen, symmetry-reduced"]


def test_a_setting_adopted_after_the_stored_runs_is_named_above_their_figures() -> None:
    today = RecipeConfig(models="", out="")
    runs = _runs()
    for r in runs:  # the stored runs as today's recipe would train them
        r["config"]["train"]["model"]["num_bins"] = today.train.model.num_bins
    assert changed_defaults(runs[0]) == [], "another fold, another input size field: not a change of recipe"
    older = copy.deepcopy(runs[1])
    older["config"]["train"]["model"]["num_bins"] = today.train.model.num_bins // 2
    older["config"]["seen_test_views"] = 0  # what else a run measured is no change of recipe
    assert changed_defaults(older) == [("train.model.num_bins", today.train.model.num_bins // 2,
                                        today.train.model.num_bins)]
    line = _adopted_since(older)[0]
    assert f"`train.model.num_bins={today.train.model.num_bins}` (these runs: {today.train.model.num_bins // 2})" in line
    assert _adopted_since(runs[0]) == []


def test_results_md_is_built_from_the_stored_folds() -> None:
    from vantage.train.results_doc import build

    md = build()
    folds = sorted((DOCS / "results" / "folds").glob("*.json"))
    assert ("Cross-validation over the held-out meshes" in md) == bool(folds)
    assert (DOCS / "RESULTS.md").read_text() == md, "docs/RESULTS.md is stale: python -m vantage.train.results_doc"
    for path in folds:
        assert f"| {json.loads(Path(path).read_text())['config']['fold']} |" in md
    assert ("Run-to-run noise" in md) == bool(seed_reruns())
    assert ("Levers tried in the recipe" in md) == bool(lever_runs())
    assert ("Seen meshes, new views" in md) == any(r.get("seen") for r in recipe_runs() + lever_runs())
    for lever in lever_runs():
        assert f"| {lever['overall']['med_err']:.1f} (" in md, "every stored lever run has its row"


def test_folds_plot_is_a_png(tmp_path: Path) -> None:
    plot_folds(_runs(), tmp_path / "folds.png")
    assert (tmp_path / "folds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "folds.png").stat().st_size > 5000


def test_calibration_section_compares_the_raw_and_calibrated_confidence_of_the_same_bundle() -> None:
    from vantage.train.results_doc import calibration_section

    reference = json.loads((DOCS / "results" / "reference.json").read_text())
    text = "\n".join(calibration_section(reference))
    raw, cal = reference["hypotheses_uncalibrated"], reference["hypotheses"]
    assert f"answers {raw['ece']:.3f} raw → {cal['ece']:.3f} calibrated" in text
    for before, after in zip(raw["confidence"], cal["confidence"]):
        assert f"| {before['count']} | {before['hit_rate']:.3f} | {after['count']} | {after['hit_rate']:.3f} |" in text
    assert sum(int(line.split(" | ")[3]) for line in text.splitlines() if line.startswith("| 0.")) == 360
    uncalibrated = copy.deepcopy(reference)
    uncalibrated["hypotheses"]["calibration"] = {}
    assert calibration_section(uncalibrated) == [], "no calibration, nothing to compare"


def test_off_axis_section_shows_both_answers_per_turn() -> None:
    from vantage.train.results_doc import OFF_AXIS, off_axis_section

    stored = DOCS / OFF_AXIS / "off_axis.json"
    result = json.loads(stored.read_text())
    text = "\n".join(off_axis_section(result))
    for plain, camera in zip(result["rows"][::2], result["rows"][1::2]):
        assert not plain["camera"] and camera["camera"] and plain["max_angle"] == camera["max_angle"]
        assert (f"| 0-{plain['max_angle']:g}° | {plain['views']} | {plain['med_err']:.1f} / {plain['acc_pi6']:.3f} | "
                f"{camera['med_err']:.1f} / {camera['acc_pi6']:.3f} |") in text
    assert f"({OFF_AXIS}/off_axis.png)" in text and (DOCS / OFF_AXIS / "off_axis.png").is_file()
    assert off_axis_section(None) == []


def test_roll_section_shows_each_roll_plain_with_gravity_and_upright() -> None:
    from vantage.train.results_doc import OFF_AXIS, roll_section

    result = json.loads((DOCS / OFF_AXIS / "roll.json").read_text())
    text = "\n".join(roll_section(result))
    for i in range(0, len(result["rows"]), 3):
        plain, gravity, upright = result["rows"][i:i + 3]
        assert (plain["mode"], gravity["mode"], upright["mode"]) == ("plain", "gravity", "upright")
        assert (f"| ±{plain['max_angle']:g}° | {plain['views']} | {plain['med_err']:.1f} / {plain['acc_pi6']:.3f} | "
                f"{gravity['med_err']:.1f} / {gravity['acc_pi6']:.3f} | {upright['med_err']:.1f} / "
                f"{upright['acc_pi6']:.3f} |") in text
    assert f"({OFF_AXIS}/roll.png)" in text and (DOCS / OFF_AXIS / "roll.png").is_file()
    assert roll_section(None) == []


def test_corruption_section_shows_every_corruption_beside_the_clean_views() -> None:
    from vantage.train.results_doc import CORRUPTIONS, corruption_section

    result = json.loads((DOCS / CORRUPTIONS / "corruptions.json").read_text())
    text = "\n".join(corruption_section(result))
    clean = result["clean"]
    assert f"| none (clean views) | | {clean['med_err']:.1f} / {clean['acc_pi6']:.3f} |" in text
    for name in {r["corruption"] for r in result["rows"]}:
        cells = sorted((r for r in result["rows"] if r["corruption"] == name), key=lambda r: r["severity"])
        assert " | ".join(f"{r['med_err']:.1f} / {r['acc_pi6']:.3f}" for r in cells) + " |" in text, name
    worst = max((r for r in result["rows"] if r["severity"] == 2), key=lambda r: r["med_err"])
    assert f"the worst is `{worst['corruption']}`: MedErr {worst['med_err']:.1f}°" in text
    assert f"({CORRUPTIONS}/corruptions.png)" in text and (DOCS / CORRUPTIONS / "corruptions.png").is_file()
    assert corruption_section(None) == []


def test_the_corruption_section_says_which_corruptions_training_showed() -> None:
    from vantage.train.data import AugmentConfig
    from vantage.train.results_doc import trained_corruptions

    plain = trained_corruptions(AugmentConfig(occlude_prob=0.5).to_dict())
    assert "noise occluders on 50%" in plain and plain.endswith("the other corruptions are new to it.")
    camera = trained_corruptions(AugmentConfig(occlude_prob=0.5, occluder="texture", camera_prob=0.3,
                                               camera_effects=("dark", "jpeg")).to_dict())
    assert "texture occluders on 50%" in camera and "on 30% of them, one of dark, jpeg at a random level" in camera
    assert "occluders" not in trained_corruptions(AugmentConfig().to_dict())
