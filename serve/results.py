"""One estimate in its three shapes: `PoseResult` (in process), `EstimateResponse` (wire), JSON dict.

Both ways of predicting (a local Predictor, or a server through `PoseClient`) end
in `result_to_json`, so `vantage predict` prints identical JSON for both: numbers
are rounded to the wire's float32 precision (and written with the shortest decimal
that gives that float32 back) on both paths, so they agree digit for digit.
Needs only numpy and protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vantage.v1 import vantage_pb2

TIMING_KEYS: tuple[str, ...] = ("decode_ms", "preprocess_ms", "queue_ms", "inference_ms", "total_ms")
VIEWPOINT_KEYS: tuple[str, ...] = ("azimuth", "elevation", "theta")


@dataclass
class Hypothesis:
    """A pose the model also found likely: rotation (3×3 nested list), quaternion [w, x, y, z], viewpoint in
    degrees, and its share of the pose probability mass (vantage.train.hypotheses)."""

    rotation: list[list[float]]
    quaternion: list[float]
    viewpoint: dict[str, float]
    score: float


@dataclass
class PoseResult:
    """Category and rotation of one object (conventions of POSE.md).

    `rotation` maps object to OpenCV camera coordinates (3×3 nested list);
    `axis_angle` is log(R) in radians; `quaternion` is [w, x, y, z] with w ≥ 0;
    `viewpoint` holds azimuth/elevation/theta in degrees; `category_scores` maps every
    model category to its probability, in the model's category order; `timings` holds
    TIMING_KEYS in milliseconds. `category` is the given category when
    `category_given`, else the most probable one. `embedding` is the model's
    retrieval embedding (not sent over gRPC: empty for results that came from a server).
    `pose_confidence` is the answer's share of the pose probability mass and
    `alternatives` the other likely poses, most likely first, none without mass
    (both absent / empty for bundles exported before pose hypotheses existed; over
    gRPC, alternatives only as many as the request asked for). `camera_turn` is the
    rotation by which the poses were turned from the crop's axes to the camera's: the ray
    to the box centre (vantage.geometry.ray_rotation) and, with gravity, the roll that
    levelled the crop (vantage.geometry.level_turn); None for a plain crop (in process
    only, like `embedding`).
    """

    category: str
    category_scores: dict[str, float]
    rotation: list[list[float]]
    axis_angle: list[float]
    quaternion: list[float]
    viewpoint: dict[str, float]
    timings: dict[str, float]
    backend: str
    category_given: bool = False
    embedding: list[float] = field(default_factory=list)
    pose_confidence: float | None = None
    alternatives: list[Hypothesis] = field(default_factory=list)
    camera_turn: list[list[float]] | None = None


def wire_float(x: float) -> float:
    """`x` at float32 precision, as the shortest decimal that round-trips (e.g. 0.1, not 0.10000000149)."""
    return float(str(np.float32(x)))


def result_to_json(result: PoseResult) -> dict[str, Any]:
    """The JSON-ready dict printed by `vantage predict` (embedding left out)."""
    return {
        "category": result.category,
        "category_given": bool(result.category_given),
        "category_scores": {name: wire_float(p) for name, p in result.category_scores.items()},
        "rotation": [[wire_float(v) for v in row] for row in result.rotation],
        "axis_angle": [wire_float(v) for v in result.axis_angle],
        "quaternion": [wire_float(v) for v in result.quaternion],
        "viewpoint": {k: wire_float(result.viewpoint[k]) for k in VIEWPOINT_KEYS},
        "timings": {k: round(float(result.timings.get(k, 0.0)), 3) for k in TIMING_KEYS},
        "backend": result.backend,
        **({} if result.pose_confidence is None else {"pose_confidence": wire_float(result.pose_confidence)}),
        **({"alternatives": [hypothesis_to_json(h) for h in result.alternatives]} if result.alternatives else {}),
    }


def hypothesis_to_json(h: Hypothesis) -> dict[str, Any]:
    return {"score": wire_float(h.score), "rotation": [[wire_float(v) for v in row] for row in h.rotation],
            "quaternion": [wire_float(v) for v in h.quaternion],
            "viewpoint": {k: wire_float(h.viewpoint[k]) for k in VIEWPOINT_KEYS}}


def result_to_response(
    result: PoseResult, request_id: str = "", frame_id: int = 0, alternatives: int = 0
) -> vantage_pb2.EstimateResponse:
    """PoseResult → EstimateResponse (rotation flattened row-major), with the first `alternatives` alternatives."""
    q = result.quaternion
    return vantage_pb2.EstimateResponse(
        category=result.category,
        category_scores=[
            vantage_pb2.CategoryScore(name=name, score=float(p)) for name, p in result.category_scores.items()
        ],
        rotation=[float(v) for row in result.rotation for v in row],
        axis_angle=[float(v) for v in result.axis_angle],
        quaternion=vantage_pb2.Quaternion(w=q[0], x=q[1], y=q[2], z=q[3]),
        viewpoint=vantage_pb2.Viewpoint(**{k: float(result.viewpoint[k]) for k in VIEWPOINT_KEYS}),
        timings=vantage_pb2.Timings(
            **{k: float(result.timings.get(k, 0.0)) for k in TIMING_KEYS}, backend=result.backend
        ),
        request_id=request_id,
        frame_id=frame_id,
        category_given=result.category_given,
        pose_confidence=result.pose_confidence,
        alternatives=[
            vantage_pb2.PoseHypothesis(
                rotation=[float(v) for row in h.rotation for v in row],
                quaternion=vantage_pb2.Quaternion(w=h.quaternion[0], x=h.quaternion[1], y=h.quaternion[2],
                                                  z=h.quaternion[3]),
                viewpoint=vantage_pb2.Viewpoint(**{k: float(h.viewpoint[k]) for k in VIEWPOINT_KEYS}),
                score=float(h.score),
            )
            for h in result.alternatives[:alternatives]
        ],
    )


def response_to_result(response: vantage_pb2.EstimateResponse) -> PoseResult:
    """EstimateResponse → PoseResult; ValueError for a stream error frame or a malformed answer."""
    if response.error or response.error_code:
        raise ValueError(f"the response is an error (code {response.error_code}): {response.error}")
    if len(response.rotation) != 9 or len(response.axis_angle) != 3:
        raise ValueError(
            f"malformed response: {len(response.rotation)} rotation and {len(response.axis_angle)} "
            "axis-angle numbers (expected 9 and 3)"
        )
    r = list(response.rotation)
    q = response.quaternion
    return PoseResult(
        category=response.category,
        category_scores={s.name: s.score for s in response.category_scores},
        rotation=[r[0:3], r[3:6], r[6:9]],
        axis_angle=list(response.axis_angle),
        quaternion=[q.w, q.x, q.y, q.z],
        viewpoint={k: getattr(response.viewpoint, k) for k in VIEWPOINT_KEYS},
        timings={k: getattr(response.timings, k) for k in TIMING_KEYS},
        backend=response.timings.backend,
        category_given=response.category_given,
        pose_confidence=response.pose_confidence if response.HasField("pose_confidence") else None,
        alternatives=[
            Hypothesis(rotation=[list(h.rotation[0:3]), list(h.rotation[3:6]), list(h.rotation[6:9])],
                       quaternion=[h.quaternion.w, h.quaternion.x, h.quaternion.y, h.quaternion.z],
                       viewpoint={k: getattr(h.viewpoint, k) for k in VIEWPOINT_KEYS}, score=h.score)
            for h in response.alternatives
        ],
    )
