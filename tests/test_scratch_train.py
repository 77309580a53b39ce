"""Training path of the image-graphics paper's from-scratch CNN, its ablation row and its RESULTS.md table."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vantage.categories import CATEGORIES
from vantage.geometry import vector_angle
from vantage.train.ablation import SCRATCH, SCRATCH_QUESTION, run_scratch
from vantage.train.data import AugmentConfig, read_samples
from vantage.train.results_doc import build
from vantage.train.scratch_train import (
    ScratchConfig, camera_targets, evaluate_scratch, load_scratch, main, train_scratch,
)
from vantage.train.trainer import TrainConfig

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "scratch_cnn.yaml"
NO_AUGMENT = AugmentConfig(box_jitter=0.0, colour_jitter=0.0, noise_prob=0.0, blur_prob=0.0, jpeg_prob=0.0)


def test_training_fits_a_tiny_render_set_and_evaluation_reports_camera_errors(small_renders, tmp_path):
    cfg = ScratchConfig(data=[str(small_renders)], out=str(tmp_path / "run"), input_size=32, hidden=64, dropout=0.0,
                        epochs=30, batch_size=8, lr=1e-3, augment=NO_AUGMENT, progress=False, threads=1)
    ckpt = train_scratch(cfg)
    _, loaded, history = load_scratch(ckpt)  # torch.load(weights_only=True)
    assert loaded == cfg and len(history) == 30
    assert history[-1]["loss"] < 0.5 * history[0]["loss"], "the squared camera loss falls"

    report = evaluate_scratch(ckpt, small_renders, tmp_path / "eval")
    assert set(report) >= {"overall", "mean_over_categories", "per_category", "cam_errors_deg"}
    assert set(report["per_category"]) == set(CATEGORIES) and report["overall"]["count"] == 24
    for m in [report["overall"], report["mean_over_categories"], *report["per_category"].values()]:
        assert 0.0 <= m["cam_err"] <= 180.0 and 0.0 <= m["cam_acc_pi6"] <= 1.0
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["overall"] == report["overall"]
    # the training views are fitted, far below the constant mean-direction guess (POSE.md C/d targets line up)
    truth = camera_targets(read_samples(small_renders, list(CATEGORIES)))
    constant = np.median(vector_angle(truth, truth.mean(0)))
    assert report["overall"]["cam_err"] < 30.0 < constant

    assert train_scratch(cfg) == ckpt and len(load_scratch(ckpt)[2]) == 30, "a finished run resumes as done"
    cfg.lr = 2e-3
    with pytest.raises(ValueError, match="another configuration"):
        train_scratch(cfg)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(small_renders, tmp_path):
    def run(name: str, stop_after: int | None) -> dict:
        cfg = ScratchConfig(data=[str(small_renders)], out=str(tmp_path / name), input_size=32, hidden=32, epochs=2,
                            batch_size=8, progress=False, threads=1)
        return torch.load(train_scratch(cfg, stop_after=stop_after), weights_only=True)

    assert run("split", 1)["epoch"] == 0
    split, whole = run("split", None), run("whole", None)
    assert split["history"] == whole["history"]
    assert all(torch.equal(v, whole["model"][k]) for k, v in split["model"].items())


def test_ablation_row_and_results_table(small_renders, tmp_path):
    results = tmp_path / "ablation"
    s = run_scratch([str(small_renders)], str(small_renders), tmp_path, epochs=1, results=results)
    assert s["name"] == SCRATCH and s["question"] == SCRATCH_QUESTION and "cam_acc_pi6" in s["mean_over_categories"]
    assert json.loads((results / "scratch_CNN.json").read_text())["overall"] == s["overall"]
    metrics = {"count": 360, "med_err": 67.7, "acc_pi6": 0.24, "p_22_5": 0.15, "p_45": 0.36, "aaai": 0.54,
               "cat_acc": 0.7, "cam_err": 65.4}  # a stored transfer row from before cam_acc_pi6 was recorded
    transfer = {"name": "M_G+", "question": "head", "train_seconds": 158.0, "overall": metrics,
                "mean_over_categories": metrics, "per_category": {},
                "config": TrainConfig(data=["cad_train"], out="", epochs=8).to_dict()}
    (results / "M_G+.json").write_text(json.dumps(transfer))

    md = build(results)
    head_table, comparison = md.split(f"### {SCRATCH_QUESTION}")
    assert "| M_G+ | 67.7 |" in head_table and SCRATCH not in head_table
    rows = {line.split(" | ")[0]: line for line in comparison.splitlines() if line.startswith("| ")}
    o, m = s["overall"], s["mean_over_categories"]
    assert rows[f"| {SCRATCH}"].startswith(
        f"| {SCRATCH} | from scratch, end to end (64², 1 epochs) | {m['cam_err']:.1f} | {m['cam_acc_pi6']:.3f} | "
        f"{o['cam_err']:.1f} | — | — |")
    assert "| 65.4 | n/r | 65.4 | 67.7 | 0.700 | 158 |" in rows["| M_G+"]


def test_command_line_with_the_shipped_config(small_renders, tmp_path, capsys):
    run = tmp_path / "run"
    main(["--config", str(CONFIG), "--data", str(small_renders), "--out", str(run), "--epochs", "1",
          "--test", str(small_renders)])
    saved = json.loads((run / "config.json").read_text())
    assert (saved["batch_size"], saved["dropout"], saved["input_size"], saved["epochs"]) == (50, 0.5, 64, 1)
    assert (run / "eval" / "report.json").is_file() and "all images" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochz: 1\n")
    with pytest.raises(ValueError, match="unknown ScratchConfig fields"):
        main(["--config", str(bad), "--data", "d", "--out", str(run)])
