"""View index end to end: real renders, the real exported graph through ONNX Runtime, real hnswlib,
a real gRPC server on loopback (Retrieve, Estimate.top_k) and the `vantage index` command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from serve_fixtures import make_test_image
from vantage.cli import main as cli_main
from vantage.geometry import camera_matrix, geodesic_distance, ray_rotation
from vantage.serve.client import PoseClient
from vantage.serve.engine import Predictor
from vantage.serve.protocol import make_request
from vantage.serve.retrieval import (
    INDEX_DIR_NAME,
    WIREFRAMES_FILE,
    BundleIdentity,
    CategoryNotIndexedError,
    IndexMismatchError,
    ViewIndex,
)
from vantage.serve.config import ServerConfig
from vantage.serve.server import start_server
from vantage.train.indexing import IndexConfig, RenderPlan, add_models, build_index, embed, render_models
from vantage.train.meshes import builtin_specs
from vantage.train.render import RenderConfig
from vantage.train.wireframes import wireframe
from vantage.v1 import vantage_pb2

SPECS = builtin_specs(1, categories=["car", "chair", "sofa"])
CONFIG = IndexConfig(subdivisions=2, backgrounds=1, pca_dim=32, thumbnail_size=32, seed=3)


@pytest.fixture(scope="module")
def bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny bundle with a view index of three built-in models in BUNDLE/index."""
    root = tmp_path_factory.mktemp("indexed") / "bundle"
    shutil.copytree(tiny_bundle, root)
    build_index(root, SPECS, root / INDEX_DIR_NAME, CONFIG, workers=0, threads=1, progress=False)
    return root


@pytest.fixture(scope="module")
def index(bundle: Path) -> ViewIndex:
    return ViewIndex.load(bundle / INDEX_DIR_NAME, BundleIdentity.of(bundle))


@pytest.fixture(scope="module")
def first_model_views():
    """The first model's index views rendered again (same seeds: the same pixels as indexed)."""
    plan = RenderPlan(CONFIG.render_config(), None, CONFIG.tilts, CONFIG.backgrounds)
    return next(render_models(SPECS[:1], plan, workers=0))


@pytest.fixture(scope="module")
def first_embeddings(bundle: Path, first_model_views) -> np.ndarray:
    return embed(Predictor(bundle, intra_op_threads=1), first_model_views)[0]


def png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image[:, :, ::-1])
    assert ok
    return buf.tobytes()


def other_bundle(bundle: Path, dest: Path) -> Path:
    """The same network saved again with one more metadata entry: a valid graph with another sha256."""
    import onnx

    shutil.copytree(bundle, dest, ignore=shutil.ignore_patterns(INDEX_DIR_NAME))
    model = onnx.load(str(dest / "model.onnx"))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, "rebuilt": "yes"})
    onnx.save(model, str(dest / "model.onnx"))
    return dest


# -- the index -----------------------------------------------------------------------


def test_saved_index_records_its_parameters_and_loads_back(bundle: Path, index: ViewIndex) -> None:
    info = json.loads((bundle / INDEX_DIR_NAME / "index.json").read_text())
    assert info["hnsw"] == {"M": 16, "ef_construction": 200, "ef": 64} and info["space"] == "ip"
    assert info["descriptor"]["kind"] == "pca" and info["descriptor"]["dim"] == 32
    assert info["descriptor"]["normalisation"] == "l2" and info["descriptor"]["source_dim"] == 768
    assert info["bundle"]["onnx_sha256"] == BundleIdentity.of(bundle).onnx_sha256
    assert info["views"] == len(index) == 3 * 162 and info["categories"] == ["car", "chair", "sofa"]
    assert info["render"]["subdivisions"] == 2 and info["render"]["upper_hemisphere"] is False
    row = next(index.rows())
    assert set(row) >= {"model_id", "category", "azimuth", "elevation", "theta", "rotation", "thumbnail"}
    assert (bundle / INDEX_DIR_NAME / row["thumbnail"]).is_file()
    assert index.graph.get_current_count() == len(index) and index.params.ef == 64
    assert info["wireframes"] == 3 and info["render"]["wireframe_segments"] == 300
    for spec in SPECS:  # the renderer's normalised frame: every point within the unit ball
        wire = index.wireframe(spec.model_id)
        assert wire.dtype == np.float32 and wire.shape[1:] == (2, 3) and 0 < len(wire) <= 300
        assert np.linalg.norm(wire, axis=2).max() <= 1.0 + 1e-5


