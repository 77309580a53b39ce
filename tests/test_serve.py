"""Serving end to end: a real ONNX Runtime session behind a real gRPC server on loopback."""

from __future__ import annotations

import json
import math
import shutil
import threading
from dataclasses import asdict
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from serve_fixtures import edited_bundle, make_test_image
from vantage.bundle import INPUT_HINT_NAME, BundleError, load_metadata
from vantage.categories import CATEGORIES
from vantage.geometry import quaternion_to_rotation, viewpoint_to_rotation
from vantage.imaging import ImageError, decode_image
from vantage.serve.client import PoseClient
from vantage.serve.engine import Predictor, UnknownCategoryError
from vantage.serve.predict import predict_files
from vantage.serve.protocol import SERVICE_NAME, make_request
from vantage.serve.results import response_to_result, result_to_json, result_to_response
from vantage.serve.config import ServerConfig
from vantage.serve.server import start_server
from vantage.v1 import vantage_pb2

TOL = 1e-5
IMAGE = make_test_image(160, 120, seed=1)
BOX = (20.0, 10.0, 120.5, 90.0)  # exactly representable in float32, as on the wire


@pytest.fixture(scope="module")
def local(tiny_bundle: Path) -> Predictor:
    """The in-process path, a Predictor of its own (not the server's)."""
    return Predictor(tiny_bundle)


@pytest.fixture(scope="module")
def server(tiny_bundle: Path):
    predictor = Predictor(tiny_bundle, intra_op_threads=1)
    running = start_server(predictor, ServerConfig(port=0, workers=4))
    yield running, running.port, predictor
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def client(server):
    with PoseClient(f"127.0.0.1:{server[1]}", timeout=10.0) as c:
        c.wait_ready(timeout=10.0)
        yield c


def rotation_of(response: vantage_pb2.EstimateResponse) -> np.ndarray:
    assert len(response.rotation) == 9
    return np.asarray(response.rotation, np.float64).reshape(3, 3)


def assert_same_result(response: vantage_pb2.EstimateResponse, result) -> None:
    np.testing.assert_allclose(rotation_of(response), result.rotation, atol=TOL)
    np.testing.assert_allclose(list(response.axis_angle), result.axis_angle, atol=TOL)
    q = response.quaternion
    np.testing.assert_allclose([q.w, q.x, q.y, q.z], result.quaternion, atol=TOL)
    vp = response.viewpoint
    np.testing.assert_allclose(
        [vp.azimuth, vp.elevation, vp.theta], [result.viewpoint[k] for k in ("azimuth", "elevation", "theta")],
        atol=TOL, rtol=1e-6,  # float32 degrees: about 3e-5 resolution near 360
    )
    assert [s.name for s in response.category_scores] == list(result.category_scores)
    np.testing.assert_allclose([s.score for s in response.category_scores], list(result.category_scores.values()), atol=TOL)
    assert response.category == result.category
    assert response.category_given == result.category_given


# -- Estimate -----------------------------------------------------------------------


def test_estimate_round_trip(client: PoseClient, local: Predictor) -> None:
    response = client.estimate(IMAGE, box=BOX, request_id="req-1", frame_id=7)
    assert (response.request_id, response.frame_id) == ("req-1", 7)
    assert not response.error and response.error_code == 0 and not response.category_given

    r = rotation_of(response)
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-5)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-5)

    q = response.quaternion
    assert q.w >= 0
    assert math.isclose(q.w**2 + q.x**2 + q.y**2 + q.z**2, 1.0, abs_tol=1e-5)
    np.testing.assert_allclose(quaternion_to_rotation([q.w, q.x, q.y, q.z]), r, atol=1e-5)

    scores = [s.score for s in response.category_scores]
    assert [s.name for s in response.category_scores] == list(CATEGORIES)
    assert sum(scores) == pytest.approx(1.0, abs=1e-5)
    assert response.category == CATEGORIES[int(np.argmax(scores))]

    vp = response.viewpoint
    assert 0 <= vp.azimuth < 360 and -90 <= vp.elevation <= 90 and -180 < vp.theta <= 180
    np.testing.assert_allclose(viewpoint_to_rotation(vp.azimuth, vp.elevation, vp.theta), r, atol=1e-5)

    t = response.timings
    assert t.backend == "onnxruntime/CPUExecutionProvider"
    assert t.decode_ms > 0 and t.inference_ms > 0 and t.queue_ms >= 0
    assert t.total_ms >= t.decode_ms + t.queue_ms + t.inference_ms

    assert_same_result(response, local.predict_bytes(IMAGE, BOX))


