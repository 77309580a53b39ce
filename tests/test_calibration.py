"""Pose confidence calibration: the fit, the bundle field, the server's answers and `vantage calibrate`."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from serve_fixtures import edited_bundle, make_test_image
from vantage.bundle import BundleError, load_metadata
from vantage.calibration import CalibrationError, ConfidenceCalibration, calibration_error, fit_calibration
from vantage.serve.client import PoseClient
from vantage.serve.config import ServerConfig
from vantage.serve.engine import Predictor
from vantage.serve.server import start_server

CATS = ["car", "chair", "bottle"]


def _logistic_views(maps: list[tuple[float, float]], n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, len(maps)) scores whose hits in column j follow σ(slope_j · logit(score) + bias_j), as errors in
    degrees (10° = hit, 90° = miss)."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.02, 0.98, size=(n, len(maps)))
    slope, bias = np.array(maps).T
    p = 1 / (1 + np.exp(-(slope * np.log(scores / (1 - scores)) + bias)))
    return scores, np.where(rng.random(scores.shape) < p, 10.0, 90.0)


def test_fit_recovers_the_maps_that_made_the_hits_and_lowers_the_calibration_error():
    scores, errors = _logistic_views([(0.4, -0.7), (0.3, -1.0), (0.3, -1.0)], 4000)
    scores[::3, 2] = 0.0  # alternatives without mass are never shown, so they are left out of the fit
    cal = fit_calibration(scores, errors, source="synthetic")
    assert cal.answer == pytest.approx((0.4, -0.7), abs=0.08)
    assert cal.alternatives == pytest.approx((0.3, -1.0), abs=0.08)
    assert cal.views == 4000 and cal.within_deg == 30.0 and cal.source == "synthetic"
    hits, shown = errors < 30, scores > 0
    calibrated = cal.apply(scores)
    assert calibration_error(calibrated[shown], hits[shown]) < 0.03 < calibration_error(scores[shown], hits[shown])
    # monotone: the ranking (and so the answer) never changes; no mass stays no mass
    grid = np.repeat(np.linspace(0, 1, 101)[:, None], 2, 1)
    out = cal.apply(grid)
    assert np.all(out[0] == 0) and np.all(np.diff(out[1:], axis=0) > 0) and out.dtype == np.float32
    assert ConfidenceCalibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    # answers only (or too few alternatives with mass): the alternatives share the answers' map
    alone = fit_calibration(scores[:, :1], errors[:, :1])
    assert alone.alternatives == alone.answer == pytest.approx(cal.answer)


def test_fit_refuses_what_cannot_be_a_calibration():
    scores, errors = _logistic_views([(-1.0, 0.0), (0.5, 0.0)], 500)  # higher-scored answers miss more
    with pytest.raises(CalibrationError, match="answers do not rank their hits"):
        fit_calibration(scores, errors)
    with pytest.raises(CalibrationError, match="at least 20 labelled views"):
        fit_calibration(scores[:5], errors[:5])
    with pytest.raises(CalibrationError, match=r"must both be \(N, H\)"):
        fit_calibration(scores, errors[:, :1])
    with pytest.raises(CalibrationError, match="slope of the answer must be > 0"):
        ConfidenceCalibration(answer=(0.0, 1.0), alternatives=(0.5, 0.0))
    with pytest.raises(CalibrationError, match=r"within_deg must be in \(0, 180\]"):
        fit_calibration(scores, errors, within_deg=0.0)
    with pytest.raises(CalibrationError, match=r"must be \(N, H\)"):
        ConfidenceCalibration(answer=(0.5, 1.0), alternatives=(0.5, 0.0)).apply(np.ones(3))


def _relabelled_by_score(bundle: Path, views: Path, out: Path) -> Path:
    """The views labelled from the bundle's own hypotheses: 10° off the answer where its score is above the
    median, else 10° off the first alternative (which then holds more of the mass), so that the scores rank
    the hits by construction. A model trained for seconds ranks nothing, and
    these tests are of the plumbing (real bundle, ORT, manifest, server); the fit itself is tested above
    on hits drawn from a known map."""
    from vantage.geometry import axis_angle_to_rotation
    from vantage.train.evaluate import bundle_runner

    categories, samples, run = bundle_runner(bundle, views, calibrated=False)
    fused = run(np.zeros((len(samples), len(categories)), np.float32))
    poses = axis_angle_to_rotation(np.asarray(fused["pose_hypotheses"], np.float64))
    score = fused["hypothesis_scores"][:, 0]
    chosen = poses[np.arange(len(poses)), np.where(score >= np.median(score), 0, 1)]
    truth = chosen @ axis_angle_to_rotation(np.array([np.radians(10.0), 0.0, 0.0]))
    shutil.copytree(views, out)
    rows = [json.loads(line) for line in (views / "manifest.jsonl").read_text().splitlines() if line.strip()]
    assert len(rows) == len(truth)
    for row, rot in zip(rows, truth):
        row["rotation"] = rot.ravel().tolist()
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A small trained Bin & Delta bundle (it has pose hypotheses) and views labelled so its scores rank hits."""
    from vantage.export.onnx_export import export_bundle
    from vantage.train.meshes import builtin_specs
    from vantage.train.render import RenderConfig, render_dataset
    from vantage.train.trainer import TrainConfig, load_model, train

    root = tmp_path_factory.mktemp("calibrate")
    render_dataset(builtin_specs(1, categories=CATS), root / "train", RenderConfig(views_per_model=8, seed=3),
                   workers=1, progress=False)
    render_dataset(builtin_specs(2, categories=CATS, first_seed=50), root / "test",
                   RenderConfig(views_per_model=5, seed=4), workers=1, progress=False)
    cfg = TrainConfig(data=[str(root / "train")], out=str(root / "run"), epochs=2, batch_size=16, augmented_copies=0,
                      progress=False)
    cfg.model.categories, cfg.model.input_size, cfg.model.head = list(CATS), 64, "bd_p"
    cfg.model.num_bins, cfg.model.head_hidden, cfg.model.per_bin_delta = 4, (32, 16), True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = export_bundle(load_model(train(cfg))[0], root / "bundle")
    return root, bundle, _relabelled_by_score(bundle, root / "test", root / "labelled")


