"""`vantage eval`: the same metrics from a bundle and its checkpoint, report files, top-k analysis, metrics."""

import csv
import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from vantage.train.metrics import summarise

CATS = ["car", "chair", "bottle"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from vantage.export.onnx_export import export_bundle
    from vantage.train.meshes import builtin_specs
    from vantage.train.render import RenderConfig, render_dataset
    from vantage.train.trainer import TrainConfig, load_model, train

    root = tmp_path_factory.mktemp("eval")
    render_dataset(builtin_specs(1, categories=CATS), root / "train", RenderConfig(views_per_model=8, seed=3),
                   workers=1, progress=False)
    render_dataset(builtin_specs(1, categories=CATS, first_seed=50), root / "test", RenderConfig(views_per_model=3, seed=4),
                   workers=1, progress=False)
    cfg = TrainConfig(data=[str(root / "train")], out=str(root / "run"), epochs=2, batch_size=16, augmented_copies=0,
                      progress=False)
    cfg.model.categories, cfg.model.input_size, cfg.model.head = list(CATS), 64, "bd_g"
    cfg.model.num_bins, cfg.model.head_hidden = 4, (32, 16)
    ckpt = train(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = export_bundle(load_model(ckpt)[0], root / "bundle")
    return root, ckpt, bundle


def test_summary_adds_aaai_and_camera_error():
    s = summarise(np.array([0.0, 90.0, 180.0]), np.array([1, 0, 1]), np.array([1.0, 2.0, 3.0]))
    assert s["aaai"] == pytest.approx(0.5) and s["cam_err"] == 2.0 and s["acc_pi6"] == pytest.approx(1 / 3)


def test_misses_are_split_into_wrong_category_half_turn_and_other():
    from vantage.geometry import viewpoint_to_rotation
    from vantage.train.metrics import miss_kinds, miss_report

    true = np.stack([viewpoint_to_rotation(a, 20.0, 5.0) for a in (30.0, 30.0, 30.0, 30.0, 100.0)])
    pred = np.stack([viewpoint_to_rotation(40.0, 20.0, 5.0),     # 10° off: a hit
                     viewpoint_to_rotation(210.0, 20.0, 5.0),    # azimuth + 180°, right category
                     viewpoint_to_rotation(210.0, 20.0, 5.0),    # the same, but the category is wrong
                     viewpoint_to_rotation(30.0, -40.0, 5.0),    # elevation 60° off
                     viewpoint_to_rotation(100.0, 20.0, 5.0)])   # exact, wrong category: still a hit
    kinds = miss_kinds(pred, true, np.array([1, 1, 0, 1, 0], bool))
    assert kinds == ["", "half_turn", "wrong_category", "other", ""]
    rep = miss_report(kinds, ["car", "car", "car", "bus", "bus"], ["car", "bus"])
    assert rep["per_category"]["car"] == pytest.approx(
        {"count": 3, "missed": 2 / 3, "wrong_category": 1 / 3, "half_turn": 1 / 3, "other": 0.0})
    assert rep["overall"]["missed"] == pytest.approx(0.6) and rep["mean_over_categories"]["other"] == pytest.approx(0.25)


def test_elevation_bands_show_a_pull_to_the_middle():
    from vantage.train.metrics import elevation_report

    true = np.array([-15.0, -10.0, 5.0, 45.0, 55.0, 50.0])
    pred = np.array([-5.0, -4.0, 5.0, 39.0, 45.0, 10.0])  # hits pulled inwards; the last view is a miss
    err = np.array([10.0, 6.0, 2.0, 6.0, 10.0, 90.0])
    bands = elevation_report(true, pred, err)
    assert [(b["from"], b["count"], b["hits"]) for b in bands] == [(-20.0, 2, 2), (0.0, 1, 1), (40.0, 3, 2)]
    assert bands[0]["bias"] == pytest.approx(8.0) and bands[1]["bias"] == 0.0
    assert bands[2]["bias"] == pytest.approx(-8.0)  # the miss's -40° is left out of the bias
    assert bands[2]["med_err"] == pytest.approx(10.0)  # but not out of the error


def test_hypothesis_report_best_of_k_and_confidence_bands():
    from vantage.train.metrics import hypothesis_report

    err = np.array([[10.0, 170.0], [170.0, 12.0], [100.0, 120.0], [5.0, 90.0]])
    scores = np.array([[0.95, 0.05], [0.55, 0.40], [0.2, 0.1], [1.0, 0.0]])
    rep = hypothesis_report(err, scores)
    assert [b["acc_pi6"] for b in rep["best_of"]] == [0.5, 0.75]
    assert rep["best_of"][1]["med_err"] == pytest.approx(11.0)
    assert [(b["from"], b["count"], b["hit_rate"]) for b in rep["confidence"]] == [(0.0, 1, 0.0), (0.5, 1, 0.0),
                                                                                   (0.9, 2, 1.0)]
    assert rep["mean_scores"] == pytest.approx([0.675, 0.1375])
    per = hypothesis_report(err, scores, ["car", "car", "bus", "bus"], ["car", "bus"])["best_of_2"]["per_category"]
    assert per["car"]["acc_pi6"] == 1.0 and per["bus"]["acc_pi6"] == 0.5 and per["car"]["med_err"] == pytest.approx(11.0)


def test_bundle_and_checkpoint_report_the_same(trained):
    from vantage.train.evaluate import evaluate

    root, ckpt, bundle = trained
    a = evaluate(bundle, root / "test", root / "report")
    b = evaluate(ckpt, root / "test")
    assert a["overall"]["count"] == 9 and a["overall"]["med_err"] == pytest.approx(b["overall"]["med_err"], abs=0.05)
    assert a["overall"]["cat_acc"] == b["overall"]["cat_acc"]
    top = a["topk"]
    assert top["top1"]["cat_acc"] <= top["top2"]["cat_acc"] <= top["top3"]["cat_acc"] == 1.0
    assert top["top3"]["med_err"] <= top["top2"]["med_err"] <= top["top1"]["med_err"]
    assert np.array(a["confusion"]).sum() == 9

    out = root / "report"
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert len(rows) == 9 and {"pose_err", "oracle_err", "predicted", "azimuth"} <= set(rows[0])
    md = (out / "report.md").read_text()
    assert "| MedErr (°) |" in md and "| AAAI |" in md and "Table 13" in md
    assert "| metric | car | chair | bottle | mean | all |" in md  # categories are columns, as in the papers
    for png in ("errors_hist.png", "error_vs_azimuth.png", "elevation.png", "confusion.png", "misses.png",
                "confidence.png"):
        assert (out / png).stat().st_size > 2000
    assert "images" not in json.loads((out / "report.json").read_text())

    miss = a["misses"]["overall"]
    assert miss["missed"] == pytest.approx(1 - a["overall"]["acc_pi6"])
    assert miss["wrong_category"] + miss["half_turn"] + miss["other"] == pytest.approx(miss["missed"])
    assert sum(r["miss"] == "wrong_category" for r in rows) == round(miss["wrong_category"] * 9)
    assert "## Why views are missed" in md and "| … half turn (front/back) |" in md
    assert sum(b["count"] for b in a["elevation"]) == 9 and "## Error by elevation" in md
    best = [b["acc_pi6"] for b in a["hypotheses"]["best_of"]]
    assert best[0] == a["overall"]["acc_pi6"] and best == sorted(best) and len(best) == 4
    assert b["hypotheses"]["best_of"][0]["acc_pi6"] == b["overall"]["acc_pi6"]
    assert sum(c["count"] for c in a["hypotheses"]["confidence"]) == 9 and "## Pose hypotheses" in md
    assert a["hypotheses"]["best_of_2"]["overall"]["acc_pi6"] == a["hypotheses"]["best_of"][1]["acc_pi6"]
    # degrees: the answer's axis-angle and rotation outputs measure the same pose to float32's arccos resolution
    assert all(0 <= float(r["confidence"]) <= 1 + 1e-5 and float(r["best2_err"]) <= float(r["pose_err"]) + 0.1
               for r in rows)

    # built-in test meshes are always found: the errors their own symmetries explain are reported apart
    sym = a["symmetry"]
    assert sym["unresolved"] == 0 and set(sym["angles_deg"]) == {r["model_id"] for r in rows}
    assert len(sym["angles_deg"]["builtin/bottle/0050"]) > 20, "a procedural bottle is a solid of revolution"
    assert all(float(r["sym_err"]) <= float(r["pose_err"]) + 1e-6 for r in rows)
    assert sym["overall"]["med_err"] <= a["overall"]["med_err"]
    assert "## Symmetry-reduced error" in md and "| Acc@π/6 |" in md.split("## Symmetry-reduced error")[1]


def test_views_rendered_before_symmetries_were_recorded_fall_back_to_their_mesh(trained, tmp_path):
    from vantage.train.evaluate import evaluate

    root, ckpt, _ = trained
    shutil.copytree(root / "test", tmp_path / "old")
    manifest = tmp_path / "old" / "manifest.jsonl"
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "z_symmetry"}) + "\n" for r in records))
    recorded = {r["model_id"]: r["z_symmetry"]["angles"] for r in records}
    sym = evaluate(ckpt, tmp_path / "old")["symmetry"]  # built-in meshes: detected again from the mesh
    assert sym["unresolved"] == 0 and sym["angles_deg"] == recorded


