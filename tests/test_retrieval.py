"""Pose from retrieved views (rotation averaging, the paper's 2-NN average, fusion), model ranking, PCA."""

from __future__ import annotations

import numpy as np
import pytest

from vantage.geometry import axis_angle_to_rotation, chordal_mean, geodesic_distance, viewpoint_to_rotation
from vantage.serve.retrieval import (
    WIREFRAMES_FILE,
    BundleIdentity,
    Projection,
    ViewHit,
    ViewIndex,
    ViewIndexError,
    camera_average_pose,
    fused_pose,
    knn_pose,
    rank_models,
)


def hit(rotation: np.ndarray, similarity: float, model: str = "m0", category: str = "car", label: int = 0) -> ViewHit:
    return ViewHit(label, similarity, model, category, 0.0, 0.0, 0.0, np.asarray(rotation, np.float64), "")


def perturb(base: np.ndarray, angle_deg: float, rng: np.random.Generator) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return axis_angle_to_rotation(axis * np.radians(angle_deg)) @ base


def test_chordal_mean_recovers_the_centre_of_symmetric_perturbations() -> None:
    base = viewpoint_to_rotation(37.0, 21.0, -8.0)
    # ± the same axis-angle around the base: the exact mean is the base
    rng = np.random.default_rng(0)
    rots = []
    for _ in range(5):
        v = rng.normal(size=3) * 0.3
        rots += [axis_angle_to_rotation(v) @ base, axis_angle_to_rotation(-v) @ base]
    mean = chordal_mean(np.stack(rots))
    assert geodesic_distance(mean, base) < 1e-6
    np.testing.assert_allclose(mean @ mean.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(mean) == pytest.approx(1.0)


def test_chordal_mean_weights_pull_towards_the_heavier_rotation() -> None:
    a, b = viewpoint_to_rotation(0.0, 10.0, 0.0), viewpoint_to_rotation(40.0, 10.0, 0.0)
    even = chordal_mean(np.stack([a, b]))
    heavy = chordal_mean(np.stack([a, b]), [3.0, 1.0])
    assert geodesic_distance(even, a) == pytest.approx(20.0, abs=1e-6)  # geodesic midpoint (same axis)
    assert geodesic_distance(heavy, a) < geodesic_distance(heavy, b)
    with pytest.raises(ValueError):
        chordal_mean(np.stack([a, b]), [0.0, 0.0])


def test_knn_pose_averages_the_agreeing_cluster_and_ignores_the_flipped_one() -> None:
    rng = np.random.default_rng(1)
    truth = viewpoint_to_rotation(120.0, 15.0, 5.0)
    flipped = viewpoint_to_rotation(300.0, 15.0, 5.0)  # the back/front confusion, 180° around z
    hits = [hit(flipped, 0.90), hit(perturb(truth, 8.0, rng), 0.89), hit(perturb(truth, 8.0, rng), 0.88),
            hit(perturb(truth, 8.0, rng), 0.87), hit(perturb(flipped, 5.0, rng), 0.86)]
    pose = knn_pose(hits, k=5, agree_deg=30.0)
    assert pose.count == 3
    assert pose.support == pytest.approx((0.89 + 0.88 + 0.87) / sum(h.similarity for h in hits))
    assert geodesic_distance(pose.rotation, truth) < 8.0
    assert geodesic_distance(hits[0].rotation, truth) > 170.0  # the nearest view alone is wrong


def test_paper_two_nn_average_is_the_mean_camera_and_fails_on_opposite_views() -> None:
    near = [hit(viewpoint_to_rotation(0.0, 0.0, 0.0), 0.9), hit(viewpoint_to_rotation(40.0, 0.0, 0.0), 0.8)]
    pose = camera_average_pose(near, 2)
    assert geodesic_distance(pose.rotation, viewpoint_to_rotation(20.0, 0.0, 0.0)) < 1e-6
    # front + back neighbours: the averaged camera position is nowhere near either view
    opposite = [hit(viewpoint_to_rotation(10.0, 20.0, 0.0), 0.9), hit(viewpoint_to_rotation(190.0, 20.0, 0.0), 0.8)]
    averaged = camera_average_pose(opposite, 2).rotation
    assert min(geodesic_distance(averaged, h.rotation) for h in opposite) > 60.0


def test_fused_pose_refines_the_network_with_agreeing_views() -> None:
    truth = viewpoint_to_rotation(80.0, 10.0, 0.0)
    network = viewpoint_to_rotation(95.0, 10.0, 0.0)  # 15° off
    hits = [hit(viewpoint_to_rotation(260.0, 10.0, 0.0), 0.95), hit(truth, 0.9), hit(truth, 0.85)]
    pose = fused_pose(network, hits, k=3, agree_deg=30.0, network_weight=0.5)
    assert pose.method == "fused-refined" and pose.count == 2
    assert geodesic_distance(pose.rotation, truth) == pytest.approx(7.5, abs=0.01)  # halfway on the same axis


def test_fused_pose_falls_back_to_agreeing_neighbours_or_to_the_network() -> None:
    network = viewpoint_to_rotation(0.0, 0.0, 0.0)
    far = viewpoint_to_rotation(150.0, 30.0, 0.0)
    agreeing = [hit(far, 0.9), hit(far, 0.9), hit(viewpoint_to_rotation(155.0, 30.0, 0.0), 0.8)]
    pose = fused_pose(network, agreeing, k=3, min_support=0.5)
    assert pose.method == "fused-neighbours" and geodesic_distance(pose.rotation, far) < 5.0
    scattered = [hit(viewpoint_to_rotation(a, 0.0, 0.0), 0.9) for a in (90.0, 180.0, 270.0)]
    pose = fused_pose(network, scattered, k=3, min_support=0.5)
    assert pose.method == "fused-network" and geodesic_distance(pose.rotation, network) < 1e-9
    assert fused_pose(network, [], k=3).method == "fused-network"


def test_rank_models_best_view_and_vote() -> None:
    r = np.eye(3)
    hits = [hit(r, 0.9, "a", label=0), hit(r, 0.8, "b", label=1), hit(r, 0.79, "b", label=2), hit(r, 0.5, "c", label=3)]
    best = rank_models(hits, "best")
    assert [m.model_id for m in best] == ["a", "b", "c"] and best[1].views == 2 and best[1].best_view.label == 1
    vote = rank_models(hits, "vote")
    assert [m.model_id for m in vote] == ["b", "a", "c"] and vote[0].score == pytest.approx(1.59)
    with pytest.raises(ValueError):
        rank_models(hits, "median")


def test_pca_projection_is_orthonormal_ordered_and_normalised() -> None:
    rng = np.random.default_rng(2)
    # data with a clear 3-d structure inside 20 dimensions
    basis = np.linalg.qr(rng.normal(size=(20, 3)))[0].T
    x = (rng.normal(size=(400, 3)) * [5.0, 3.0, 1.0]) @ basis + rng.normal(size=(400, 20)) * 0.01
    proj = Projection.fit_pca(x, 3)
    np.testing.assert_allclose(proj.components @ proj.components.T, np.eye(3), atol=1e-5)
    assert abs(proj.components[0] @ basis[0]) > 0.999  # first component = largest-variance direction
    assert proj.explained_variance > 0.99
    y = proj(x[:5])
    assert y.shape == (5, 3) and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-6)
    assert proj.describe() == {"kind": "pca", "dim": 3, "source_dim": 20, "centred": True, "normalisation": "l2",
                               "explained_variance": pytest.approx(proj.explained_variance, abs=1e-6)}
    with pytest.raises(ValueError, match="expects 20"):
        proj(np.zeros((1, 21)))
    with pytest.raises(ValueError, match="PCA dimension"):
        Projection.fit_pca(x[:2], 3)