def test_estimate_without_box_uses_the_whole_image(client: PoseClient, local: Predictor) -> None:
    h, w = decode_image(IMAGE).shape[:2]
    response = client.estimate(IMAGE)
    assert_same_result(response, local.predict_bytes(IMAGE, (0, 0, w, h)))
    assert not np.allclose(rotation_of(response), local.predict_bytes(IMAGE, BOX).rotation, atol=1e-3)


@pytest.mark.parametrize("category", ["car", "chair"])
def test_known_category_uses_its_pose_head(client: PoseClient, local: Predictor, category: str) -> None:
    response = client.estimate(IMAGE, box=BOX, category=category)
    assert response.category_given and response.category == category
    given = local.predict_bytes(IMAGE, BOX, category)
    assert given.category_given
    assert_same_result(response, given)
    unknown = local.predict_bytes(IMAGE, BOX)
    assert not np.allclose(given.rotation, unknown.rotation, atol=1e-3), "the category hint changed nothing"
    # The classifier's probabilities do not depend on the hint.
    np.testing.assert_allclose(list(given.category_scores.values()), list(unknown.category_scores.values()), atol=1e-6)


BAD_REQUESTS = {
    "empty image": (dict(image=b""), "empty"),
    "not an image": (dict(image=b"this is not a JPEG or PNG at all"), "could not be decoded"),
    "truncated png": (dict(image=IMAGE[:60]), "could not be decoded"),
    "box outside": (dict(image=IMAGE, box=(500, 500, 600, 600)), "outside the 160x120 image"),
    "zero-area box": (dict(image=IMAGE, box=(10, 10, 10, 50)), "zero or negative area"),
    "inverted box": (dict(image=IMAGE, box=(50, 10, 10, 50)), "zero or negative area"),
    "nan box": (dict(image=IMAGE, box=(float("nan"), 0, 50, 50)), "non-finite"),
    "inf box": (dict(image=IMAGE, box=(0, 0, float("inf"), 50)), "non-finite"),
    "unknown category": (dict(image=IMAGE, category="unicorn"), "unknown category 'unicorn'"),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_input_is_invalid_argument_and_server_keeps_serving(client: PoseClient, name: str) -> None:
    kwargs, expected = BAD_REQUESTS[name]
    with pytest.raises(grpc.RpcError) as info:
        client.estimate(**kwargs)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in info.value.details()
    if name == "unknown category":
        assert "sofa" in info.value.details()  # the message names the known categories
    assert len(client.estimate(IMAGE, box=BOX).rotation) == 9


def test_internal_error_is_internal_with_request_id(tiny_bundle: Path, caplog) -> None:
    predictor = Predictor(tiny_bundle)
    running = start_server(predictor, ServerConfig(port=0, workers=2))
    try:
        with PoseClient(f"127.0.0.1:{running.port}", timeout=10) as c:

            def broken(prepared):
                raise RuntimeError("session exploded")

            predictor.run = broken  # instance attribute shadows the method
            with pytest.raises(grpc.RpcError) as info:
                c.estimate(IMAGE, request_id="rid-42")
            assert info.value.code() == grpc.StatusCode.INTERNAL
            assert "rid-42" in info.value.details() and "session exploded" in info.value.details()
            assert any("rid-42" in r.getMessage() for r in caplog.records)
            frames = list(c.stream([make_request(IMAGE, frame_id=1)]))
            assert frames[0].error_code == grpc.StatusCode.INTERNAL.value[0] and "session exploded" in frames[0].error
            del predictor.run
            assert len(c.estimate(IMAGE).rotation) == 9
    finally:
        running.stop(0)


# -- EstimateStream -------------------------------------------------------------------


def test_stream_answers_every_frame_in_order_and_survives_a_bad_frame(client: PoseClient, local: Predictor) -> None:
    """Frames that must not be dropped (keep_frame) are all processed, in order."""
    images = [make_test_image(160, 120, seed=s) for s in range(10)]
    bad = 4
    requests = [
        make_request(b"garbage" if i == bad else img, box=BOX, request_id=f"cam-{i}", frame_id=1000 + i, keep_frame=True)
        for i, img in enumerate(images)
    ]
    responses = list(client.stream(requests, timeout=30))
    assert [r.frame_id for r in responses] == [1000 + i for i in range(10)]
    assert [r.request_id for r in responses] == [f"cam-{i}" for i in range(10)]
    err = responses[bad]
    assert err.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "could not be decoded" in err.error
    assert len(err.rotation) == 0 and not err.category
    assert not any(r.dropped or r.frames_dropped_before for r in responses)
    for i, response in enumerate(responses):
        if i != bad:
            assert not response.error and response.error_code == 0
            assert_same_result(response, local.predict_bytes(images[i], BOX))
    with pytest.raises(ValueError, match="could not be decoded"):
        response_to_result(err)


def test_stream_is_lazy_per_frame(client: PoseClient) -> None:
    """A camera stream gets each answer before it sends the next frame."""
    sent: list[int] = []
    ready = threading.Event()

    def frames():
        for i in range(3):
            sent.append(i)
            yield make_request(IMAGE, frame_id=i)
            assert ready.wait(10), "no answer before the next frame was needed"
            ready.clear()

    for i, response in enumerate(client.stream(frames(), timeout=30)):
        assert response.frame_id == i and sent == list(range(i + 1))
        ready.set()


# -- model info, health, reflection ------------------------------------------------------


def test_model_info(client: PoseClient, tiny_bundle: Path) -> None:
    info = client.model_info()
    meta = load_metadata(tiny_bundle)
    assert list(info.categories) == list(CATEGORIES)
    assert (info.name, info.model_version, info.input_size, info.fusion) == ("tiny-test", "test-1", 64, "weighted")
    assert info.backend == "onnxruntime/CPUExecutionProvider" and info.server_version
    assert json.loads(info.metadata_json) == asdict(meta)


def test_health_and_reflection(server) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server[1]}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as info:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert SERVICE_NAME in services and "grpc.health.v1.Health" in services


