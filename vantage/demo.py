"""`vantage demo`: live pose overlay on camera, video or synthetic frames.

Frames go to a server through `EstimateStream` (the camera case: one stream, frames
in order) or to an in-process bundle, and come back drawn: the object's axes from
the box centre, the wireframe of the best retrieved 3D model in the estimated
rotation, category and score, frames per second and latency, and which box mode
found the object. `--headless --out demo.mp4` writes the annotated video instead of
opening a window (the pip wheel `opencv-python-headless` has no GUI).

The wireframe comes from the view index the model is served with (``BUNDLE/index``):
each frame asks for the nearest view (top_k 1) and the best model's wireframe, through
the stream's Estimate requests or the same `Retriever` in process, so both paths
draw the same thing. It is fitted to the box in weak perspective
(`vantage.overlay.fit_to_box`: no camera distance is estimated), or, when the camera's
intrinsics are known (`--camera`, or the synthetic source's own), sent with every frame so
that the pose is relative to the optical axis (EstimateRequest.camera) and drawn in full
perspective (`vantage.overlay.perspective_to_box`): an object near the edge of a wide frame
then gets the pose and the overlay the camera saw, not those of a centred one. A camera that knows
which way is down (`--gravity GX GY GZ`: fixed on a robot or a tripod; `--synthetic-gravity`: the
synthetic frames' own, as a phone's accelerometer would give) sends it with every frame
(EstimateRequest.gravity), and `--upright` stands the object against it: the crop is levelled and
elevation and roll come from gravity (docs/API.md). Without an index,
without wireframes in it, or without the requested category in it, the demo draws the
axes only and says why on every frame and in the log.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from vantage.frame_sources import Frame, choose_box, is_camera, synthetic_frames, video_frames
from vantage.geometry import geodesic_distance, gravity_direction
from vantage.overlay import draw_axes, draw_wireframe, label
from vantage.serve.results import PoseResult
from vantage.v1 import vantage_pb2

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    """What to read, where to estimate, how to find the box and where to show it."""

    source: str = "synthetic"
    server: str | None = None
    model: str | None = None
    box_mode: str = "source"
    box: tuple[float, float, float, float] | None = None
    category: str | None = None
    headless: bool = False
    out: str | None = None
    max_frames: int | None = None
    synthetic_category: str = "car"
    synthetic_off_axis: float = 0.0  # degrees between the optical axis and the synthetic object (circling)
    camera: tuple[float, float, float, float] | None = None  # (fx, fy, cx, cy); else a synthetic frame's own
    # gravity in the camera's axes (x right, y down, z forward) sent with every frame: a fixed camera's, or with
    # `synthetic_gravity` each synthetic frame's own; `upright` stands the object against it (EstimateRequest)
    gravity: tuple[float, float, float] | None = None
    synthetic_gravity: bool = False
    upright: bool = False
    fps: float = 15.0

    def __post_init__(self) -> None:
        if self.synthetic_gravity and self.gravity is not None:
            raise ValueError("give one gravity: a fixed one (--gravity) or the synthetic frames' own (--synthetic-gravity)")
        if self.synthetic_gravity and self.source != "synthetic":
            raise ValueError(f"only synthetic frames know their gravity; for {self.source!r} give the camera's "
                             f"(--gravity GX GY GZ)")
        if self.upright and self.gravity is None and not self.synthetic_gravity:
            raise ValueError("upright needs gravity: --gravity GX GY GZ, or --synthetic-gravity")
        if self.gravity is not None:
            gravity_direction(self.gravity)  # a bad vector fails here, not on every frame


@dataclass
class Estimate:
    """One estimated frame; `model_id` and `wireframe` (segments (S, 2, 3) in its object frame) are the
    best retrieved 3D model's; `note` says why no wireframe is drawn ("" when one is)."""

    frame: Frame
    box: tuple[float, float, float, float]
    category: str
    score: float
    rotation: np.ndarray
    latency_ms: float
    model_id: str = ""
    wireframe: np.ndarray | None = None
    note: str = ""
    # P(error < the bundle's calibrated threshold), or the answer's raw share of the pose probability
    # mass for an uncalibrated bundle; None for bundles exported before pose hypotheses
    pose_confidence: float | None = None
    camera: tuple[float, float, float, float] | None = None  # sent with the frame: `rotation` is then POSE.md's


def wireframe_problem(index: vantage_pb2.ViewIndexInfo | None, category: str | None) -> str:
    """Why no retrieved wireframe can be drawn with this view index ("" when one can): asking a server
    for retrieval it cannot give would fail every frame."""
    if index is None:
        return "no view index: axes only (build one with `vantage index --model BUNDLE`)"
    if not index.wireframes:
        return "the view index has no wireframes (built before them): axes only, rebuild it with `vantage index`"
    if category and category not in index.categories:
        return f"the view index has no {category} models: axes only"
    return ""