def test_the_api_adds_retrieve_and_high_numbered_retrieval_fields() -> None:
    """Retrieval only adds to vantage.v1; fields added to existing messages are numbered ≥ 20."""
    from vantage.v1 import vantage_pb2

    service = vantage_pb2.DESCRIPTOR.services_by_name["PoseEstimator"]
    retrieve = service.methods_by_name["Retrieve"]
    assert (retrieve.input_type.name, retrieve.output_type.name) == ("RetrieveRequest", "RetrieveResponse")
    assert not retrieve.client_streaming and not retrieve.server_streaming
    for message, name in (("EstimateRequest", "top_k"), ("EstimateRequest", "wireframe_models"),
                          ("EstimateResponse", "retrieval"), ("ModelInfo", "view_index")):
        assert vantage_pb2.DESCRIPTOR.message_types_by_name[message].fields_by_name[name].number >= 20
    assert vantage_pb2.EstimateRequest().top_k == 0  # retrieval is off by default
    assert vantage_pb2.RetrieveRequest().wireframe_models == 0  # and so are wireframes
    view_fields = set(vantage_pb2.RetrievedView.DESCRIPTOR.fields_by_name)
    assert {"model_id", "category", "viewpoint", "rotation", "similarity"} <= view_fields


def test_index_config_refuses_descriptors_above_512_dimensions_before_any_rendering() -> None:
    from vantage.train.indexing import IndexConfig

    assert IndexConfig(pca_dim=512).pca_dim == 512 and IndexConfig(pca_dim=0).pca_dim == 0
    with pytest.raises(ValueError, match=r"pca_dim must be in \[0, 512\]"):
        IndexConfig(pca_dim=768)
    with pytest.raises(ValueError, match="backgrounds"):
        IndexConfig(backgrounds=0)


