"""Checkpoint → model bundle: `model.onnx` with all post-processing inside, plus `vantage.json`.

The graph computes everything up to the final answer (softmax, weighted or top-1
fusion, axis-angle → rotation by Rodrigues, the retrieval embedding), so that no
client or server re-implements the math. Inputs: `image` (N,3,S,S) normalised
crops and `category_hint` (N,K): zeros = unknown category, one-hot = known (the
graph then uses that category's pose head). The legacy exporter is used because
it writes one self-contained, deterministic file (MEASURED.md); onnxslim then
folds constants and removes the exporter's shape plumbing, the allow-list of
`vantage.export.ops` is enforced, and ONNX Runtime is checked against PyTorch on
the final file.

Any model that follows the contract of `PoseModel` exports: the joint network of
`vantage.train.model` with any head type or fusion.
"""

from __future__ import annotations

import io
import platform
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx
import onnxruntime as ort
import onnxslim
import torch

import vantage
from vantage.bundle import INPUT_HINT_NAME, INPUT_NAME, OUTPUT_NAMES, BundleMetadata, save_metadata
from vantage.export.ops import check_ops
from vantage.geometry import axis_angle_to_rotation, geodesic_distance

OPSET = 17
PARITY_ROTATION_TOL = 1e-4
METADATA_KEY = "vantage"


class ParityError(AssertionError):
    """ONNX Runtime and PyTorch disagree beyond the tolerance."""


class PoseModel(Protocol):
    """What the exporter needs from a model (the bundle graph contract).

    `forward(image (N,3,S,S), category_hint (N,K))` returns `(category_probs (N,K),
    axis_angle (N,3), rotation (N,3,3), embedding (N,D), pose_hypotheses (N,H,3),
    hypothesis_scores (N,H))`, all post-processing included
    (vantage.train.hypotheses.conclude); `config` carries `categories`,
    `input_size` and `fusion`.
    """

    config: Any
    embedding_dim: int

    def eval(self) -> "PoseModel": ...

    def __call__(self, image: torch.Tensor, category_hint: torch.Tensor) -> tuple[torch.Tensor, ...]: ...


def to_onnx_bytes(model: PoseModel, opset: int = OPSET) -> bytes:
    """Serialise the model's full inference path to ONNX with a dynamic batch dimension named `batch`."""
    model = model.eval()
    size, k = model.config.input_size, len(model.config.categories)
    dummy = (torch.zeros(2, 3, size, size), torch.zeros(2, k))
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        dummy,
        buf,
        input_names=[INPUT_NAME, INPUT_HINT_NAME],
        output_names=list(OUTPUT_NAMES),
        dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, INPUT_HINT_NAME, *OUTPUT_NAMES)},
        opset_version=opset,
        do_constant_folding=True,
        dynamo=False,
    )
    return buf.getvalue()


def simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Constant folding and graph simplification with onnxslim (deterministic; keeps names and opset)."""
    return onnxslim.slim(proto)


def ort_session(path: str | Path) -> ort.InferenceSession:
    """A CPU session with spinning off, so it can be timed beside PyTorch (MEASURED.md)."""
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def check_parity(model: PoseModel, onnx_path: str | Path, images: np.ndarray, hints: np.ndarray) -> dict[str, float]:
    """Run ONNX Runtime and PyTorch on the same inputs; ParityError beyond PARITY_ROTATION_TOL."""
    sess = ort_session(onnx_path)
    got = dict(zip(OUTPUT_NAMES, sess.run(list(OUTPUT_NAMES), {INPUT_NAME: images, INPUT_HINT_NAME: hints})))
    with torch.no_grad():
        ref = dict(zip(OUTPUT_NAMES, (t.numpy() for t in model.eval()(torch.from_numpy(images), torch.from_numpy(hints)))))
    diffs = {name: float(np.abs(got[name] - ref[name]).max()) for name in OUTPUT_NAMES}
    diffs["rotation_geodesic_deg"] = float(geodesic_distance(got["rotation"], ref["rotation"]).max())
    # recorded, not enforced: a candidate at the grouping radius may fall either side under rounding
    diffs["pose_hypotheses_geodesic_deg"] = float(geodesic_distance(
        axis_angle_to_rotation(got["pose_hypotheses"]), axis_angle_to_rotation(ref["pose_hypotheses"])).max())
    if diffs["rotation"] > PARITY_ROTATION_TOL:
        raise ParityError(f"ONNX Runtime rotation differs from PyTorch by {diffs['rotation']:.2e} > {PARITY_ROTATION_TOL}")
    return diffs


def parity_inputs(k: int, size: int, extra_images: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random crops (plus `extra_images`), every other row with a one-hot hint, so both branches run."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(4, 3, size, size)).astype(np.float32)
    if extra_images is not None:
        images = np.concatenate([images, extra_images.astype(np.float32)])
    hints = np.zeros((len(images), k), np.float32)
    hints[::2, :] = np.eye(k, dtype=np.float32)[np.arange(0, len(images), 2) % k]
    return images, hints


def export_bundle(
    model: PoseModel,
    out_dir: str | Path,
    training: dict | None = None,
    crop_margin: float = 0.1,
    parity_images: np.ndarray | None = None,
    model_version: str = "1",
    name: str = "vantage",
) -> Path:
    """Write `out_dir/model.onnx` and `out_dir/vantage.json`, check ops and parity, return the folder.

    UnsupportedOpError (naming the operator) when the graph leaves the allow-list;
    ParityError when ONNX Runtime disagrees with PyTorch. `parity_images`
    (normalised crops) are checked besides random inputs.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    meta = BundleMetadata(
        categories=list(cfg.categories),
        input_size=cfg.input_size,
        fusion=cfg.fusion,
        embedding_dim=model.embedding_dim,
        crop_margin=crop_margin,
        opset=OPSET,
        model_version=model_version,
        name=name,
        versions={
            "vantage": vantage.__version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxslim": onnxslim.__version__,
            "onnxruntime": ort.__version__,
            "python": platform.python_version(),
        },
        training=training or {},
        test_time=getattr(model, "test_time", "none"),
        ensemble_size=getattr(model, "ensemble_size", 1),
    )
    meta.output_names = list(OUTPUT_NAMES)
    exported = onnx.load_from_string(to_onnx_bytes(model))
    proto = simplify(exported)
    # H as the graph has it: the hypotheses' axis is static (only the batch axis is dynamic)
    hyp = next(o for o in proto.graph.output if o.name == "pose_hypotheses")
    meta.pose_hypotheses = int(hyp.type.tensor_type.shape.dim[1].dim_value)
    check_ops(proto, f"the graph of {type(model).__name__}")
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()
    onnx.checker.check_model(proto, full_check=True)
    onnx_path = out / meta.onnx_file
    onnx_path.write_bytes(proto.SerializeToString())

    images, hints = parity_inputs(len(cfg.categories), cfg.input_size, parity_images)
    parity = check_parity(model, onnx_path, images, hints)
    meta.training = {
        **meta.training,
        "export_parity_max_abs_diff": parity,
        "graph_nodes": {"exported": len(exported.graph.node), "simplified": len(proto.graph.node)},
    }
    save_metadata(out, meta)
    return out