def best_model(retrieval: vantage_pb2.Retrieval) -> tuple[str, np.ndarray | None]:
    """The best retrieved model's id and wireframe segments (S, 2, 3), None when it came without one."""
    if not retrieval.models:
        return "", None
    best = retrieval.models[0]
    segments = np.asarray(best.wireframe, np.float32).reshape(-1, 2, 3)
    return best.model_id, segments if len(segments) else None


def frame_camera(frame: Frame, cfg: DemoConfig) -> tuple[float, float, float, float] | None:
    """The intrinsics sent with a frame: the user's (`--camera`), else the frame's own (synthetic)."""
    return cfg.camera if cfg.camera is not None else frame.camera


def frame_gravity(frame: Frame, cfg: DemoConfig) -> tuple[float, float, float] | None:
    """The gravity sent with a frame: the fixed camera's (`--gravity`), the synthetic frame's own
    (`--synthetic-gravity`), or none."""
    return frame.gravity if cfg.synthetic_gravity else cfg.gravity


def _estimate(frame: Frame, box: tuple, result: PoseResult, retrieval: vantage_pb2.Retrieval | None, problem: str,
              started: float, camera: tuple | None) -> Estimate:
    """A network result (PoseResult) and its retrieval, if asked, as the demo's estimate of a frame."""
    model_id, wire = best_model(retrieval) if retrieval is not None else ("", None)
    note = problem or ("" if wire is not None else f"no wireframe of {model_id or 'any model'}: axes only")
    return Estimate(frame, box, result.category, result.category_scores[result.category], np.array(result.rotation),
                    (time.perf_counter() - started) * 1000.0, model_id, wire, note, result.pose_confidence, camera)


def _announce(problem: str) -> str:
    """Log why there is no wireframe once; the frames say it every time."""
    if problem:
        log.warning("demo: %s", problem)
    return problem


def _frames(cfg: DemoConfig) -> Iterator[Frame]:
    if cfg.source == "synthetic":
        return synthetic_frames(cfg.synthetic_category, frames=cfg.max_frames or 48, off_axis_deg=cfg.synthetic_off_axis)
    return video_frames(cfg.source, cfg.max_frames)


