"""`vantage index`: render views of 3D models, embed them with a bundle's graph, build the view index.

Viewpoints follow the image-graphics paper: the vertices of a subdivided icosahedron
(162 directions at subdivision 2, about 20° apart), optionally only the upper
hemisphere, each rendered `backgrounds` times (each render draws its own background,
light and colour) and at each of the in-plane `tilts`. The views are embedded
through the bundle's graph by the serving `Predictor` (same crop, same ONNX Runtime
path as a query), projected (PCA fitted on these views, or raw) and added to an
hnswlib graph (`vantage.serve.retrieval.ViewIndex`). Each model's wireframe
(`vantage.train.wireframes`, at most `wireframe_segments` segments) is extracted by
the process that renders it (the mesh is loaded once) and saved with the index, so
clients can draw the retrieved model in the estimated pose, and so are its turns about
its up axis that map it onto itself (`vantage.train.symmetry`), so clients know which of
its poses no image can tell apart. `add_models` renders new
models with the recorded settings and adds them without a rebuild (the PCA is kept).
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from vantage.imaging import crop_square
from vantage.serve.engine import Predictor
from vantage.serve.results import PoseResult
from vantage.serve.retrieval import (
    MAX_DESCRIPTOR_DIM,
    BundleIdentity,
    HnswParams,
    Projection,
    ViewIndex,
    ViewIndexError,
)
from vantage.train.meshes import MeshError, ModelSpec, scan_repository
from vantage.train.render import MeshRenderer, RenderConfig, icosphere_directions, sample_viewpoints
from vantage.train.symmetry import detect_z_symmetry
from vantage.train.wireframes import MAX_SEGMENTS, wireframe

THUMBS_DIR = "thumbs"


@dataclass(frozen=True)
class IndexConfig:
    """How views are rendered and indexed; recorded in index.json so that `add_models` renders alike."""

    subdivisions: int = 2  # icosphere subdivisions: 42 directions at 1, 162 at 2, 642 at 3
    upper_hemisphere: bool = False  # only camera elevations ≥ 0 (the paper's setting for furniture)
    backgrounds: int = 2  # renders per viewpoint and tilt, each with its own background, light and colour
    tilts: tuple[float, ...] = (0.0,)  # in-plane rotations θ (degrees) rendered per viewpoint
    pca_dim: int = 256  # descriptor: PCA to this many dimensions; 0 = the raw embedding
    image_size: int = 160  # rendered image side before the serving crop
    thumbnail_size: int = 64  # saved thumbnail side; 0 = none
    wireframe_segments: int = MAX_SEGMENTS  # per-model wireframe budget; 0 = none
    seed: int = 0
    hnsw: HnswParams = field(default_factory=HnswParams)

    def __post_init__(self) -> None:
        # checked before rendering: a bad value would otherwise surface only after minutes of work
        if not 0 <= self.pca_dim <= MAX_DESCRIPTOR_DIM:
            raise ValueError(f"pca_dim must be in [0, {MAX_DESCRIPTOR_DIM}] (0 = raw embedding), got {self.pca_dim}")
        if self.backgrounds < 1 or not self.tilts:
            raise ValueError(f"need backgrounds >= 1 and at least one tilt, got {self.backgrounds} and {self.tilts}")

    def render_config(self) -> RenderConfig:
        """Renderer settings of the index views (icosphere directions, no random roll)."""
        return RenderConfig(image_size=self.image_size, sampling="icosphere", icosphere_subdivisions=self.subdivisions,
                            upper_hemisphere=self.upper_hemisphere, theta_std_deg=0.0, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        """The `render` entry of index.json (hnsw parameters are recorded on their own)."""
        return {k: v for k, v in asdict(self).items() if k != "hnsw"}

    @classmethod
    def from_index(cls, index: ViewIndex) -> "IndexConfig":
        """The settings an index was built with, so that added models are rendered alike."""
        recorded = dict(index.info.get("render", {}))
        recorded["tilts"] = tuple(recorded.get("tilts", (0.0,)))
        return cls(**recorded, hnsw=index.params)


@dataclass(frozen=True)
class RenderPlan:
    """Views to render per model: `views` rows of `sample_viewpoints` (None = each icosphere
    direction once), each at every tilt of `tilts` (None = the sampled θ), `backgrounds` times;
    and a wireframe of at most `wireframe_segments` segments (0 = none)."""

    render: RenderConfig
    views: int | None = None
    tilts: tuple[float, ...] | None = None
    backgrounds: int = 1
    wireframe_segments: int = 0


@dataclass
class RenderedModel:
    """Views of one model, ready to embed: full renders, object boxes, metadata rows, and its
    wireframe (S, 2, 3) when the plan asks for one."""

    spec: ModelSpec
    images: list[np.ndarray]
    boxes: list[tuple[float, float, float, float]]
    rows: list[dict[str, Any]]
    error: str | None = None
    wireframe: np.ndarray | None = None


def _render_model(task: tuple[int, ModelSpec, RenderPlan]) -> RenderedModel:
    """All views of one model (one BVH build); deterministic in (plan seed, model number)."""
    number, spec, plan = task
    cfg = plan.render
    rng = np.random.default_rng([cfg.seed, number])
    try:
        mesh = spec.load()
        renderer = MeshRenderer(mesh)
    except MeshError as exc:
        return RenderedModel(spec, [], [], [], f"{spec.model_id}: {exc}")
    wire = wireframe(mesh, plan.wireframe_segments) if plan.wireframe_segments else None
    symmetry = detect_z_symmetry(mesh).to_dict()  # served with the model: which of its poses look alike
    out = RenderedModel(spec, [], [], [], wireframe=wire)
    for a, e, t, d in sample_viewpoints(plan.views, cfg, rng):
        for theta in plan.tilts if plan.tilts is not None else (t,):
            for _ in range(plan.backgrounds):
                view = renderer.render(a, e, theta, d, rng, cfg)
                if view is None:  # not visible from here (degenerate mesh): skip the view
                    continue
                az, el, th, _dist = view.viewpoint
                out.images.append(view.image)
                out.boxes.append(view.box)
                out.rows.append({"model_id": spec.model_id, "category": spec.category, "azimuth": az,
                                 "elevation": el, "theta": th, "rotation": view.rotation.ravel().tolist(),
                                 "background": view.background, "z_symmetry": symmetry})
    if not out.rows:
        out.error = f"{spec.model_id}: not visible in any view"
    return out


def _init_worker() -> None:
    cv2.setNumThreads(1)


def render_models(specs: Sequence[ModelSpec], plan: RenderPlan, workers: int = 1,
                  first_number: int = 0) -> Iterator[RenderedModel]:
    """Render every model per `plan`, in order; `workers` ≥ 1 render in spawned processes
    (while the caller embeds), 0 in this process. Model i is seeded with first_number + i."""
    tasks = [(first_number + i, spec, plan) for i, spec in enumerate(specs)]
    if workers <= 0:
        _init_worker()
        yield from map(_render_model, tasks)
        return
    with multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)) or 1, initializer=_init_worker) as pool:
        yield from pool.imap(_render_model, tasks)


def embed(predictor: Predictor, model: RenderedModel, batch_size: int = 32) -> tuple[np.ndarray, list[PoseResult]]:
    """Raw embeddings (N, D) and network results of one model's views, through the serving path."""
    results: list[PoseResult] = []
    for s in range(0, len(model.images), batch_size):
        results += predictor.predict(model.images[s:s + batch_size], model.boxes[s:s + batch_size])
    emb = np.asarray([r.embedding for r in results], np.float32).reshape(len(results), -1)
    return emb, results