def test_health_is_not_serving_until_warmed_up(tiny_bundle: Path) -> None:
    release = threading.Event()

    class SlowWarmup(Predictor):
        def warmup(self) -> None:
            assert release.wait(10)
            super().warmup()

    running = start_server(SlowWarmup(tiny_bundle), ServerConfig(port=0, workers=2), wait_for_warmup=False)
    try:
        with PoseClient(f"127.0.0.1:{running.port}", timeout=5) as c:
            assert c.health() == "NOT_SERVING" and c.health("") == "NOT_SERVING"
            with pytest.raises(TimeoutError, match="NOT_SERVING"):
                c.wait_ready(timeout=0.3)
            release.set()
            c.wait_ready(timeout=10)
            assert c.health() == "SERVING"
    finally:
        release.set()
        running.stop(0)


def test_port_zero_binds_a_free_port_and_ports_are_not_shared(server) -> None:
    _, port, predictor = server
    assert port > 0
    with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
        start_server(predictor, ServerConfig(port=port))


# -- bundle loading ----------------------------------------------------------------------


def test_missing_bundle_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-bundle"
    with pytest.raises(BundleError, match=str(missing)):
        Predictor(missing)


def test_bundle_without_model(tmp_path: Path, tiny_bundle: Path) -> None:
    bundle = tmp_path / "no-model"
    bundle.mkdir()
    shutil.copy(tiny_bundle / "vantage.json", bundle)
    with pytest.raises(BundleError) as info:
        Predictor(bundle)
    assert str(bundle) in str(info.value) and "model.onnx" in str(info.value)


@pytest.mark.parametrize(
    "changes,expected",
    [
        ({"input_size": 32}, "input 'image' has shape"),
        ({"categories": list(CATEGORIES[:5])}, f"input '{INPUT_HINT_NAME}' has shape"),
        ({"embedding_dim": 99}, "output 'embedding' has shape"),
        ({"input_name": "pixels"}, "has inputs"),
        ({"hint_name": "hint"}, "has inputs"),
        ({"categories": ["car", "spaceship"]}, "unknown categories"),
    ],
)
def test_graph_must_match_metadata(tmp_path: Path, tiny_bundle: Path, changes: dict, expected: str) -> None:
    with pytest.raises(BundleError, match=expected):
        Predictor(edited_bundle(tiny_bundle, tmp_path / "edited", **changes))