def _encode(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("could not encode a frame as JPEG")
    return buf.tobytes()


def estimate_remote(cfg: DemoConfig, frames: Iterable[Frame], skipped: Counter | None = None) -> Iterator[Estimate]:
    """Stream frames to a server; yields estimates in frame order, skipping (and counting in `skipped`)
    frames it refused or dropped as stale. Only a live camera lets the server drop stale frames (the
    camera case): a video file or the synthetic source asks for every frame (`keep_frame`), since
    its frames wait for us and a measured run must see them all."""
    from vantage.serve.client import PoseClient
    from vantage.serve.protocol import make_request
    from vantage.serve.results import response_to_result

    pending: dict[int, tuple[Frame, tuple, float, tuple | None]] = {}
    live = is_camera(cfg.source)
    skipped = Counter() if skipped is None else skipped

    def requests(retrieve: bool):
        for frame in frames:
            box, camera = choose_box(frame, cfg.box_mode, cfg.box), frame_camera(frame, cfg)
            pending[frame.index] = (frame, box, time.perf_counter(), camera)
            request = make_request(_encode(frame.image), box, cfg.category, "", frame.index, keep_frame=not live,
                                   camera=camera, gravity=frame_gravity(frame, cfg), upright=cfg.upright)
            if retrieve:  # the nearest view and the best model's wireframe
                request.top_k, request.wireframe_models = 1, 1
            yield request

    with PoseClient(cfg.server, timeout=None) as client:
        client.wait_ready(timeout=60)
        info = client.model_info()
        problem = _announce(wireframe_problem(info.view_index if info.HasField("view_index") else None, cfg.category))
        for response in client.stream(requests(not problem)):
            frame, box, sent, camera = pending.pop(response.frame_id)
            if response.error or response.dropped:
                skipped["dropped" if response.dropped else "refused"] += 1
                continue
            retrieval = response.retrieval if response.HasField("retrieval") else None
            yield _estimate(frame, box, response_to_result(response), retrieval, problem, sent, camera)


def estimate_local(cfg: DemoConfig, frames: Iterable[Frame]) -> Iterator[Estimate]:
    """Run the bundle (and its view index, when it has one) in-process with the server's code path."""
    from vantage.serve.engine import Predictor
    from vantage.serve.retrieval_api import Retrievers

    predictor = Predictor(cfg.model)
    retriever = Retrievers().get(predictor)
    problem = _announce(wireframe_problem(retriever.info if retriever else None, cfg.category))
    for frame in frames:
        box, camera = choose_box(frame, cfg.box_mode, cfg.box), frame_camera(frame, cfg)
        t = time.perf_counter()
        r = predictor.predict([frame.image], [box], [cfg.category], [camera], [frame_gravity(frame, cfg)],
                              cfg.upright)[0]
        retrieval = None if problem else retriever.retrieve(r, 1, cfg.category, 1)
        yield _estimate(frame, box, r, retrieval, problem, t, camera)


def annotate(est: Estimate, fps: float, box_mode: str) -> np.ndarray:
    """The frame with the box, the retrieved model's wireframe, the estimated (solid) and, when known,
    true (dashed) axes, a caption on top and the wireframe's model (or why there is none) below;
    in perspective when the estimate was made with the camera's intrinsics."""
    img = est.frame.image.copy()
    x0, y0, x1, y1 = est.box
    cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), (255, 220, 0), 1)
    if est.wireframe is not None:
        img = draw_wireframe(img, est.wireframe, est.rotation, est.box, camera=est.camera)
    origin = ((x0 + x1) / 2, (y0 + y1) / 2)
    scale = 0.45 * max(x1 - x0, y1 - y0)
    if est.frame.rotation is not None:
        img = draw_axes(img, est.frame.rotation, 1, dashed=True, origin=origin, scale_px=scale, camera=est.camera)
    img = draw_axes(img, est.rotation, 2, origin=origin, scale_px=scale, camera=est.camera)
    pose = "" if est.pose_confidence is None else f" pose {est.pose_confidence:.2f}"
    text = f"{est.category} {est.score:.2f}{pose} | {fps:.1f} fps | {est.latency_ms:.1f} ms | box: {box_mode}"
    cv2.rectangle(img, (0, 0), (img.shape[1], 16), (0, 0, 0), -1)
    cv2.putText(img, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return label(img, est.note or f"model: {est.model_id}")


def run_demo(cfg: DemoConfig) -> dict:
    """Run until the source ends (or `q` in the window); returns and writes a summary."""
    if bool(cfg.server) == bool(cfg.model):
        raise ValueError("give exactly one of --server HOST:PORT or --model BUNDLE")
    if not cfg.headless and not hasattr(cv2, "imshow"):
        raise RuntimeError("this OpenCV build has no GUI: use --headless --out demo.mp4")
    frames = _frames(cfg)
    skipped: Counter = Counter()
    stream = estimate_remote(cfg, frames, skipped) if cfg.server else estimate_local(cfg, frames)
    writer, errors, latencies, t0, n = None, [], [], time.perf_counter(), 0
    models, notes = [], []
    for est in stream:
        n += 1
        fps = n / max(time.perf_counter() - t0, 1e-6)
        latencies.append(est.latency_ms)
        if est.wireframe is not None:
            models.append(est.model_id)
        else:
            notes.append(est.note)
        if est.frame.rotation is not None:
            errors.append(float(geodesic_distance(est.rotation, est.frame.rotation)))
        img = annotate(est, fps, cfg.box_mode)
        if cfg.out:
            if writer is None:
                Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
                writer = cv2.VideoWriter(cfg.out, cv2.VideoWriter_fourcc(*"mp4v"), cfg.fps, img.shape[1::-1])
            writer.write(img[:, :, ::-1])
        if not cfg.headless:
            cv2.imshow("vantage", img[:, :, ::-1])
            if cv2.waitKey(1) & 0xFF == ord("q"):
                break
    if writer is not None:
        writer.release()
    elapsed = time.perf_counter() - t0
    summary = {
        "frames": n,
        "frames_skipped": dict(skipped),  # {"dropped": stale frames of a live camera, "refused": errors}
        "fps": n / elapsed if elapsed > 0 else 0.0,
        "latency_ms_p50": float(np.median(latencies)) if latencies else None,
        "median_pose_error_deg": float(np.median(errors)) if errors else None,
        "pose_errors_deg": errors,
        "box_mode": cfg.box_mode,
        "camera": "given" if cfg.camera is not None else ("synthetic" if cfg.source == "synthetic" else None),
        "gravity": "given" if cfg.gravity is not None else ("synthetic" if cfg.synthetic_gravity else None),
        "upright": cfg.upright,
        "wireframe_frames": len(models),
        "wireframe_models": sorted(set(models)),
        "wireframe_notes": sorted(set(notes)),
        "video": cfg.out,
    }
    if cfg.out:
        Path(cfg.out).with_suffix(".json").write_text(json.dumps(summary, indent=2))
    return summary