def small_index(dim: int = 4) -> ViewIndex:
    """An empty raw-descriptor index of a made-up bundle, for tests that need no network."""
    return ViewIndex.create(Projection(dim), BundleIdentity("fake", "1", "0" * 64, dim))


def views(model: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    rows = [{"model_id": model, "category": "car", "azimuth": 30.0 * i, "elevation": 10.0, "theta": 0.0}
            for i in range(n)]
    return rng.normal(size=(n, 4)).astype(np.float32), rows


def test_wireframes_survive_save_load_and_add(tmp_path) -> None:
    rng = np.random.default_rng(3)
    wire_a = rng.uniform(-1, 1, (7, 2, 3)).astype(np.float32)
    wire_b = rng.uniform(-1, 1, (3, 2, 3))
    index = small_index()
    index.add(*views("a", 2, rng), {"a": wire_a})
    index.save(tmp_path)
    loaded = ViewIndex.load(tmp_path, None)
    np.testing.assert_array_equal(loaded.wireframe("a"), wire_a)
    assert loaded.describe()["wireframes"] == 1
    loaded.add(*views("b", 1, rng), {"b": wire_b})  # an incremental add keeps the old ones
    loaded.save(tmp_path)
    again = ViewIndex.load(tmp_path, None)
    np.testing.assert_array_equal(again.wireframe("a"), wire_a)
    np.testing.assert_allclose(again.wireframe("b"), wire_b, rtol=1e-6)
    assert again.wireframe("b").dtype == np.float32 and again.wireframe("c") is None
    with pytest.raises(ValueError, match="wireframe of 'c'"):  # not indexed, nor added with these rows
        again.add(*views("d", 1, rng), {"c": wire_b})
    assert len(again) == 3 and again.model_ids == ["a", "b"]  # refused before anything changed


def test_indexes_without_wireframes_load_and_saves_drop_stale_files(tmp_path) -> None:
    rng = np.random.default_rng(4)
    index = small_index()
    index.add(*views("a", 2, rng), {"a": np.zeros((1, 2, 3))})
    index.save(tmp_path)
    (tmp_path / WIREFRAMES_FILE).unlink()  # as saved before wireframes existed
    old = ViewIndex.load(tmp_path, None)
    assert old.wireframe("a") is None and old.describe()["wireframes"] == 0
    bare = small_index()
    bare.add(*views("z", 1, rng))
    index.save(tmp_path)
    bare.save(tmp_path)  # another index over the same folder: its wireframes must not stay
    assert not (tmp_path / WIREFRAMES_FILE).exists()
    np.savez(tmp_path / WIREFRAMES_FILE, model_ids=np.array(["q"]), counts=np.array([1]), segments=np.zeros((1, 2, 3)))
    with pytest.raises(ViewIndexError, match="does not match the index"):
        ViewIndex.load(tmp_path, None)