def test_a_wireframe_keeps_feature_lines_within_its_budget() -> None:
    import trimesh

    box = wireframe(trimesh.creation.box((2.0, 1.0, 0.5)))  # 12 edges; the faces' diagonals are flat
    assert box.shape == (12, 2, 3)
    lengths = sorted(np.round(np.linalg.norm(box[:, 1] - box[:, 0], axis=1), 6).tolist())
    assert lengths == [0.5] * 4 + [1.0] * 4 + [2.0] * 4
    assert wireframe(trimesh.creation.icosphere(3)).shape == (0, 2, 3)  # smooth: no feature line
    rims = wireframe(trimesh.creation.cylinder(0.5, 1.0, sections=64))  # two rims, simplified
    assert 8 <= len(rims) <= 64 and np.allclose(np.abs(rims[..., 2]), 0.5)
    assert len(wireframe(trimesh.creation.cylinder(0.5, 1.0, sections=64), max_segments=20)) <= 20


def test_an_indexed_view_is_found_again_with_its_metadata(index: ViewIndex, first_model_views,
                                                         first_embeddings: np.ndarray) -> None:
    for i in (0, 40, 100):
        top = index.search(first_embeddings[i], 3)[0]
        assert top.label == i and top.similarity > 0.999
        assert top.model_id == SPECS[0].model_id and top.category == "car"
        expected = np.asarray(first_model_views.rows[i]["rotation"]).reshape(3, 3)
        assert geodesic_distance(top.rotation, expected) < 0.05  # views.jsonl keeps 7 decimals


def test_category_filter_matches_brute_force_within_the_category(index: ViewIndex, first_embeddings) -> None:
    vectors = index.graph.get_items(np.arange(len(index)), return_type="numpy")
    chair = np.array([index.view(i).category == "chair" for i in range(len(index))])
    for emb in first_embeddings[[3, 77]]:  # car views, searched among the chairs only
        hits = index.search(emb, 10, "chair")
        scores = np.where(chair, vectors @ index.projection(emb)[0], -np.inf)
        exact = np.argsort(-scores)[:10]
        assert {h.category for h in hits} == {"chair"}
        assert len({h.label for h in hits} & set(exact.tolist())) >= 9
        assert hits[0].similarity == pytest.approx(float(scores[exact[0]]), abs=1e-5)
    every = index.search(first_embeddings[0], 1000, "sofa")
    assert len(every) == 162 and {h.category for h in every} == {"sofa"}
    with pytest.raises(CategoryNotIndexedError, match="no views of category 'boat'; it holds: car, chair, sofa"):
        index.search(first_embeddings[0], 5, "boat")


def test_recall_against_brute_force_on_real_embeddings(bundle: Path, index: ViewIndex) -> None:
    """New renders (random viewpoints, backgrounds) of the indexed models as queries."""
    plan = RenderPlan(RenderConfig(seed=11), views=12)
    predictor = Predictor(bundle, intra_op_threads=1)
    queries = np.concatenate([embed(predictor, m)[0] for m in render_models(SPECS, plan, workers=0)])
    vectors = index.graph.get_items(np.arange(len(index)), return_type="numpy")
    recall1, recall10 = [], []
    for emb in queries:
        found = [h.label for h in index.search(emb, 10)]
        exact = np.argsort(-(vectors @ index.projection(emb)[0]))[:10].tolist()
        recall1.append(found[0] == exact[0])
        recall10.append(len(set(found) & set(exact)) / 10)
    assert len(queries) == 36
    assert np.mean(recall1) >= 0.97 and np.mean(recall10) >= 0.97


def test_add_models_grows_the_index_without_a_rebuild(bundle: Path, index: ViewIndex, tmp_path: Path) -> None:
    root = tmp_path / "index"
    shutil.copytree(bundle / INDEX_DIR_NAME, root)
    projection_before = (root / "projection.npz").read_bytes()
    new = builtin_specs(1, categories=["bus"])
    grown, skipped = add_models(root, bundle, SPECS[:1] + new, workers=0, threads=1, progress=False)
    assert skipped == [SPECS[0].model_id]
    assert len(grown) == len(index) + 162 and grown.categories == ["bus", "car", "chair", "sofa"]
    assert (root / "projection.npz").read_bytes() == projection_before  # descriptor kept, not refitted
    reloaded = ViewIndex.load(root, BundleIdentity.of(bundle))
    assert len(reloaded) == len(grown) and reloaded.graph.get_current_count() == len(grown)
    old = index.graph.get_items([0, 200, 485], return_type="numpy")
    np.testing.assert_array_equal(reloaded.graph.get_items([0, 200, 485], return_type="numpy"), old)
    assert [reloaded.view(i).model_id for i in (0, 485, 486)] == [index.view(0).model_id, index.view(485).model_id,
                                                                   new[0].model_id]
    # the new model's views are found again (same seed: model number 3 renders the same pixels)
    plan = RenderPlan(CONFIG.render_config(), None, CONFIG.tilts, CONFIG.backgrounds)
    again = next(render_models(new, plan, workers=0, first_number=3))
    emb = embed(Predictor(bundle, intra_op_threads=1), again)[0]
    top = reloaded.search(emb[10], 1, "bus")[0]
    assert top.label == 486 + 10 and top.similarity > 0.999
    assert (root / reloaded.view(486 + 10).thumbnail).is_file()
    np.testing.assert_array_equal(reloaded.wireframe(SPECS[1].model_id), index.wireframe(SPECS[1].model_id))
    assert reloaded.wireframe(new[0].model_id) is not None and reloaded.describe()["wireframes"] == 4


