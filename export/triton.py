"""A Triton Inference Server model repository for a bundle, for users who outgrow one box.

`write_repository(BUNDLE, DIR)` lays out one Triton model per graph of the bundle:

    DIR/<name>/config.pbtxt               platform onnxruntime_onnx (model.onnx)
    DIR/<name>/<version>/model.onnx
    DIR/<name>_<variant>/...              each accepted variant of vantage.json: int8/fp16
                                          ONNX (onnxruntime_onnx) and TensorRT plans
                                          (tensorrt_plan, model.plan, GPU instances)

with dynamic batching and the bundle's input/output names, types and per-item
shapes. The configuration is built as one dict, written in protobuf text format
and parsed back with the small parser below, then checked against the bundle
before the repository is declared written.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from vantage.bundle import BundleMetadata, load_metadata

CONFIG_FILE = "config.pbtxt"
# bundle runtime → (Triton platform, model file name, instance kind)
PLATFORMS = {
    "onnxruntime": ("onnxruntime_onnx", "model.onnx", "KIND_CPU"),
    "tensorrt": ("tensorrt_plan", "model.plan", "KIND_GPU"),
}
MAX_QUEUE_DELAY_US = 500


class Ident(str):
    """A bare identifier in protobuf text format (an enum value such as TYPE_FP32)."""


def model_config(
    meta: BundleMetadata, name: str, runtime: str = "onnxruntime", max_batch: int = 8, instances: int = 1
) -> dict[str, Any]:
    """Triton's ModelConfig for one graph of the bundle, as a dict."""
    platform, filename, kind = PLATFORMS[runtime]
    shapes = meta.tensor_shapes()

    def tensors(names: list[str]) -> list[dict[str, Any]]:
        return [{"name": n, "data_type": Ident("TYPE_FP32"), "dims": shapes[n]} for n in names]

    return {
        "name": name,
        "platform": platform,
        "default_model_filename": filename,
        "max_batch_size": max_batch,
        "input": tensors([meta.input_name, meta.hint_name]),
        "output": tensors(list(meta.output_names)),
        "dynamic_batching": {
            "preferred_batch_size": sorted({b for b in (4, max_batch) if b <= max_batch}),
            "max_queue_delay_microseconds": MAX_QUEUE_DELAY_US,
        },
        "instance_group": [{"kind": Ident(kind), "count": instances}],
        "version_policy": {"latest": {"num_versions": 1}},
    }


def _scalar(value: Any) -> str:
    if isinstance(value, Ident):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def to_pbtxt(message: dict[str, Any], indent: int = 0) -> str:
    """Protobuf text format of a dict (nested dicts are messages, lists are repeated fields)."""
    pad = " " * indent
    lines = []
    for key, value in message.items():
        if isinstance(value, dict):
            lines += [f"{pad}{key} {{", to_pbtxt(value, indent + 2), f"{pad}}}"]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            items = [f"{pad}  {{\n{to_pbtxt(v, indent + 4)}\n{pad}  }}" for v in value]
            lines += [f"{pad}{key} [", ",\n".join(items), f"{pad}]"]
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [ {', '.join(_scalar(v) for v in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return "\n".join(lines)


_TOKEN = re.compile(r'\s+|#[^\n]*|(?P<tok>"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[-+]?[0-9][0-9.eE+-]*|[A-Za-z_][A-Za-z0-9_.]*)')


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"config.pbtxt: cannot read {text[pos:pos + 20]!r}")
        if m.group("tok"):
            out.append(m.group("tok"))
        pos = m.end()
    return out


def parse_pbtxt(text: str) -> dict[str, Any]:
    """Parse protobuf text format into dicts; a field that repeats or is written `[...]` becomes a list."""
    toks = _tokens(text)
    pos = 0

    def value() -> Any:
        nonlocal pos
        tok = toks[pos]
        pos += 1
        if tok == "{":
            return message("}")
        if tok.startswith('"'):
            return json.loads(tok)
        if re.fullmatch(r"[-+]?[0-9]+", tok):
            return int(tok)
        if tok[0] in "+-0123456789":
            return float(tok)
        return {"true": True, "false": False}.get(tok, Ident(tok))

    def message(end: str | None) -> dict[str, Any]:
        nonlocal pos
        msg: dict[str, Any] = {}
        while pos < len(toks) and toks[pos] != end:
            key = toks[pos]
            pos += 1
            if toks[pos] == ":":
                pos += 1
            if toks[pos] == "[":
                pos += 1
                items = []
                while toks[pos] != "]":
                    items.append(value())
                    if toks[pos] == ",":
                        pos += 1
                pos += 1
                msg.setdefault(key, []).extend(items)
            elif key in msg:
                prev = msg[key]
                msg[key] = [*prev, value()] if isinstance(prev, list) else [prev, value()]
            else:
                msg[key] = value()
        pos += 1
        return msg

    return message(None)


def config_problems(config: dict[str, Any], meta: BundleMetadata) -> list[str]:
    """Differences between a Triton config and the bundle's graph contract (names, types, shapes)."""
    shapes = meta.tensor_shapes()
    problems = []
    for field, names in (("input", [meta.input_name, meta.hint_name]), ("output", list(meta.output_names))):
        tensors = config.get(field, [])
        tensors = tensors if isinstance(tensors, list) else [tensors]
        got = {t.get("name"): t for t in tensors}
        if sorted(got) != sorted(names):
            problems.append(f"{field} names {sorted(got)} differ from the bundle's {sorted(names)}")
        for name in names:
            if name not in got:
                continue
            if got[name].get("data_type") != "TYPE_FP32":
                problems.append(f"{field} {name} has data_type {got[name].get('data_type')}, the bundle's is TYPE_FP32")
            dims = got[name].get("dims")
            dims = dims if isinstance(dims, list) else [dims]
            if dims != shapes[name]:
                problems.append(f"{field} {name} has dims {dims}, the bundle's are {shapes[name]}")
    if not isinstance(config.get("max_batch_size"), int) or config["max_batch_size"] < 1:
        problems.append("max_batch_size must be a positive integer (the bundle's batch dimension is dynamic)")
    return problems


def write_repository(bundle_dir: str | Path, repo_dir: str | Path, max_batch: int = 8) -> list[Path]:
    """Write one Triton model folder per graph of the bundle; returns their config.pbtxt paths.

    ValueError when the bundle's model_version is not a positive integer (Triton's
    version folders are numbers) or when a written config does not match the bundle.
    """
    bundle, repo = Path(bundle_dir), Path(repo_dir)
    meta = load_metadata(bundle)
    if not str(meta.model_version).isdigit() or int(meta.model_version) < 1:
        raise ValueError(f"Triton needs a positive integer model version; the bundle's is {meta.model_version!r}")
    graphs = [(meta.name, "onnxruntime", meta.onnx_file, max_batch)]
    for variant, entry in sorted(meta.variants.items()):
        batch = min(max_batch, entry.get("max_batch", max_batch))  # a plan serves no more than its profile
        graphs.append((f"{meta.name}_{variant.replace('-', '_')}", entry["runtime"], entry["file"], batch))
    written = []
    for name, runtime, source, batch in graphs:
        config = model_config(meta, name, runtime, batch)
        folder = repo / name
        version = folder / str(int(meta.model_version))
        version.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle / source, version / config["default_model_filename"])
        path = folder / CONFIG_FILE
        path.write_text(to_pbtxt(config) + "\n")
        problems = config_problems(parse_pbtxt(path.read_text()), meta)
        if problems:
            raise ValueError(f"{path} does not match the bundle: " + "; ".join(problems))
        written.append(path)
    return written
