"""Triton model repository: config.pbtxt parsed back and checked against the bundle, versioned model folders."""

import shutil

import pytest

from vantage.bundle import load_metadata, save_metadata
from vantage.export.triton import config_problems, model_config, parse_pbtxt, to_pbtxt, write_repository


def test_repository_has_one_checked_model_per_graph(quantised_bundle, tmp_path):
    written = write_repository(quantised_bundle, tmp_path / "repo", max_batch=8)
    meta = load_metadata(quantised_bundle)
    assert [p.parent.name for p in written] == ["vantage", "vantage_fp16", "vantage_int8"]
    for path in written:
        config = parse_pbtxt(path.read_text())
        assert config_problems(config, meta) == []
        assert config["platform"] == "onnxruntime_onnx" and config["max_batch_size"] == 8
        assert config["dynamic_batching"]["preferred_batch_size"] == [4, 8]
        assert [t["name"] for t in config["input"]] == ["image", "category_hint"]
        assert {t["name"]: t["dims"] for t in config["output"]}["rotation"] == [3, 3]
    assert (tmp_path / "repo/vantage/1/model.onnx").read_bytes() == (quantised_bundle / "model.onnx").read_bytes()
    assert (tmp_path / "repo/vantage_int8/1/model.onnx").read_bytes() == (quantised_bundle / "model.int8.onnx").read_bytes()


def test_config_round_trips_and_mismatches_are_named(quantised_bundle):
    meta = load_metadata(quantised_bundle)
    config = model_config(meta, "vantage", "tensorrt", max_batch=4)
    parsed = parse_pbtxt(to_pbtxt(config))
    assert parsed == config
    assert parsed["platform"] == "tensorrt_plan" and parsed["default_model_filename"] == "model.plan"
    assert parsed["instance_group"] == [{"kind": "KIND_GPU", "count": 1}]
    parsed["input"][0]["dims"] = [3, 32, 32]
    parsed["output"][3]["name"] = "features"
    problems = config_problems(parsed, meta)
    assert any("input image has dims [3, 32, 32]" in p for p in problems)
    assert any("output names" in p and "features" in p for p in problems)


def test_parser_reads_triton_style_text():
    text = """
    # a hand-written config
    name: "m"  max_batch_size: 2
    input { name: "a" data_type: TYPE_FP32 dims: [ -1, 3 ] }
    input { name: "b" data_type: TYPE_FP32 dims: 4 }
    dynamic_batching { }
    optimization { execution_accelerators { gpu_execution_accelerator: [ { name: "tensorrt" } ] } }
    """
    config = parse_pbtxt(text)
    assert config["input"] == [{"name": "a", "data_type": "TYPE_FP32", "dims": [-1, 3]},
                               {"name": "b", "data_type": "TYPE_FP32", "dims": 4}]
    assert config["dynamic_batching"] == {} and config["max_batch_size"] == 2
    assert config["optimization"]["execution_accelerators"]["gpu_execution_accelerator"] == [{"name": "tensorrt"}]


def test_repository_needs_a_numeric_model_version(quantised_bundle, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(quantised_bundle, bundle)
    meta = load_metadata(bundle)
    meta.model_version = "test-1"
    save_metadata(bundle, meta)
    with pytest.raises(ValueError, match="positive integer model version; the bundle's is 'test-1'"):
        write_repository(bundle, tmp_path / "repo")