def test_add_models_to_an_index_saved_before_wireframes(bundle: Path, tmp_path: Path) -> None:
    root = tmp_path / "index"
    shutil.copytree(bundle / INDEX_DIR_NAME, root)
    (root / WIREFRAMES_FILE).unlink()
    new = builtin_specs(1, categories=["bus"], first_seed=5)
    grown, _ = add_models(root, bundle, new, workers=0, threads=1, progress=False)
    reloaded = ViewIndex.load(root, BundleIdentity.of(bundle))
    assert reloaded.wireframe(SPECS[0].model_id) is None  # old models stay without
    np.testing.assert_array_equal(reloaded.wireframe(new[0].model_id), grown.wireframe(new[0].model_id))


def test_an_index_of_another_bundle_is_refused_naming_both(bundle: Path, tmp_path: Path) -> None:
    other = other_bundle(bundle, tmp_path / "other")
    mine, theirs = BundleIdentity.of(bundle), BundleIdentity.of(other)
    assert mine.onnx_sha256 != theirs.onnx_sha256
    with pytest.raises(IndexMismatchError) as err:
        ViewIndex.load(bundle / INDEX_DIR_NAME, theirs)
    message = str(err.value)
    assert mine.onnx_sha256[:16] in message and theirs.onnx_sha256[:16] in message
    assert "was built with bundle 'tiny-test'" in message and "rebuild it" in message
    # a server whose BUNDLE/index came from another bundle refuses to start
    shutil.copytree(bundle / INDEX_DIR_NAME, other / INDEX_DIR_NAME)
    with pytest.raises(IndexMismatchError, match=theirs.onnx_sha256[:16]):
        start_server(Predictor(other, intra_op_threads=1), ServerConfig(port=0, workers=2))


# -- serving ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(bundle: Path):
    running = start_server(Predictor(bundle, intra_op_threads=1), ServerConfig(port=0, workers=2))
    with PoseClient(f"127.0.0.1:{running.port}", timeout=20) as c:
        c.wait_ready(20)
        yield c
    running.stop(0)


def test_retrieve_rpc_finds_the_view_model_and_pose(client: PoseClient, first_model_views) -> None:
    i = 60
    response = client.retrieve(png(first_model_views.images[i]), box=first_model_views.boxes[i], top_k=5,
                               request_id="r-1")
    r = response.retrieval
    assert response.request_id == "r-1" and len(r.views) == 5
    assert r.views[0].view_id == i and r.views[0].similarity > 0.999
    assert r.views[0].model_id == SPECS[0].model_id and r.views[0].thumbnail.startswith("thumbs/")
    sims = [v.similarity for v in r.views]
    assert sims == sorted(sims, reverse=True)
    assert r.models[0].model_id == SPECS[0].model_id and r.models[0].best_view.view_id == i
    assert len({m.model_id for m in r.models}) == len(r.models) >= 1
    truth = np.asarray(first_model_views.rows[i]["rotation"]).reshape(3, 3)
    for pose in (r.knn_pose, r.fused_pose):
        rot = np.asarray(pose.rotation).reshape(3, 3)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-5)
        assert 0.0 < pose.support <= 1.0 or pose.method == "fused-network"
    assert geodesic_distance(np.asarray(r.knn_pose.rotation).reshape(3, 3), truth) < 30.0
    assert r.knn_pose.method == "knn-so3-10" and r.fused_pose.method.startswith("fused-")
    assert len(response.estimate.rotation) == 9 and not response.estimate.HasField("retrieval")
    assert not any(m.wireframe for m in r.models)  # only when asked