def test_calibrate_cross_fits_into_another_bundle_and_eval_reports_its_scores(labelled, tmp_path):
    from vantage.train.calibrate import calibrate, raw_hypotheses
    from vantage.train.evaluate import evaluate

    _, bundle, views = labelled
    target = tmp_path / "target"
    shutil.copytree(bundle, target)
    graph = (target / "model.onnx").read_bytes()
    raw_scores, errors = raw_hypotheses(bundle, views)
    assert raw_scores.shape == errors.shape == (30, 4)
    report = calibrate([(bundle, views)], into=[target], within_deg=45.0, out=tmp_path / "plots")
    assert report["into"] == [str(target)] and (tmp_path / "plots" / "reliability.png").stat().st_size > 2000
    assert load_metadata(bundle).calibration() is None, "only --into bundles are written"
    assert (target / "model.onnx").read_bytes() == graph, "the graph (and view indexes tied to it) stays as exported"
    cal = load_metadata(target).calibration()
    assert cal is not None and cal.within_deg == 45.0 and cal.views == 30 and str(views) in cal.source
    # in-sample, Platt scaling cannot be worse calibrated than the raw scores on the answers it fitted
    shown = raw_scores > 0
    assert report["ece_all"]["calibrated"] <= report["ece_all"]["raw"] + 1e-9
    assert report["ece_all"]["raw"] == pytest.approx(calibration_error(raw_scores[shown], errors[shown] < 45))

    calibrated = evaluate(target, views)["hypotheses"]
    raw = evaluate(bundle, views)["hypotheses"]
    assert calibrated["calibration"] == cal.to_dict() and raw["calibration"] == {}
    assert calibrated["mean_scores"][0] == pytest.approx(float(cal.apply(raw_scores)[:, 0].mean()), abs=1e-6)
    assert calibrated["best_of"] == raw["best_of"], "calibration changes scores, never poses or their order"


def test_calibrate_command_line_checks_its_arguments_before_running(labelled, tmp_path, capsys):
    from vantage.cli import main

    _, bundle, views = labelled
    with pytest.raises(SystemExit, match="one --data per --model"):
        main(["calibrate", "--model", str(bundle), "--model", str(bundle), "--data", str(views)])
    with pytest.raises(CalibrationError, match="within_deg must be in"):
        main(["calibrate", "--model", str(bundle), "--data", str(views), "--within", "200"])
    older = edited_bundle(bundle, tmp_path / "older", pose_hypotheses=0)
    with pytest.raises(CalibrationError, match="no pose hypotheses"):
        main(["calibrate", "--model", str(bundle), "--data", str(views), "--into", str(older)])
    target = tmp_path / "copy"
    shutil.copytree(bundle, target)
    assert main(["calibrate", "--model", str(target), "--data", str(views)]) == 0
    out = capsys.readouterr().out
    assert "fitted on 30 views" in out and "expected calibration error of answers" in out
    assert load_metadata(target).calibration() is not None


def test_bundle_refuses_a_bad_calibration(labelled, tmp_path):
    _, bundle, _ = labelled
    for bad, message in (({"answer": [-0.5, 0.0], "alternatives": [0.5, 0.0]}, "slope of the answer must be > 0"),
                         ({"answer": [0.5, 0.0]}, "alternatives"), ({"answer": [0.5], "alternatives": [0.5, 0.0]},
                                                                   r"must be \(slope, bias\)"),
                         ({"answer": ["steep", 0.0], "alternatives": [0.5, 0.0]}, "could not convert")):
        copy = edited_bundle(bundle, tmp_path / f"bad{len(list(tmp_path.iterdir()))}", confidence_calibration=bad)
        with pytest.raises(BundleError, match=message):
            load_metadata(copy)


def test_server_reports_calibrated_confidence(labelled, tmp_path):
    _, bundle, _ = labelled
    cal = ConfidenceCalibration(answer=(0.5, -1.0), alternatives=(0.4, -0.8), within_deg=30.0, views=100,
                                source="test")
    calibrated = edited_bundle(bundle, tmp_path / "calibrated", confidence_calibration=cal.to_dict())
    image = make_test_image(96, 80, seed=1)
    raw = Predictor(bundle).predict_bytes(image)
    running = start_server(Predictor(calibrated, intra_op_threads=1), ServerConfig(port=0, workers=1))
    try:
        with PoseClient(f"127.0.0.1:{running.port}", timeout=10.0) as client:
            client.wait_ready(timeout=10.0)
            info = client.model_info()
            assert info.confidence_within_deg == 30.0 and "confidence_calibration" in info.metadata_json
            got = client.estimate(image, alternatives=3)
    finally:
        running.stop(grace=1.0)
    expected = cal.apply(np.array([[raw.pose_confidence] + [a.score for a in raw.alternatives]]))[0]
    assert len(expected) > 1, "the bundle has alternatives to calibrate"
    assert got.pose_confidence == pytest.approx(float(expected[0]), abs=1e-5)
    assert [a.score for a in got.alternatives] == pytest.approx(expected[1:].tolist(), abs=1e-5)
    np.testing.assert_allclose(got.rotation, np.ravel(raw.rotation), atol=1e-6)