def test_corrupt_model_file(tmp_path: Path, tiny_bundle: Path) -> None:
    bundle = edited_bundle(tiny_bundle, tmp_path / "edited")
    (bundle / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(BundleError, match="ONNX Runtime cannot load"):
        Predictor(bundle)


# -- the in-process engine -----------------------------------------------------------------


def test_batched_predict_equals_single(local: Predictor) -> None:
    images = [decode_image(make_test_image(100 + 20 * i, 90, seed=i)) for i in range(3)]
    boxes = [None, (5, 5, 60, 70), (30.5, 20, 90, 80)]
    categories = [None, "bus", None]
    batch = local.predict(images, boxes, categories)
    assert len(batch) == 3 and [r.category_given for r in batch] == [False, True, False]
    for image, box, category, result in zip(images, boxes, categories, batch):
        single = local.predict([image], [box], [category])[0]
        np.testing.assert_allclose(result.rotation, single.rotation, atol=TOL)
        np.testing.assert_allclose(list(result.category_scores.values()), list(single.category_scores.values()), atol=TOL)
        assert len(result.embedding) == local.metadata.embedding_dim
        assert np.linalg.norm(result.embedding) == pytest.approx(1.0, abs=1e-5)
    assert local.predict([]) == []
    with pytest.raises(ValueError, match="3 images but 2 boxes"):
        local.predict(images, boxes[:2])
    with pytest.raises(UnknownCategoryError, match="this model knows: aeroplane, bicycle"):
        local.predict(images[:1], categories=["unicorn"])
    with pytest.raises(ImageError, match="RGB uint8"):
        local.predict([np.zeros((10, 10), np.uint8)])


def test_wire_conversion_keeps_the_json(local: Predictor) -> None:
    result = local.predict_bytes(IMAGE, BOX, "boat")
    back = response_to_result(result_to_response(result, "x", 3))
    assert result_to_json(back) == result_to_json(result)
    assert back.embedding == []  # not on the wire


# -- predict_files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    files = []
    for i, ext in enumerate([".png", ".jpg", ".png"]):
        path = folder / f"img{i}{ext}"
        path.write_bytes(make_test_image(150, 130, seed=10 + i, ext=ext))
        files.append(path)
    (folder / "notes.txt").write_text("not an image")
    files.insert(1, folder / "notes.txt")
    files.append(folder / "missing.png")
    return files


def assert_same_json(a: dict, b: dict) -> None:
    """Same keys and values within TOL; timings only same keys.

    Viewpoints are compared as rotations: degrees from arccos/atan2 amplify float32
    noise (1e-7 in R is 3e-5 degrees of elevation at e = -80, unbounded at the poles).
    """
    assert a.keys() == b.keys()
    for key in a:
        if key == "timings":
            assert a[key].keys() == b[key].keys()
        elif key == "viewpoint":
            assert list(a[key]) == list(b[key]) == ["azimuth", "elevation", "theta"]
            np.testing.assert_allclose(
                viewpoint_to_rotation(*a[key].values()), viewpoint_to_rotation(*b[key].values()), atol=TOL
            )
        elif isinstance(a[key], dict):
            assert list(a[key]) == list(b[key])
            np.testing.assert_allclose(list(a[key].values()), list(b[key].values()), atol=TOL)
        elif isinstance(a[key], list):
            np.testing.assert_allclose(a[key], b[key], atol=TOL)
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("box,category,batch_size", [(None, None, 3), ((10.1, 20, 140, 125.7), "sofa", 1)])
def test_predict_files_same_json_in_process_and_through_server(
    server, tiny_bundle: Path, image_files: list[Path], box, category, batch_size: int
) -> None:
    target = f"127.0.0.1:{server[1]}"
    local_out = predict_files(image_files, model=tiny_bundle, box=box, category=category, batch_size=batch_size)
    # as many calls in flight as the local batch: at 1 the server runs each image alone, the very same computation
    remote_out = predict_files(image_files, server=target, box=box, category=category, concurrency=batch_size)
    assert [d["file"] for d in local_out] == [str(p) for p in image_files] == [d["file"] for d in remote_out]

    errors = {Path(d["file"]).name: d["error"] for d in local_out if "error" in d}
    assert set(errors) == {"notes.txt", "missing.png"}
    assert "could not be decoded" in errors["notes.txt"] and "cannot read" in errors["missing.png"]

    for a, b in zip(local_out, remote_out):
        if "error" in a:
            assert a == b  # same message on both paths
            continue
        assert {"file", "category", "category_scores", "rotation", "viewpoint", "quaternion", "axis_angle", "timings"} <= a.keys()
        assert a["category_given"] == (category is not None)
        assert_same_json(a, b)
        if batch_size == 1:  # the very same computation: identical JSON apart from the timings
            assert {k: v for k, v in a.items() if k != "timings"} == {k: v for k, v in b.items() if k != "timings"}
    json.dumps(local_out)  # JSON-ready


def test_predict_files_arguments(server, tiny_bundle: Path, image_files: list[Path]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        predict_files(image_files)
    with pytest.raises(ValueError, match="exactly one"):
        predict_files(image_files, server="127.0.0.1:1", model=tiny_bundle)
    for kwargs in (dict(model=tiny_bundle), dict(server=f"127.0.0.1:{server[1]}")):
        with pytest.raises(UnknownCategoryError, match="unicorn"):
            predict_files(image_files[:1], category="unicorn", **kwargs)