@dataclass
class EmbeddedViews:
    """What `_render_and_embed` hands to `ViewIndex.add`, plus the models that failed."""

    embeddings: np.ndarray
    rows: list[dict[str, Any]]
    wireframes: dict[str, np.ndarray]
    failures: list[str]


def _specs(models: str | Path | Sequence[ModelSpec]) -> list[ModelSpec]:
    return scan_repository(models) if isinstance(models, (str, Path)) else list(models)


def _render_and_embed(predictor: Predictor, specs: Sequence[ModelSpec], cfg: IndexConfig, out_dir: Path,
                      first_label: int, first_number: int, workers: int, progress: bool,
                      ) -> EmbeddedViews:
    """Render, save thumbnails and embed the index views of `specs`, with the models' wireframes."""
    from tqdm import tqdm

    plan = RenderPlan(cfg.render_config(), None, cfg.tilts, cfg.backgrounds, cfg.wireframe_segments)
    per_model = len(icosphere_directions(cfg.subdivisions, cfg.upper_hemisphere)) * len(cfg.tilts) * cfg.backgrounds
    if cfg.thumbnail_size:
        (out_dir / THUMBS_DIR).mkdir(parents=True, exist_ok=True)
    chunks, rows, failures, wireframes = [], [], [], {}
    margin = float(predictor.metadata.crop_margin)
    with tqdm(total=per_model * len(specs), unit="view", desc="index", disable=not progress) as bar:
        for model in render_models(specs, plan, workers, first_number):
            if model.error:
                failures.append(model.error)
            for image, box, row in zip(model.images, model.boxes, model.rows):
                row["thumbnail"] = ""
                if cfg.thumbnail_size:
                    row["thumbnail"] = f"{THUMBS_DIR}/{first_label + len(rows):07d}.jpg"
                    thumb = crop_square(image, box, cfg.thumbnail_size, margin)
                    cv2.imwrite(str(out_dir / row["thumbnail"]), thumb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
                rows.append(row)
            if model.rows:
                chunks.append(embed(predictor, model)[0])
                if model.wireframe is not None:
                    wireframes[model.spec.model_id] = model.wireframe
            bar.update(per_model)
    dim = int(predictor.metadata.embedding_dim)
    embeddings = np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)
    return EmbeddedViews(embeddings, rows, wireframes, failures)


