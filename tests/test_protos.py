"""The checked-in gRPC stubs are exactly what protos/generate.py makes from vantage.proto."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PROTOS = Path(__file__).resolve().parents[1] / "protos"


def _generate_module():
    spec = importlib.util.spec_from_file_location("vantage_protos_generate", PROTOS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checked_in_stubs_match_the_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (dev dependency) regenerates the stubs")
    gen = _generate_module()
    produced = gen.generate(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in produced] == list(gen.GENERATED_FILES)
    for rel in gen.GENERATED_FILES:
        fresh, checked_in = (tmp_path / rel).read_bytes(), (PROTOS / rel).read_bytes()
        assert fresh == checked_in, f"{rel} is stale: run `python protos/generate.py` and commit the result"


def test_stubs_import_as_vantage_v1_and_describe_the_api() -> None:
    from vantage.v1 import vantage_pb2, vantage_pb2_grpc

    assert Path(vantage_pb2.__file__).resolve().parent == PROTOS / "vantage" / "v1"
    service = vantage_pb2.DESCRIPTOR.services_by_name["PoseEstimator"]
    assert service.full_name == "vantage.v1.PoseEstimator"
    methods = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    expected = {"Estimate": (False, False), "EstimateStream": (True, True), "GetModelInfo": (False, False),
                "Reload": (False, False)}
    assert expected.items() <= methods.items()  # other features add their own methods
    assert hasattr(vantage_pb2_grpc, "PoseEstimatorStub")

    request = vantage_pb2.EstimateRequest(image=b"x")
    assert not request.HasField("box")  # absent box = whole image: presence must be tracked
    request.box.x_max = 0.0
    assert request.HasField("box")
    response_fields = set(vantage_pb2.EstimateResponse.DESCRIPTOR.fields_by_name)
    assert {
        "category", "category_scores", "rotation", "axis_angle", "quaternion", "viewpoint", "timings",
        "request_id", "frame_id", "category_given", "error", "error_code",
    } <= response_fields
    assert [f.name for f in vantage_pb2.Quaternion.DESCRIPTOR.fields] == ["w", "x", "y", "z"]
    assert [f.name for f in vantage_pb2.Box.DESCRIPTOR.fields] == ["x_min", "y_min", "x_max", "y_max"]


def test_proto_ships_with_the_package() -> None:
    """The .proto is package data of vantage.v1 (pyproject) and lies beside the stubs."""
    import vantage.v1

    assert (Path(vantage.v1.__file__).parent / "vantage.proto").is_file()