def test_a_camera_turns_the_neighbour_poses_like_the_answer_but_not_the_views(bundle: Path, index: ViewIndex,
                                                                              first_model_views) -> None:
    from dataclasses import replace

    from vantage.serve.retrieval_api import Retriever

    i = 60
    result = Predictor(bundle).predict([first_model_views.images[i]], [first_model_views.boxes[i]])[0]
    turn = ray_rotation(camera_matrix((80.0, 80.0, 10.0, 20.0)), np.array([70.0, 60.0]))
    assert geodesic_distance(turn, np.eye(3)) > 20.0
    turned = replace(result, rotation=(turn @ np.array(result.rotation)).tolist(), camera_turn=turn.tolist())
    retriever = Retriever(index)
    plain, after = (retriever.retrieve(r, 5, None) for r in (result, turned))

    def rot(message) -> np.ndarray:
        return np.asarray(message.rotation, np.float64).reshape(3, 3)

    for name in ("knn_pose", "fused_pose"):
        before, now = getattr(plain, name), getattr(after, name)
        np.testing.assert_allclose(rot(now), turn @ rot(before), atol=2e-6)
        assert now.method == before.method and now.support == before.support
    assert [v.rotation for v in after.views] == [v.rotation for v in plain.views]  # each view's own rotation


def test_retrieve_sends_the_best_models_wireframes_when_asked(client: PoseClient, index: ViewIndex,
                                                            first_model_views) -> None:
    i = 60
    asked = make_request(png(first_model_views.images[i]), first_model_views.boxes[i])
    request = vantage_pb2.RetrieveRequest(image=asked.image, box=asked.box, top_k=100, wireframe_models=1)
    models = client.stub.Retrieve(request, timeout=20).retrieval.models
    assert len(models) >= 2 and models[0].model_id == SPECS[0].model_id
    # packed float32 x0 y0 z0 x1 y1 z1, exactly as stored; the other models without
    np.testing.assert_array_equal(np.asarray(models[0].wireframe, np.float32).reshape(-1, 2, 3),
                                  index.wireframe(SPECS[0].model_id))
    assert not any(m.wireframe for m in models[1:])


def test_retrieve_restricted_to_a_category_and_bad_requests(client: PoseClient, first_model_views) -> None:
    image, box = png(first_model_views.images[7]), first_model_views.boxes[7]
    r = client.retrieve(image, box=box, category="sofa", top_k=20).retrieval
    assert len(r.views) == 20 and {v.category for v in r.views} == {"sofa"}
    assert {m.category for m in r.models} == {"sofa"}
    with pytest.raises(grpc.RpcError) as err:
        client.retrieve(image, category="boat")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "it holds: car, chair, sofa" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        client.retrieve(image, category="spaceship")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown category" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        client.retrieve(image, top_k=101)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most 100" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        client.retrieve(b"not an image")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_estimate_carries_retrieval_only_when_asked(client: PoseClient, index: ViewIndex, first_model_views) -> None:
    image, box = png(first_model_views.images[3]), first_model_views.boxes[3]
    plain = client.estimate(image, box=box)
    assert not plain.HasField("retrieval")
    asked = make_request(image, box)
    asked.top_k = 4
    asked.wireframe_models = 1
    response = client.stub.Estimate(asked, timeout=20)
    assert len(response.retrieval.views) == 4 and response.retrieval.views[0].view_id == 3
    best = response.retrieval.models[0]
    assert len(best.wireframe) == index.wireframe(best.model_id).size > 0
    assert not any(m.wireframe for m in response.retrieval.models[1:])
    np.testing.assert_allclose(response.rotation, plain.rotation, atol=1e-5)
    info = client.model_info()
    assert info.view_index.views == 486 and list(info.view_index.categories) == ["car", "chair", "sofa"]
    assert info.view_index.descriptor == "pca" and info.view_index.dim == 32 and info.view_index.wireframes == 3


def test_retrieval_without_an_index_is_a_failed_precondition(tiny_bundle: Path) -> None:
    assert not (tiny_bundle / INDEX_DIR_NAME).exists()
    running = start_server(Predictor(tiny_bundle, intra_op_threads=1), ServerConfig(port=0, workers=2))
    try:
        with PoseClient(f"127.0.0.1:{running.port}", timeout=20) as c:
            with pytest.raises(grpc.RpcError) as err:
                c.retrieve(make_test_image())
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "no view index" in err.value.details() and "vantage index" in err.value.details()
            request = make_request(make_test_image())
            request.top_k = 3
            with pytest.raises(grpc.RpcError) as err:
                c.stub.Estimate(request, timeout=20)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert not c.model_info().HasField("view_index")
            assert len(c.estimate(make_test_image()).rotation) == 9  # still serving
    finally:
        running.stop(0)