def build_index(bundle_dir: str | Path, models: str | Path | Sequence[ModelSpec], out_dir: str | Path,
                config: IndexConfig = IndexConfig(), workers: int = 1, threads: int = 1,
                progress: bool = True) -> ViewIndex:
    """Render and embed every model's views, fit the descriptor, build and save the index in `out_dir`.

    `models` is a repository folder (`DIR/<category>/*.off|obj|…`) or model specs;
    `workers` render processes run beside the ONNX Runtime session (`threads` threads).
    """
    t0 = time.perf_counter()
    specs = _specs(models)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictor = Predictor(bundle_dir, intra_op_threads=threads)
    identity = BundleIdentity.of(bundle_dir, predictor.metadata)
    views = _render_and_embed(predictor, specs, config, out, 0, 0, workers, progress)
    if not views.rows:
        raise ViewIndexError(f"no views could be rendered: {'; '.join(views.failures)}")
    projection = (Projection.fit_pca(views.embeddings, config.pca_dim) if config.pca_dim
                  else Projection(identity.embedding_dim))
    info = {"render": config.to_dict(), "models_failed": views.failures}
    index = ViewIndex.create(projection, identity, config.hnsw, info, capacity=len(views.rows))
    index.add(views.embeddings, views.rows, views.wireframes)
    index.info["build_seconds"] = round(time.perf_counter() - t0, 2)
    index.save(out)
    return index


def add_models(index_dir: str | Path, bundle_dir: str | Path, models: str | Path | Sequence[ModelSpec],
               workers: int = 1, threads: int = 1, progress: bool = True) -> tuple[ViewIndex, list[str]]:
    """Render the models not yet in the index with its recorded settings and add them (no rebuild,
    the descriptor is kept). Returns the saved index and the model ids that were skipped
    because the index already holds them. New models get wireframes also in an index saved
    before wireframes existed (its older models stay without: rebuild to give them one)."""
    predictor = Predictor(bundle_dir, intra_op_threads=threads)
    index = ViewIndex.load(index_dir, BundleIdentity.of(bundle_dir, predictor.metadata))
    cfg = IndexConfig.from_index(index)
    known = set(index.model_ids)
    specs = _specs(models)
    new = [s for s in specs if s.model_id not in known]
    skipped = [s.model_id for s in specs if s.model_id in known]
    if new:
        views = _render_and_embed(predictor, new, cfg, Path(index_dir), len(index), len(known), workers, progress)
        index.add(views.embeddings, views.rows, views.wireframes)
        index.info["models_failed"] = list(index.info.get("models_failed", [])) + views.failures
        index.save(index_dir)
    return index, skipped

