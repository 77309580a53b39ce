"""Image-graphics search on the wire: a network result → view-index search → `vantage.v1.Retrieval`.

The servicer (serve/server.py) asks `Retrievers` for the view index of the predictor
it serves (``BUNDLE/index``, loaded once per predictor, so a reloaded model brings its
own) and delegates `Retrieve` and `EstimateRequest.top_k` to it; `RETRIEVAL_STATUS`
maps this module's errors to gRPC status codes. The best `wireframe_models` models
carry their wireframe only when asked: a few kilobytes each, too much for every model
of every streamed frame. Torch-free.
"""

from __future__ import annotations

import threading
import time
import weakref
from pathlib import Path

import grpc
import numpy as np

from vantage.geometry import rotation_to_quaternion, rotation_to_viewpoint
from vantage.serve.engine import Predictor
from vantage.serve.results import PoseResult
from vantage.serve.retrieval import (
    INDEX_DIR_NAME,
    POSE_K,
    BundleIdentity,
    CategoryNotIndexedError,
    IndexMismatchError,
    NeighbourPose,
    ViewHit,
    ViewIndex,
    fused_pose,
    knn_pose,
    rank_models,
)
from vantage.v1 import vantage_pb2

DEFAULT_TOP_K = 10
MAX_TOP_K = 100
MODEL_POOL = 50  # models are ranked from at least this many nearest views


class NoIndexError(RuntimeError):
    """Retrieval was asked of a server that has no view index."""


class TopKError(ValueError):
    """A request asked for more views than a search returns."""


# Errors of retrieval requests and their gRPC status (the server's STATUS_OF_ERROR includes them).
RETRIEVAL_STATUS: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (NoIndexError, grpc.StatusCode.FAILED_PRECONDITION),
    (IndexMismatchError, grpc.StatusCode.FAILED_PRECONDITION),
    (CategoryNotIndexedError, grpc.StatusCode.NOT_FOUND),
    (TopKError, grpc.StatusCode.INVALID_ARGUMENT),
)


def _viewpoint(rotation: np.ndarray) -> vantage_pb2.Viewpoint:
    az, el, th = rotation_to_viewpoint(rotation)
    return vantage_pb2.Viewpoint(azimuth=float(az), elevation=float(el), theta=float(th))


def view_message(hit: ViewHit) -> vantage_pb2.RetrievedView:
    """A retrieved view on the wire."""
    return vantage_pb2.RetrievedView(
        view_id=hit.label, model_id=hit.model_id, category=hit.category,
        viewpoint=vantage_pb2.Viewpoint(azimuth=hit.azimuth, elevation=hit.elevation, theta=hit.theta),
        rotation=hit.rotation.ravel().tolist(), similarity=hit.similarity, thumbnail=hit.thumbnail,
    )


def symmetry_message(symmetry: dict | None) -> vantage_pb2.Symmetry | None:
    """A model's recorded turns onto itself on the wire; None (field left unset) when the index has none."""
    if symmetry is None:
        return None
    return vantage_pb2.Symmetry(turns_deg=symmetry["angles"], continuous=symmetry["continuous"])


def pose_message(pose: NeighbourPose, turn: np.ndarray | None = None) -> vantage_pb2.NeighbourPose:
    """A neighbour pose on the wire, with the viewpoint and quaternion clients would otherwise derive;
    `turn` takes it from the crop's ray to the camera's axis, like the answer (PoseResult.camera_turn)."""
    rotation = pose.rotation if turn is None else turn @ pose.rotation
    w, x, y, z = (float(v) for v in rotation_to_quaternion(rotation))
    return vantage_pb2.NeighbourPose(
        rotation=rotation.ravel().tolist(), viewpoint=_viewpoint(rotation),
        quaternion=vantage_pb2.Quaternion(w=w, x=x, y=y, z=z), support=pose.support, count=pose.count,
        method=pose.method,
    )