def test_index_command_builds_and_adds(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import trimesh

    repo = tmp_path / "repo"
    for category, mesh in (("car", trimesh.creation.box((2.0, 1.0, 0.6))), ("chair", trimesh.creation.cone(0.5, 1.5))):
        (repo / category).mkdir(parents=True)
        mesh.export(repo / category / "m1.off")
    out = tmp_path / "idx"
    args = ["index", "--model", str(tiny_bundle), "--out", str(out), "--models", str(repo), "--subdivisions", "0",
            "--backgrounds", "2", "--pca", "8", "--workers", "0", "--ef", "32"]
    assert cli_main(args) == 0
    assert "48 views of 2 models (car, chair), pca 8-d descriptors" in capsys.readouterr().out  # 12 dirs × 2 bgs
    info = json.loads((out / "index.json").read_text())
    assert info["hnsw"]["ef"] == 32 and info["descriptor"]["dim"] == 8 and info["render"]["backgrounds"] == 2
    (repo / "sofa").mkdir()
    trimesh.creation.cylinder(0.6, 0.8).export(repo / "sofa" / "m2.off")
    assert cli_main(args + ["--add"]) == 0
    assert "already indexed, skipped: 2 models" in capsys.readouterr().out
    assert json.loads((out / "index.json").read_text())["categories"] == ["car", "chair", "sofa"]


def test_each_model_keeps_its_turns_onto_itself_and_the_rpc_sends_them(bundle: Path, index: ViewIndex,
                                                                       client: PoseClient, first_model_views,
                                                                       tmp_path: Path) -> None:
    from vantage.train.symmetry import detect_z_symmetry

    for spec in SPECS:
        recorded = index.symmetry(spec.model_id)
        truth = detect_z_symmetry(spec.load())
        assert recorded == {"angles": sorted(truth.angles), "continuous": truth.continuous}
    i = 60
    response = client.retrieve(png(first_model_views.images[i]), box=first_model_views.boxes[i], top_k=5)
    for model in response.retrieval.models:
        assert model.HasField("symmetry")
        sent = model.symmetry
        assert list(sent.turns_deg) == pytest.approx(index.symmetry(model.model_id)["angles"])
        assert sent.continuous == index.symmetry(model.model_id)["continuous"]

    # a bottle (a body of revolution) added later: every turn, through save and load
    root = tmp_path / "index"
    shutil.copytree(bundle / INDEX_DIR_NAME, root)
    bottle = builtin_specs(1, categories=["bottle"], first_seed=2)
    add_models(root, bundle, bottle, workers=0, threads=1, progress=False)
    reloaded = ViewIndex.load(root, BundleIdentity.of(bundle))
    assert reloaded.symmetry(bottle[0].model_id)["continuous"]
    assert reloaded.symmetry(SPECS[0].model_id) == index.symmetry(SPECS[0].model_id)


def test_an_index_without_symmetries_serves_none_and_a_damaged_one_is_refused(bundle: Path, tmp_path: Path) -> None:
    from vantage.serve.retrieval import VIEWS_FILE, ViewIndexError
    from vantage.serve.retrieval_api import symmetry_message

    root = tmp_path / "old"
    shutil.copytree(bundle / INDEX_DIR_NAME, root)
    rows = [json.loads(line) for line in (root / VIEWS_FILE).read_text().splitlines()]
    assert all("z_symmetry" in r for r in rows)
    (root / VIEWS_FILE).write_text("".join(json.dumps({k: v for k, v in r.items() if k != "z_symmetry"}) + "\n"
                                           for r in rows))
    old = ViewIndex.load(root, BundleIdentity.of(bundle))
    assert old.symmetry(SPECS[0].model_id) is None
    assert not vantage_pb2.RetrievedModel(symmetry=symmetry_message(None)).HasField("symmetry")
    rows[0]["z_symmetry"] = {"angles": [400.0], "continuous": False}
    (root / VIEWS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ViewIndexError, match=r"views.jsonl.*z_symmetry angles must lie in \(0, 360\)"):
        ViewIndex.load(root, BundleIdentity.of(bundle))
    (root / VIEWS_FILE).write_text(json.dumps(rows[0])[:-9] + "\n")  # a line cut short
    with pytest.raises(ViewIndexError, match="cannot read views.jsonl"):
        ViewIndex.load(root, BundleIdentity.of(bundle))
