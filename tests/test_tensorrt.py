"""TensorRT engines: a clear stop where TensorRT or the GPU is missing; a real build and check where both exist."""

import sys

import pytest

from vantage.bundle import load_metadata
from vantage.cli import main
from vantage.export import tensorrt_engine

MISSING = tensorrt_engine.missing()


def test_missing_names_the_tensorrt_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` fail
    message = tensorrt_engine.missing()
    assert message is not None and "`tensorrt` Python package is not installed" in message


@pytest.mark.skipif(MISSING is None, reason="TensorRT and a GPU are present here")
def test_cli_engine_stops_with_exit_2_and_says_what_is_missing(tmp_path, capsys):
    code = main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "b"), "--engine", "fp16"])
    err = capsys.readouterr().err
    assert code == 2 and MISSING in err and "--engine onnx" in err
    assert not (tmp_path / "b").exists(), "stopped before exporting anything"


@pytest.mark.gpu
@pytest.mark.skipif(MISSING is not None, reason=f"TensorRT engine build impossible here: {MISSING}")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_is_built_checked_against_onnxruntime_and_recorded(precision, small_renders, tmp_path):
    from export_fixtures import export_small_bundle

    from vantage.export.renders import load_renders

    bundle = export_small_bundle(tmp_path / "b")
    renders = load_renders(small_renders, load_metadata(bundle))
    entry = tensorrt_engine.export_engine(bundle, precision, max_batch=8, calibration=renders, comparison=renders,
                                          repeats=3)
    assert (bundle / f"model.{precision}.plan").is_file()
    tol = tensorrt_engine.TOLERANCES[precision]
    assert entry["agreement_with_onnxruntime"]["rotation_median_deg"] <= tol.rotation_median_deg
    recorded = load_metadata(bundle).variants[f"tensorrt-{precision}"]
    assert recorded["gpu"] and recorded["tensorrt"].startswith("1") and recorded["max_batch"] == 8