class Retriever:
    """A bundle's view index, answering searches for network results of that bundle."""

    def __init__(self, index: ViewIndex) -> None:
        self.index = index
        d = index.projection.describe()
        self.info = vantage_pb2.ViewIndexInfo(views=len(index), models=len(index.model_ids),
                                              categories=index.categories, descriptor=d["kind"], dim=d["dim"],
                                              wireframes=index.describe()["wireframes"])

    @classmethod
    def for_bundle(cls, bundle_dir: str | Path, identity: BundleIdentity) -> "Retriever | None":
        """The retriever of ``BUNDLE/index`` when that folder exists, else None; an index built
        with another bundle raises IndexMismatchError (a server must not serve wrong neighbours)."""
        root = Path(bundle_dir) / INDEX_DIR_NAME
        return cls(ViewIndex.load(root, identity)) if root.is_dir() else None

    def retrieve(self, result: PoseResult, top_k: int, category: str | None,
                 wireframe_models: int = 0) -> vantage_pb2.Retrieval:
        """Search the index with a network result's embedding; `top_k` 0 means DEFAULT_TOP_K; the best
        `wireframe_models` models carry the wireframes the index has of them."""
        top_k = int(top_k) or DEFAULT_TOP_K
        if top_k > MAX_TOP_K:
            raise TopKError(f"top_k is {top_k}; at most {MAX_TOP_K} views are returned")
        t0 = time.perf_counter()
        hits = self.index.search(np.asarray(result.embedding, np.float32), max(top_k, MODEL_POOL, POSE_K),
                                 category or None)
        search_ms = (time.perf_counter() - t0) * 1e3
        out = vantage_pb2.Retrieval(views=[view_message(h) for h in hits[:top_k]], search_ms=search_ms)
        for rank, m in enumerate(rank_models(hits)):
            wire = self.index.wireframe(m.model_id) if rank < wireframe_models else None
            out.models.append(vantage_pb2.RetrievedModel(
                model_id=m.model_id, category=m.category, score=m.score, best_view=view_message(m.best_view),
                views=m.views, wireframe=[] if wire is None else wire.ravel().tolist(),
                symmetry=symmetry_message(self.index.symmetry(m.model_id))))
        if hits:
            # the rendered views are seen along their optical axes, as the crop along its ray: poses are
            # compared and averaged there, then turned like the answer when the request gave its camera
            turn = None if result.camera_turn is None else np.asarray(result.camera_turn)
            rotation = np.asarray(result.rotation) if turn is None else turn.T @ np.asarray(result.rotation)
            out.knn_pose.CopyFrom(pose_message(knn_pose(hits), turn))
            out.fused_pose.CopyFrom(pose_message(fused_pose(rotation, hits), turn))
        return out


class Retrievers:
    """The retriever of each served predictor, loaded on first use and dropped with the predictor."""

    def __init__(self) -> None:
        self._of: "weakref.WeakKeyDictionary[Predictor, Retriever | None]" = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, predictor: Predictor) -> Retriever | None:
        """The retriever of ``predictor.bundle_dir/index``, None without one; IndexMismatchError when
        another bundle built it."""
        with self._lock:
            if predictor not in self._of:
                identity = BundleIdentity.of(predictor.bundle_dir, predictor.metadata)
                self._of[predictor] = Retriever.for_bundle(predictor.bundle_dir, identity)
            return self._of[predictor]


def require(retriever: Retriever | None) -> Retriever:
    """The retriever, or NoIndexError saying how to build an index."""
    if retriever is None:
        raise NoIndexError(f"this server has no view index: build one with `vantage index --model BUNDLE` "
                           f"(loaded from BUNDLE/{INDEX_DIR_NAME} at start)")
    return retriever


def estimate_request_of(request: vantage_pb2.RetrieveRequest) -> vantage_pb2.EstimateRequest:
    """A Retrieve request as the Estimate request that runs it (top_k 0 → DEFAULT_TOP_K)."""
    out = vantage_pb2.EstimateRequest(image=request.image, category=request.category,
                                      request_id=request.request_id, top_k=request.top_k or DEFAULT_TOP_K,
                                      wireframe_models=request.wireframe_models)
    if request.HasField("box"):
        out.box.CopyFrom(request.box)
    return out


def retrieve_response(response: vantage_pb2.EstimateResponse) -> vantage_pb2.RetrieveResponse:
    """An Estimate response with retrieval → the Retrieve response (retrieval moved out of the estimate)."""
    out = vantage_pb2.RetrieveResponse(retrieval=response.retrieval, request_id=response.request_id)
    out.estimate.CopyFrom(response)
    out.estimate.ClearField("retrieval")
    return out
