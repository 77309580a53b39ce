"""`vantage predict`: image files → JSON dicts, with a local bundle or through a server.

Both paths give the same keys and values (`results.result_to_json`), apart from the
timings. A file that cannot be read or decoded, or whose image does not contain
the box, gives `{"file": ..., "error": ...}` (the same message on both paths)
instead of ending the batch; an unknown category or an unreachable server raise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import grpc
import numpy as np

from vantage.imaging import ImageError
from vantage.serve.results import response_to_result, result_to_json

Box = Sequence[float]


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


def _local(paths: list[Path], model: Any, box: Box | None, category: str | None, batch_size: int, backend: str):
    from vantage.serve.engine import Predictor, UnknownCategoryError  # noqa: PLC0415

    predictor = model if isinstance(model, Predictor) else Predictor(model, backend=backend)
    _check_category(category, predictor.categories)
    out: list[dict[str, Any] | None] = [None] * len(paths)
    for start in range(0, len(paths), batch_size):
        ready, slots = [], []
        for i in range(start, min(start + batch_size, len(paths))):
            try:
                ready.append(predictor.prepare_bytes(_read(paths[i]), box, category))
                slots.append(i)
            except (ImageError, UnknownCategoryError) as exc:
                out[i] = {"file": str(paths[i]), "error": str(exc)}
        for i, result in zip(slots, predictor.run(ready)):
            out[i] = {"file": str(paths[i]), **result_to_json(result)}
    return out


def _remote(
    paths: list[Path], server: str, box: Box | None, category: str | None, timeout: float, wait_s: float, client_options
):
    from vantage.serve.client import PoseClient  # noqa: PLC0415

    out = []
    with PoseClient(server, timeout=timeout, **client_options) as client:
        client.wait_ready(timeout=wait_s)
        _check_category(category, list(client.model_info().categories))
        for path in paths:
            try:
                response = client.estimate(_read(path), box, category, request_id=path.name)
            except ImageError as exc:
                out.append({"file": str(path), "error": str(exc)})
                continue
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                out.append({"file": str(path), "error": exc.details()})
                continue
            out.append({"file": str(path), **result_to_json(response_to_result(response))})
    return out


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
    client_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Estimate every image file; exactly one of `server` ("host:port") or `model` (bundle folder or Predictor).

    Returns one dict per path, in order: `file`, `category`, `category_given`,
    `category_scores` (name → probability, model order), `rotation` (3×3),
    `axis_angle`, `quaternion` ([w, x, y, z], w ≥ 0), `viewpoint` ({azimuth,
    elevation, theta} degrees), `timings` (ms), `backend`; or `file` and `error`.
    `box` (x_min, y_min, x_max, y_max pixels) and `category` apply to every file.
    Locally the files are run in batches of `batch_size` on `backend`; through a server one
    Estimate call per file (deadline `timeout`, after waiting up to `wait_s` for SERVING),
    with `client_options` passed to `PoseClient` (token, TLS files).
    """
    if (server is None) == (model is None):
        raise ValueError("give exactly one of server ('host:port') or model (a bundle folder)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    files = [Path(p) for p in paths]
    category = category or None
    if box is not None:
        # The wire carries float32 boxes: round here too, so that both paths crop identically.
        box = tuple(float(np.float32(v)) for v in box)
    if model is not None:
        return _local(files, model, box, category, batch_size, backend)
    return _remote(files, server, box, category, timeout, wait_s, client_options or {})
