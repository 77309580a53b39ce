"""`vantage predict`: image files → JSON dicts, with a local bundle or through a server.

Both paths give the same keys and values (`results.result_to_json`), apart from the
timings. A file that cannot be read or decoded, or whose image does not contain
the box, gives `{"file": ..., "error": ...}` (the same message on both paths)
instead of ending the batch; an unknown category, bad camera intrinsics or gravity, or an
unreachable server raise.
Through a server the files' calls run concurrently on one asyncio channel, so that
the server can batch them; the rows still come in file order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Sequence

import grpc
import numpy as np

from vantage.geometry import camera_matrix, checked_gravity
from vantage.imaging import ImageError
from vantage.serve.aio_client import AsyncPoseClient
from vantage.serve.results import response_to_result, result_to_json
from vantage.serve.security import ClientSecurity

Box = Sequence[float]
Camera = Sequence[float]  # (fx, fy, cx, cy) pixels
Sensors = dict[str, Any]  # what the device knows besides the image: camera, gravity, upright (EstimateRequest)


def _read(path: Path) -> bytes:
    """The file's bytes; ImageError (per-file failure) when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None


def _check_category(category: str | None, known: Sequence[str]) -> None:
    from vantage.serve.engine import UnknownCategoryError  # noqa: PLC0415 (keeps ORT out of the server path)

    if category and category not in known:
        raise UnknownCategoryError(f"unknown category {category!r}; this model knows: {', '.join(known)}")


def _local(paths: list[Path], model: Any, box: Box | None, category: str | None, batch_size: int, backend: str,
           alternatives: int, sensors: Sensors):
    from vantage.serve.engine import Predictor, UnknownCategoryError  # noqa: PLC0415

    predictor = model if isinstance(model, Predictor) else Predictor(model, backend=backend)
    _check_category(category, predictor.categories)
    out: list[dict[str, Any] | None] = [None] * len(paths)
    for start in range(0, len(paths), batch_size):
        ready, slots = [], []
        for i in range(start, min(start + batch_size, len(paths))):
            try:
                ready.append(predictor.prepare_bytes(_read(paths[i]), box, category, **sensors))
                slots.append(i)
            except (ImageError, UnknownCategoryError) as exc:
                out[i] = {"file": str(paths[i]), "error": str(exc)}
        for i, result in zip(slots, predictor.run(ready)):
            result.alternatives = result.alternatives[:alternatives]  # as many as a server would send
            out[i] = {"file": str(paths[i]), **result_to_json(result)}
    return out


async def _estimate_file(
    client: AsyncPoseClient, slots: asyncio.Semaphore, path: Path, box: Box | None, category: str | None,
    alternatives: int, sensors: Sensors,
) -> dict[str, Any]:
    """One file's JSON dict, or its `{"file", "error"}` row for a per-file failure (unreadable, INVALID_ARGUMENT)."""
    async with slots:
        try:
            response = await client.estimate(_read(path), box, category, request_id=path.name,
                                             alternatives=alternatives, **sensors)
        except ImageError as exc:
            return {"file": str(path), "error": str(exc)}
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            return {"file": str(path), "error": exc.details()}
    return {"file": str(path), **result_to_json(response_to_result(response))}


async def _remote(
    paths: list[Path], server: str, box: Box | None, category: str | None, timeout: float, wait_s: float,
    concurrency: int, client_options: ClientSecurity, alternatives: int, sensors: Sensors,
) -> list[dict[str, Any]]:
    """Up to `concurrency` Estimate calls in flight on one channel (a server batches them); rows in file order."""
    async with AsyncPoseClient(server, timeout=timeout, **client_options) as client:
        await client.wait_ready(timeout=wait_s)
        _check_category(category, list((await client.model_info()).categories))
        slots = asyncio.Semaphore(concurrency)
        tasks = [asyncio.ensure_future(_estimate_file(client, slots, path, box, category, alternatives, sensors))
                 for path in paths]
        try:
            return list(await asyncio.gather(*tasks))
        finally:  # a call that failed for good ends the batch: stop the others before the channel closes
            for task in tasks:
                task.cancel()


def predict_files(
    paths: Sequence[str | Path],
    server: str | None = None,
    model: Any = None,
    box: Box | None = None,
    category: str | None = None,
    *,
    timeout: float = 30.0,
    wait_s: float = 10.0,
    batch_size: int = 16,
    backend: str = "onnxruntime-cpu",
    concurrency: int = 4,
    client_options: ClientSecurity | None = None,
    alternatives: int = 0,
    camera: Camera | None = None,
    gravity: Sequence[float] | None = None,
    upright: bool = False,
) -> list[dict[str, Any]]:
    """Estimate every image file; exactly one of `server` ("host:port") or `model` (bundle folder or Predictor).

    Returns one dict per path, in order: `file`, `category`, `category_given`,
    `category_scores` (name → probability, model order), `rotation` (3×3),
    `axis_angle`, `quaternion` ([w, x, y, z], w ≥ 0), `viewpoint` ({azimuth,
    elevation, theta} degrees), `timings` (ms), `backend`, `pose_confidence` (P(error <
    ModelInfo.confidence_within_deg) for a calibrated bundle, else the answer's share of the
    pose probability mass; models exported with hypotheses) and,
    with `alternatives` > 0, up to that many `alternatives` (score, rotation,
    quaternion, viewpoint); or `file` and `error`.
    `box` (x_min, y_min, x_max, y_max pixels), `category` and `camera` (fx, fy, cx, cy pixels: the
    pose is turned to the camera's optical axis, EstimateRequest.camera), `gravity` (x, y, z in
    the camera's axes: the crop is levelled) and `upright` (the object stands against gravity)
    apply to every file.
    Locally the files are run in batches of `batch_size` on `backend`; through a server one
    Estimate call per file, `concurrency` of them in flight (deadline `timeout` each, retries
    included, after waiting up to `wait_s` for SERVING), by an AsyncPoseClient given
    `client_options` (token, TLS files). That path runs its own event loop: call it from
    synchronous code.
    """
    if (server is None) == (model is None):
        raise ValueError("give exactly one of server ('host:port') or model (a bundle folder)")
    if batch_size < 1 or concurrency < 1:
        raise ValueError(f"batch_size and concurrency must be at least 1, got {batch_size} and {concurrency}")
    if alternatives < 0:
        raise ValueError(f"alternatives must be 0 or more, got {alternatives}")
    files = [Path(p) for p in paths]
    category = category or None
    # The wire carries float32 boxes and intrinsics: round here too, so that both paths answer identically.
    if box is not None:
        box = tuple(float(np.float32(v)) for v in box)
    if camera is not None:
        camera_matrix(camera)  # CameraError before any file is read
        camera = tuple(float(np.float32(v)) for v in camera)
    if checked_gravity(gravity, upright) is not None:  # GravityError before any file is read
        gravity = tuple(float(np.float32(v)) for v in gravity)
    sensors = {"camera": camera, "gravity": gravity, "upright": upright}
    if model is not None:
        return _local(files, model, box, category, batch_size, backend, alternatives, sensors)
    return asyncio.run(_remote(files, server, box, category, timeout, wait_s, concurrency, client_options or {},
                               alternatives, sensors))
