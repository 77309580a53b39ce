"""Run a model bundle on an inference backend: images (+ boxes, + known categories) → PoseResult.

The only pre-processing path is `vantage.imaging` (decode → crop_square → normalise),
the one training uses, with the bundle's input size, crop margin, mean and std.
The graph contract (checked when the bundle is loaded):

    inputs   image          float32 [N, 3, S, S]  normalised crops, S = input_size (metadata.input_name)
             category_hint  float32 [N, K]        zeros = unknown, one-hot = known (metadata.hint_name)
    outputs  category_probs [N, K], axis_angle [N, 3], rotation [N, 3, 3], embedding [N, D]

Never imports torch (tests/test_serve_no_torch.py checks it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vantage.bundle import BundleError, BundleMetadata, load_metadata
from vantage.calibration import ConfidenceCalibration
from vantage.categories import CATEGORIES
from vantage.geometry import (axis_angle_to_rotation, camera_matrix, checked_gravity, crop_view, rotation_to_axis_angle,
                              rotation_to_quaternion, rotation_to_viewpoint, stand_upright)
from vantage.imaging import (DEFAULT_MAX_PIXELS, ImageError, crop_rectified, crop_square, decode_image,
                             image_size_from_header, normalise, validate_box)
from vantage.serve.backends import Backend, TensorSpec, create_backend
from vantage.serve.results import Hypothesis, PoseResult

Box = Sequence[float]
Camera = Sequence[float]  # pinhole intrinsics (fx, fy, cx, cy) in pixels of the image (EstimateRequest.camera)
Gravity = Sequence[float]  # gravity's direction (x, y, z) in the camera's axes (EstimateRequest.gravity)


class UnknownCategoryError(ValueError):
    """A request named a category the model does not know; the message lists the known ones."""


@dataclass
class PreparedInput:
    """One request turned into network inputs (see `Predictor.prepare`)."""

    tensor: np.ndarray  # float32 (3, S, S)
    hint: np.ndarray  # float32 (K,)
    category: str | None
    decode_ms: float = 0.0
    preprocess_ms: float = 0.0
    turn: np.ndarray | None = None  # (3, 3) from the crop's axes to the camera's (see `prepare`); None = plain crop
    upright: np.ndarray | None = None  # unit gravity when the object stands upright: answers snap to it


class Predictor:
    """A loaded bundle: one inference backend plus the bundle's pre-processing.

    `backend` is a kind of `vantage.serve.backends.BACKENDS` ("auto" picks the fastest
    that works here); `self.backend` names the one running, e.g.
    "onnxruntime/CPUExecutionProvider". `intra_op_threads` 0 lets ONNX Runtime choose;
    `max_batch_size` sizes GPU engine profiles. `max_pixels` bounds decoded images and
    crops. Thread-safe: several threads may call `predict` at once.
    """

    def __init__(
        self,
        bundle_dir: str | Path,
        backend: str = "onnxruntime-cpu",
        intra_op_threads: int = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_batch_size: int = 8,
    ) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.metadata: BundleMetadata = load_metadata(self.bundle_dir)
        self.max_pixels = max_pixels
        meta = self.metadata
        self._check_metadata(meta)
        self.categories: tuple[str, ...] = tuple(meta.categories)
        self.calibration: ConfidenceCalibration | None = meta.calibration()  # None: raw hypothesis scores
        self.input_size = int(meta.input_size)
        self.model_path = self.bundle_dir / meta.onnx_file
        self.engine: Backend = create_backend(backend, self.bundle_dir, meta, intra_op_threads, max_batch_size)
        self.backend: str = self.engine.name
        self._check_graph()

    # -- loading -----------------------------------------------------------------

    def _check_metadata(self, meta: BundleMetadata) -> None:
        where = f"model bundle {str(self.bundle_dir)!r}"
        if not meta.categories:
            raise BundleError(f"{where}: metadata lists no categories")
        unknown = [c for c in meta.categories if c not in CATEGORIES]
        if unknown:
            raise BundleError(f"{where}: unknown categories {unknown}; known: {', '.join(CATEGORIES)}")
        if len(set(meta.categories)) != len(meta.categories):
            raise BundleError(f"{where}: repeated categories in {meta.categories}")
        if int(meta.input_size) <= 0:
            raise BundleError(f"{where}: input_size must be positive, got {meta.input_size}")
        if len(meta.mean) != 3 or len(meta.std) != 3 or any(float(s) <= 0 for s in meta.std):
            raise BundleError(f"{where}: mean and std must be 3 numbers (std > 0), got {meta.mean}, {meta.std}")

    def _check_graph(self) -> None:
        """The graph's inputs and outputs must be the contract's, with the metadata's sizes."""
        where = f"{str(self.model_path)!r}"
        k, s = len(self.categories), self.input_size
        inputs: dict[str, TensorSpec] = self.engine.inputs
        outputs: dict[str, TensorSpec] = self.engine.outputs
        expected_inputs = {self.metadata.input_name: [None, 3, s, s], self.metadata.hint_name: [None, k]}
        if set(inputs) != set(expected_inputs):
            raise BundleError(
                f"{where} has inputs {sorted(inputs)}, expected {sorted(expected_inputs)} (bundle graph contract)"
            )
        expected_outputs = {
            "category_probs": [None, k],
            "axis_angle": [None, 3],
            "rotation": [None, 3, 3],
            "embedding": [None, int(self.metadata.embedding_dim)],
        }
        h = int(self.metadata.pose_hypotheses)
        if h:  # bundles exported before pose hypotheses have none (vantage.bundle.HYPOTHESIS_OUTPUT_NAMES)
            expected_outputs.update({"pose_hypotheses": [None, h, 3], "hypothesis_scores": [None, h]})
        missing = [n for n in expected_outputs if n not in outputs]
        if missing:
            raise BundleError(f"{where} lacks outputs {missing}; it has {sorted(outputs)}")
        for kind, table, expected in (("input", inputs, expected_inputs), ("output", outputs, expected_outputs)):
            for name, want in expected.items():
                arg = table[name]
                if arg.dtype != "float32":
                    raise BundleError(f"{where}: {kind} {name!r} is {arg.dtype}, expected float32")
                dims = list(arg.shape)
                bad = len(dims) != len(want) or any(
                    w is not None and isinstance(d, int) and d != w for d, w in zip(dims, want)
                )
                if bad:
                    shown = ["N" if w is None else w for w in want]
                    raise BundleError(
                        f"{where}: {kind} {name!r} has shape {dims}, expected {shown} from the bundle metadata"
                    )
        self._output_names = list(expected_outputs)  # (probs, axis_angle, rotation, embedding[, hypotheses, scores])

    # -- inference ---------------------------------------------------------------

    def category_hint(self, category: str | None) -> np.ndarray:
        """(K,) float32: zeros for None/"" (unknown), one-hot for a known name."""
        hint = np.zeros(len(self.categories), np.float32)
        if category:
            if category not in self.categories:
                raise UnknownCategoryError(
                    f"unknown category {category!r}; this model knows: {', '.join(self.categories)}"
                )
            hint[self.categories.index(category)] = 1.0
        return hint

    def prepare(self, image: np.ndarray, box: Box | None = None, category: str | None = None,
                camera: Camera | None = None, gravity: Gravity | None = None,
                upright: bool = False) -> PreparedInput:
        """Crop and normalise one RGB uint8 image; ImageError / UnknownCategoryError / CameraError /
        GravityError on bad input.

        With `camera` (fx, fy, cx, cy), the crop is taken from the view of the camera turned to the box
        centre (`crop_rectified`: the object undistorted, as the networks saw renders) and the results'
        rotations, relative to the ray through the box centre, are turned back to its optical axis by
        that turn (vantage.geometry.ray_rotation): POSE.md's R relative to the camera. With `gravity`
        (its direction in the camera's axes), the crop is also rolled about that ray until gravity
        points down in it (vantage.geometry.level_turn: the level cameras the networks learned from),
        and turned back the same way; without a camera the box centre stands for the principal point.
        `upright` (needs gravity): the object stands upright, and the answers are the nearest poses
        that have it so (vantage.geometry.stand_upright)."""
        t0 = time.perf_counter()
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ImageError(f"image must be an RGB uint8 array (H, W, 3), got {desc}")
        hint = self.category_hint(category)
        down = checked_gravity(gravity, upright)
        meta = self.metadata
        if camera is None and down is None:
            turn, crop = None, crop_square(image, box, self.input_size, float(meta.crop_margin), self.max_pixels)
        else:
            x0, y0, x1, y1 = validate_box(box, image.shape[1], image.shape[0])
            k, turn = crop_view(np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0]),
                                None if camera is None else camera_matrix(camera), down)
            crop = crop_rectified(image, box, k, self.input_size, float(meta.crop_margin), self.max_pixels, turn)
        tensor = normalise(crop[None], meta.mean, meta.std)[0]
        return PreparedInput(tensor, hint, category or None, preprocess_ms=(time.perf_counter() - t0) * 1e3, turn=turn,
                             upright=down if upright else None)

    def run(self, prepared: Sequence[PreparedInput]) -> list[PoseResult]:
        """One batched backend call over prepared inputs.

        In a batch, `inference_ms` is the time of the whole batched call (shared).
        """
        if not prepared:
            return []
        t0 = time.perf_counter()
        feeds = {
            self.metadata.input_name: np.stack([p.tensor for p in prepared]).astype(np.float32, copy=False),
            self.metadata.hint_name: np.stack([p.hint for p in prepared]).astype(np.float32, copy=False),
        }
        probs, axis_angle, rotation, embedding, *hypotheses = self.engine.run(self._output_names, feeds)
        t1 = time.perf_counter()
        confidence, alternatives = (self._hypotheses(*hypotheses, self.calibration, prepared) if hypotheses
                                    else ([None] * len(prepared), None))
        inference_ms = (t1 - t0) * 1e3
        rot64 = np.asarray(rotation, np.float64)
        turned = [i for i, p in enumerate(prepared) if p.turn is not None]
        if turned:
            rot64[turned] = self._turned(rot64[turned], [prepared[i] for i in turned])
            rotation, axis_angle = rot64, np.array(axis_angle, np.float64)
            axis_angle[turned] = rotation_to_axis_angle(rot64[turned])
        quats = rotation_to_quaternion(rot64)
        az, el, th = rotation_to_viewpoint(rot64)
        post_ms = (time.perf_counter() - t1) * 1e3 / len(prepared)
        results = []
        for i, p in enumerate(prepared):
            scores = {name: float(probs[i, j]) for j, name in enumerate(self.categories)}
            category = p.category if p.category else self.categories[int(np.argmax(probs[i]))]
            timings = {
                "decode_ms": p.decode_ms,
                "preprocess_ms": p.preprocess_ms,
                "inference_ms": inference_ms,
                "total_ms": p.decode_ms + p.preprocess_ms + inference_ms + post_ms,
            }
            results.append(
                PoseResult(
                    category=category,
                    category_scores=scores,
                    rotation=[[float(v) for v in row] for row in rotation[i]],
                    axis_angle=[float(v) for v in axis_angle[i]],
                    quaternion=[float(v) for v in quats[i]],
                    viewpoint={"azimuth": float(az[i]), "elevation": float(el[i]), "theta": float(th[i])},
                    timings=timings,
                    backend=self.backend,
                    category_given=p.category is not None,
                    embedding=[float(v) for v in embedding[i]],
                    pose_confidence=confidence[i],
                    alternatives=alternatives[i] if alternatives else [],
                    camera_turn=None if p.turn is None else p.turn.tolist(),
                )
            )
        return results

    @staticmethod
    def _turned(rotations: np.ndarray, prepared: Sequence[PreparedInput]) -> np.ndarray:
        """Rotations (N, ..., 3, 3) from the crops' axes to the cameras' (each item's `turn`), stood
        upright where the item asks for it."""
        out = np.stack([p.turn for p in prepared]).reshape(len(prepared), *([1] * (rotations.ndim - 3)), 3, 3) @ rotations
        for i, p in enumerate(prepared):
            if p.upright is not None:
                out[i] = stand_upright(out[i], p.upright)
        return out

    @classmethod
    def _hypotheses(cls, poses: np.ndarray, scores: np.ndarray, calibration: ConfidenceCalibration | None,
                    prepared: Sequence[PreparedInput]) -> tuple[list[float], list[list[Hypothesis]]]:
        """The answers' scores and, per item, the alternatives with probability mass (ranks 1..H-1);
        calibrated into probabilities where the bundle carries a calibration, turned like the answer."""
        if calibration is not None:
            scores = calibration.apply(scores)
        rot = axis_angle_to_rotation(np.asarray(poses[:, 1:], np.float64))
        turned = [i for i, p in enumerate(prepared) if p.turn is not None]
        if turned:
            rot[turned] = cls._turned(rot[turned], [prepared[i] for i in turned])
        quats = rotation_to_quaternion(rot)
        az, el, th = rotation_to_viewpoint(rot)
        alternatives = [
            [Hypothesis(rotation=rot[i, j].tolist(), quaternion=quats[i, j].tolist(),
                        viewpoint={"azimuth": float(az[i, j]), "elevation": float(el[i, j]), "theta": float(th[i, j])},
                        score=float(scores[i, j + 1]))
             for j in range(rot.shape[1]) if scores[i, j + 1] > 0]
            for i in range(len(poses))
        ]
        return [float(v) for v in scores[:, 0]], alternatives

    def predict(
        self,
        images: Sequence[np.ndarray],
        boxes: Sequence[Box | None] | None = None,
        categories: Sequence[str | None] | None = None,
        cameras: Sequence[Camera | None] | None = None,
        gravities: Sequence[Gravity | None] | None = None,
        upright: bool = False,
    ) -> list[PoseResult]:
        """RGB uint8 images (+ optional boxes, known categories, camera intrinsics and gravity
        directions) → results, one batched ORT call; `upright` for all items (see `prepare`).

        Raises ImageError (bad image or box), UnknownCategoryError, CameraError or GravityError for the
        first bad item.
        """
        n = len(images)
        boxes = [None] * n if boxes is None else list(boxes)
        categories = [None] * n if categories is None else list(categories)
        cameras = [None] * n if cameras is None else list(cameras)
        gravities = [None] * n if gravities is None else list(gravities)
        if len(boxes) != n or len(categories) != n or len(cameras) != n or len(gravities) != n:
            raise ValueError(f"{n} images but {len(boxes)} boxes, {len(categories)} categories, "
                             f"{len(cameras)} cameras and {len(gravities)} gravity directions")
        return self.run([self.prepare(*item, upright=upright)
                         for item in zip(images, boxes, categories, cameras, gravities)])

    def prepare_bytes(self, data: bytes, box: Box | None = None, category: str | None = None,
                      camera: Camera | None = None, gravity: Gravity | None = None,
                      upright: bool = False) -> PreparedInput:
        """Decode JPEG/PNG bytes (vantage.imaging.decode_image) and prepare them.

        Bytes whose PNG/JPEG header gives no image size are refused before decoding:
        the pixel limit is checked on that size, so a decoder must never see an image
        whose size is unknown (decompression bombs).
        """
        self.category_hint(category)  # refuse an unknown category, camera or gravity before decoding
        if camera is not None:
            camera_matrix(camera)
        checked_gravity(gravity, upright)
        if data and image_size_from_header(data) is None:
            raise ImageError(
                f"image bytes ({len(data)} bytes) could not be decoded as JPEG or PNG (no readable image header)"
            )
        t0 = time.perf_counter()
        image = decode_image(data, self.max_pixels)
        decode_ms = (time.perf_counter() - t0) * 1e3
        prepared = self.prepare(image, box, category, camera, gravity, upright)
        prepared.decode_ms = decode_ms
        return prepared

    def predict_bytes(self, data: bytes, box: Box | None = None, category: str | None = None,
                      camera: Camera | None = None, gravity: Gravity | None = None,
                      upright: bool = False) -> PoseResult:
        """One encoded image → result (decode time included in the timings)."""
        return self.run([self.prepare_bytes(data, box, category, camera, gravity, upright)])[0]

    def warmup(self) -> None:
        """One dummy inference (a mean-colour image, unknown category) so the first request is not slow."""
        s = self.input_size
        dummy = PreparedInput(np.zeros((3, s, s), np.float32), np.zeros(len(self.categories), np.float32), None)
        self.run([dummy])
