"""Pose confidence and alternative poses through a real gRPC server, the in-process path and older bundles."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

from serve_fixtures import edited_bundle, make_test_image
from vantage.bundle import BundleError
from vantage.geometry import geodesic_distance
from vantage.serve.client import PoseClient
from vantage.serve.config import ServerConfig
from vantage.serve.engine import Predictor
from vantage.serve.predict import predict_files
from vantage.serve.protocol import make_request
from vantage.serve.server import start_server

CATEGORIES = ["car", "chair", "bottle"]


@pytest.fixture(scope="module")
def bin_bundle(tmp_path_factory) -> Path:
    """A random-weight Bin & Delta (M_P+) bundle: its bin distributions are spread, so it has alternatives."""
    import torch

    from vantage.export.onnx_export import export_bundle
    from vantage.train.model import JointPoseNet, ModelConfig

    torch.manual_seed(0)
    model = JointPoseNet(ModelConfig(categories=CATEGORIES, input_size=64, head_hidden=(32, 16), pretrained=False,
                                     head="bd_p", num_bins=8, per_bin_delta=True))
    model.set_key_poses(np.random.default_rng(0).normal(size=(8, 3)) * 0.8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_bundle(model.eval(), tmp_path_factory.mktemp("bins") / "b", model_version="bins-1")


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return [make_test_image(96, 80, seed=s) for s in range(4)]


@pytest.fixture(scope="module")
def served(bin_bundle):
    running = start_server(Predictor(bin_bundle, intra_op_threads=1), ServerConfig(port=0, workers=2))
    with PoseClient(f"127.0.0.1:{running.port}", timeout=10.0) as client:
        client.wait_ready(timeout=10.0)
        yield client
    running.stop(grace=1.0)


def _rotations(alternatives) -> np.ndarray:
    return np.array([np.asarray(a.rotation, np.float64).reshape(3, 3) for a in alternatives])


def test_server_sends_the_confidence_and_as_many_alternatives_as_asked(served, bin_bundle, images):
    assert served.model_info().pose_hypotheses == 4 and served.model_info().confidence_within_deg == 0, "raw scores"
    local = Predictor(bin_bundle)
    for image in images:
        none = served.estimate(image)
        assert none.HasField("pose_confidence") and 0 < none.pose_confidence <= 1 + 1e-6 and not none.alternatives
        two = served.estimate(image, alternatives=2)
        every = served.estimate(image, alternatives=10)  # more than the model has: all it has
        assert 1 <= len(two.alternatives) <= 2 and len(every.alternatives) <= 3
        assert [a.score for a in two.alternatives] == [a.score for a in every.alternatives[:2]]
        scores = [a.score for a in every.alternatives]
        assert all(s > 0 for s in scores) and scores == sorted(scores, reverse=True)
        assert every.pose_confidence + sum(scores) <= 1 + 1e-5, "shares of one probability mass"
        rot = _rotations(every.alternatives)
        np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-5)
        answer = np.asarray(every.rotation, np.float64).reshape(3, 3)
        assert geodesic_distance(rot, answer).min() > 20.0, "an alternative is another pose, not the answer again"

        mine = local.predict_bytes(image)  # the in-process path computes the same hypotheses
        assert mine.pose_confidence == pytest.approx(every.pose_confidence, abs=1e-5)
        assert geodesic_distance(np.array([a.rotation for a in mine.alternatives]), rot).max() < 0.05
        for alt, sent in zip(mine.alternatives, every.alternatives):
            assert sent.viewpoint.azimuth == pytest.approx(alt.viewpoint["azimuth"], abs=0.05)


def test_predict_files_prints_alternatives_on_both_paths(bin_bundle, served, images, tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(images[0])
    (row,) = predict_files([path], model=bin_bundle, alternatives=1)
    assert 0 < row["pose_confidence"] <= 1 and len(row["alternatives"]) == 1
    alt = row["alternatives"][0]
    assert set(alt) == {"score", "rotation", "quaternion", "viewpoint"} and 0 < alt["score"] <= 1
    assert "alternatives" not in predict_files([path], model=bin_bundle)[0]
    with pytest.raises(ValueError, match="alternatives must be 0 or more"):
        predict_files([path], model=bin_bundle, alternatives=-1)
    with pytest.raises(ValueError, match="alternatives must be 0 or more"):
        make_request(images[0], alternatives=-2)


def _older_bundle(bundle: Path, out: Path) -> Path:
    """The bundle as exported before pose hypotheses: no such outputs, metadata without them."""
    shutil.copytree(bundle, out)
    proto = onnx.load(str(out / "model.onnx"))
    keep = [o for o in proto.graph.output if o.name not in ("pose_hypotheses", "hypothesis_scores")]
    del proto.graph.output[:]
    proto.graph.output.extend(keep)
    onnx.save(proto, str(out / "model.onnx"))
    meta = json.loads((out / "vantage.json").read_text())
    meta.pop("pose_hypotheses")
    meta["output_names"] = [o.name for o in keep]
    (out / "vantage.json").write_text(json.dumps(meta))
    return out


def test_a_bundle_exported_before_hypotheses_still_serves(bin_bundle, images, tmp_path):
    older = _older_bundle(bin_bundle, tmp_path / "older")
    running = start_server(Predictor(older, intra_op_threads=1), ServerConfig(port=0, workers=1))
    try:
        with PoseClient(f"127.0.0.1:{running.port}", timeout=10.0) as client:
            client.wait_ready(timeout=10.0)
            response = client.estimate(images[0], alternatives=3)
            assert len(response.rotation) == 9 and not response.HasField("pose_confidence")
            assert not response.alternatives and client.model_info().pose_hypotheses == 0
    finally:
        running.stop(grace=1.0)
    assert "pose_confidence" not in predict_files([_write(tmp_path, images[0])], model=older, alternatives=2)[0]


def _write(folder: Path, data: bytes) -> Path:
    path = folder / "x.jpg"
    path.write_bytes(data)
    return path


def test_metadata_claiming_other_hypotheses_than_the_graph_is_refused(bin_bundle, tmp_path):
    bundle = edited_bundle(bin_bundle, tmp_path / "claims", pose_hypotheses=5)
    with pytest.raises(BundleError, match="output 'pose_hypotheses' has shape"):
        Predictor(bundle)


def test_measuring_runs_a_bundle_from_before_hypotheses(bin_bundle, tmp_path):
    from vantage.bundle import BASE_OUTPUT_NAMES, OUTPUT_NAMES
    from vantage.export.measure import ort_runner, run_batched

    images = np.random.default_rng(0).normal(size=(5, 3, 64, 64)).astype(np.float32)
    hints = np.zeros((5, len(CATEGORIES)), np.float32)
    older = run_batched(ort_runner(_older_bundle(bin_bundle, tmp_path / "o") / "model.onnx"), images, hints, batch=2)
    newer = run_batched(ort_runner(bin_bundle / "model.onnx"), images, hints, batch=2)
    assert list(older) == list(BASE_OUTPUT_NAMES) and list(newer) == list(OUTPUT_NAMES)
    np.testing.assert_array_equal(older["rotation"], newer["rotation"])
    assert newer["pose_hypotheses"].shape == (5, 4, 3)


def test_cli_predict_prints_the_confidence_and_the_alternatives(bin_bundle, images, tmp_path, capsys):
    from vantage.cli import main

    path = _write(tmp_path, images[1])
    assert main(["predict", str(path), "--model", str(bin_bundle), "--alternatives", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "pose confidence" in lines[0] and 1 <= len(lines) - 1 <= 2
    assert all(line.lstrip().startswith("or azimuth") and "(score " in line for line in lines[1:])