def test_a_missing_mesh_folder_fails_before_the_model_runs(trained, tmp_path):
    from vantage.train.evaluate import evaluate
    from vantage.train.meshes import MeshError

    root, _, bundle = trained
    with pytest.raises(MeshError, match="model repository .*nowhere does not exist"):
        evaluate(bundle, root / "test", tmp_path / "out", models=tmp_path / "nowhere")
    assert not (tmp_path / "out").exists()


def test_eval_command_line(trained, tmp_path):
    root, _, bundle = trained
    res = subprocess.run([sys.executable, "-m", "vantage", "eval", "--model", str(bundle), "--data", str(root / "test"),
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "all images" in res.stdout and (tmp_path / "report.md").is_file()
    assert "symmetry-reduced" in res.stdout


def test_flip_averaged_bundle_is_benched_against_the_same_eager_computation(trained, tmp_path):
    """bench-export's eager row wraps the checkpoint like the bundle's graph (BundleMetadata.test_time)."""
    from vantage.export.bench import run_bench
    from vantage.export.onnx_export import export_bundle
    from vantage.train.evaluate import evaluate
    from vantage.train.test_time import FlipAveraged
    from vantage.train.trainer import load_model

    root, ckpt, _ = trained
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = export_bundle(FlipAveraged(load_model(ckpt)[0]), tmp_path / "flip")
    rows = {r["runtime"]: r for r in run_bench(bundle, [ckpt], root / "test", repeats=1)["rows"]}
    assert rows["onnxruntime fp32"]["agreement"]["rotation_max_deg"] < 0.05
    assert rows["onnxruntime fp32"]["agreement"]["category_agreement"] == 1.0
    assert evaluate(bundle, root / "test")["overall"]["count"] == 9
