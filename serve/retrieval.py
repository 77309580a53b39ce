"""Image-graphics search: an hnswlib index of rendered views, and pose from their neighbours.

A photo's retrieval embedding (the bundle graph's `embedding` output) is projected to
the index's descriptor (the raw embedding, or a PCA projection fitted on the rendered
views, ≤ 512-d so that the index stays small), L2-normalised (hnswlib's 'ip' space
needs unit vectors, MEASURED.md) and searched against the views of known 3D models.
The neighbours give the best-matching models and three pose estimates: the image-
graphics paper's average of the two nearest camera positions, a rotation average
on SO(3) over the nearest views that agree with each other, and a fusion with the
network's own rotation. Needs numpy and hnswlib only (serving never imports torch).

Index folder (``BUNDLE/index`` by default, built by ``vantage index``)::

    index.json       format, hnswlib parameters (space, M, ef_construction, ef), descriptor
                     (kind, dim, source_dim, normalisation), bundle identity, render settings
    hnsw.bin         the hnswlib graph (label i = row i of views.jsonl)
    views.jsonl      one row per view: model_id, category, azimuth, elevation, theta,
                     rotation (9 floats, row-major, POSE.md), background, thumbnail, and
                     z_symmetry {"angles", "continuous"}: the model's turns about +z onto
                     itself (vantage.train.symmetry; absent in indexes built before it)
    projection.npz   PCA mean and components (descriptor kind "pca" only)
    thumbs/          small JPEG crops of the views (paths in views.jsonl, relative to the folder)
    wireframes.npz   optional: each model's wireframe (vantage.train.wireframes), packed as
                     model_ids (M,) str, counts (M,) int32 segments per model and segments
                     (sum of counts, 2, 3) float32, in the object frame of POSE.md after the
                     renderer's normalisation (radius 1). Indexes saved before wireframes
                     existed lack the file and load with no wireframes; the format version
                     stays 1 because older readers simply ignore the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import hnswlib
import numpy as np

from vantage.bundle import BundleMetadata, load_metadata
from vantage.geometry import (
    chordal_mean,
    geodesic_distance,
    rotation_to_camera_position,
    viewpoint_to_rotation,
)

INDEX_FORMAT = "vantage-view-index"
INDEX_FORMAT_VERSION = 1
INDEX_DIR_NAME = "index"
INFO_FILE, GRAPH_FILE, VIEWS_FILE, PROJECTION_FILE = "index.json", "hnsw.bin", "views.jsonl", "projection.npz"
WIREFRAMES_FILE = "wireframes.npz"
# Pose from neighbours (measured by train/retrieval_bench.py on renders of unseen and of indexed
# CAD models): the 10 nearest views, views within 30° count as agreeing.
POSE_K = 10
AGREE_DEG = 30.0
MAX_DESCRIPTOR_DIM = 512  # HNSW loses its edge over brute force on high-dimensional vectors (MEASURED.md)
# index.json keys that `describe` derives from the index itself; the others are the builder's `info`.
_CORE_KEYS = frozenset({"format", "format_version", "space", "hnsw", "descriptor", "bundle", "views", "models", "categories",
                        "wireframes"})
VIEW_KEYS: tuple[str, ...] = ("model_id", "category", "azimuth", "elevation", "theta", "rotation", "background", "thumbnail")


class ViewIndexError(Exception):
    """A view index is missing, damaged, or cannot serve the bundle it is loaded with."""


class IndexMismatchError(ViewIndexError):
    """The index holds embeddings of another bundle's graph; its vectors mean nothing to this one."""


class CategoryNotIndexedError(LookupError):
    """A search was restricted to a category that has no views in the index."""


@dataclass(frozen=True)
class BundleIdentity:
    """Which graph made an index's embeddings: the sha256 of model.onnx decides, the rest names it."""

    name: str
    model_version: str
    onnx_sha256: str
    embedding_dim: int

    @classmethod
    def of(cls, bundle_dir: str | Path, meta: BundleMetadata | None = None) -> "BundleIdentity":
        """Identity of a bundle folder (hashes its ONNX file)."""
        meta = meta or load_metadata(bundle_dir)
        digest = hashlib.sha256()
        with open(Path(bundle_dir) / meta.onnx_file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return cls(meta.name, str(meta.model_version), digest.hexdigest(), int(meta.embedding_dim))

    def same_embedding(self, other: "BundleIdentity") -> bool:
        """True when both graphs embed alike (names and versions may differ for the same file)."""
        return self.onnx_sha256 == other.onnx_sha256 and self.embedding_dim == other.embedding_dim

    def describe(self) -> str:
        """Both names and the hash, for error messages that must say which bundle is which."""
        return (f"bundle {self.name!r} version {self.model_version} "
                f"(model.onnx sha256 {self.onnx_sha256[:16]}, {self.embedding_dim}-d embedding)")


class Projection:
    """Raw embedding → index descriptor: an optional PCA projection, then L2 normalisation.

    PCA (centred on the indexed views' mean, no whitening) makes the descriptor compact
    (≤ 512-d) for HNSW; "raw" keeps the bundle's embedding as it is (renormalised).
    """

    def __init__(self, source_dim: int, mean: np.ndarray | None = None, components: np.ndarray | None = None,
                 explained_variance: float = 1.0) -> None:
        self.source_dim = int(source_dim)
        self.mean = None if mean is None else np.asarray(mean, np.float32)
        self.components = None if components is None else np.asarray(components, np.float32)  # (d, D)
        self.explained_variance = float(explained_variance)

    @classmethod
    def fit_pca(cls, embeddings: np.ndarray, dim: int) -> "Projection":
        """PCA of the rows of `embeddings` (N, D) keeping `dim` components."""
        x = np.asarray(embeddings, np.float64)
        if not 1 <= dim <= min(x.shape):
            raise ValueError(f"PCA dimension must be in [1, {min(x.shape)}] for {x.shape[0]} views of "
                             f"{x.shape[1]}-d embeddings, got {dim}")
        mean = x.mean(0)
        cov = np.cov(x - mean, rowvar=False)
        values, vectors = np.linalg.eigh(cov)  # ascending
        order = np.argsort(values)[::-1][:dim]
        explained = float(values[order].sum() / max(values.sum(), 1e-12))
        return cls(x.shape[1], mean, vectors[:, order].T, explained)

    @property
    def kind(self) -> str:
        return "raw" if self.components is None else "pca"

    @property
    def dim(self) -> int:
        return self.source_dim if self.components is None else int(self.components.shape[0])

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, D) or (D,) raw embeddings → (N, d) float32 unit descriptors."""
        x = np.atleast_2d(np.asarray(embeddings, np.float32))
        if x.shape[1] != self.source_dim:
            raise ValueError(f"embedding has {x.shape[1]} dimensions, the index expects {self.source_dim}")
        if self.components is not None:
            x = (x - self.mean) @ self.components.T
        return np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12), np.float32)

    def describe(self) -> dict[str, Any]:
        """What index.json records about the descriptor."""
        return {"kind": self.kind, "dim": self.dim, "source_dim": self.source_dim, "centred": self.kind == "pca",
                "normalisation": "l2", "explained_variance": round(self.explained_variance, 6)}

    def save(self, root: Path) -> None:
        """Write projection.npz (nothing for "raw")."""
        if self.components is not None:
            np.savez(root / PROJECTION_FILE, mean=self.mean, components=self.components)

    @classmethod
    def load(cls, root: Path, described: dict[str, Any]) -> "Projection":
        """The projection an index.json `descriptor` entry describes."""
        if described.get("kind") == "raw":
            return cls(int(described["source_dim"]))
        try:
            with np.load(root / PROJECTION_FILE) as data:
                mean, components = data["mean"], data["components"]
        except (OSError, KeyError, ValueError) as exc:
            raise ViewIndexError(f"view index {str(root)!r}: cannot read {PROJECTION_FILE}: {exc}") from None
        if components.shape != (described["dim"], described["source_dim"]):
            raise ViewIndexError(f"view index {str(root)!r}: {PROJECTION_FILE} has shape {components.shape}, "
                                 f"index.json says {(described['dim'], described['source_dim'])}")
        return cls(int(described["source_dim"]), mean, components, float(described.get("explained_variance", 1.0)))


@dataclass(frozen=True)
class HnswParams:
    """hnswlib graph parameters, recorded in index.json; `ef` is the query-time beam (raised to k when smaller)."""

    M: int = 16
    ef_construction: int = 200
    ef: int = 64


@dataclass
class ViewHit:
    """One retrieved view; `similarity` is the cosine of the descriptors (1 = identical)."""

    label: int
    similarity: float
    model_id: str
    category: str
    azimuth: float
    elevation: float
    theta: float
    rotation: np.ndarray  # (3, 3), POSE.md
    thumbnail: str  # relative to the index folder, "" when none was saved


@dataclass
class ModelHit:
    """One retrieved 3D model: `score` is the sum of its views' similarities ("vote") or its best view's ("best")."""

    model_id: str
    category: str
    score: float
    best_view: ViewHit
    views: int  # of its views among the neighbours


@dataclass
class NeighbourPose:
    """A rotation estimated from retrieved views; `support` is the share of the neighbours' similarity
    weight that agrees with it (1 = all agree), `count` the views averaged."""

    rotation: np.ndarray
    support: float
    count: int
    method: str


def new_graph(dim: int, capacity: int, params: HnswParams) -> hnswlib.Index:
    """An empty hnswlib 'ip' graph for unit vectors."""
    graph = hnswlib.Index(space="ip", dim=int(dim))
    graph.init_index(max_elements=max(int(capacity), 1), M=params.M, ef_construction=params.ef_construction)
    graph.set_ef(params.ef)
    return graph


def save_wireframes(root: Path, wireframes: dict[str, np.ndarray]) -> None:
    """Write wireframes.npz in the packed layout of the module docstring; without wireframes,
    remove a previous save's file so that it cannot describe models of another index."""
    path = root / WIREFRAMES_FILE
    if not wireframes:
        path.unlink(missing_ok=True)
        return
    ids = list(wireframes)
    tmp = root / (WIREFRAMES_FILE + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, model_ids=np.array(ids, dtype=str),
                            counts=np.array([len(wireframes[m]) for m in ids], np.int32),
                            segments=np.concatenate([wireframes[m] for m in ids]))
    os.replace(tmp, path)


def load_wireframes(root: Path, models: Iterable[str]) -> dict[str, np.ndarray]:
    """The wireframes of an index folder by model id ({} without wireframes.npz); ViewIndexError
    when the file is damaged or names models the index does not hold."""
    path = root / WIREFRAMES_FILE
    if not path.is_file():
        return {}
    try:
        with np.load(path) as data:
            ids, counts, segments = data["model_ids"].tolist(), data["counts"], data["segments"]
    except (OSError, KeyError, ValueError) as exc:
        raise ViewIndexError(f"view index {str(root)!r}: cannot read {WIREFRAMES_FILE}: {exc}") from None
    unknown = sorted(set(ids) - set(models))
    if unknown or segments.shape[1:] != (2, 3) or int(counts.sum()) != len(segments):
        raise ViewIndexError(f"view index {str(root)!r}: {WIREFRAMES_FILE} does not match the index "
                             f"(segments {segments.shape}, {int(counts.sum())} counted, unknown models {unknown[:3]})")
    return dict(zip(ids, np.split(segments.astype(np.float32), np.cumsum(counts)[:-1])))


def checked_symmetry(value: Any, model_id: str) -> dict[str, Any] | None:
    """A row's z_symmetry as {"angles": sorted floats in (0, 360), "continuous": bool}; ValueError when malformed."""
    if value is None:
        return None
    try:
        angles = sorted(float(a) for a in value["angles"])
        continuous = value["continuous"]
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"model {model_id!r}: z_symmetry must be {{'angles': [degrees], 'continuous': bool}}, "
                         f"got {value!r}") from None
    if not isinstance(continuous, bool) or not all(0.0 < a < 360.0 for a in angles):
        raise ValueError(f"model {model_id!r}: z_symmetry angles must lie in (0, 360) and continuous be a bool, "
                         f"got {value!r}")
    return {"angles": angles, "continuous": continuous}


@dataclass
class _Columns:
    """The views table as arrays (cheap at 100k views), in label order."""

    model_ids: list[str] = field(default_factory=list)  # distinct models, first-seen order
    model_category: list[str] = field(default_factory=list)
    model_of_view: list[int] = field(default_factory=list)
    viewpoints: list[tuple[float, float, float]] = field(default_factory=list)
    rotations: list[np.ndarray] = field(default_factory=list)
    backgrounds: list[str] = field(default_factory=list)
    thumbnails: list[str] = field(default_factory=list)
    model_symmetry: list[dict[str, Any] | None] = field(default_factory=list)  # per model: rows' z_symmetry


class ViewIndex:
    """Rendered views of known 3D models in an hnswlib graph, with their metadata table.

    Build with `create` + `add` (or `vantage index`), then `save`; serve with `load`,
    which refuses an index whose embeddings came from another bundle. `search` is
    thread-safe; `add` must not run concurrently with searches.
    """

    def __init__(self, graph: hnswlib.Index, projection: Projection, params: HnswParams,
                 bundle: BundleIdentity, info: dict[str, Any] | None = None, root: Path | None = None) -> None:
        self.graph = graph
        self.projection = projection
        self.params = params
        self.bundle = bundle
        self.info = dict(info or {})
        self.root = root
        self._cols = _Columns()
        self._model_index: dict[str, int] = {}
        self._rotations = np.zeros((0, 3, 3), np.float64)
        self._category_of_view = np.zeros(0, np.int32)
        self._categories: list[str] = []
        self._wireframes: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @classmethod
    def create(cls, projection: Projection, bundle: BundleIdentity, params: HnswParams = HnswParams(),
               info: dict[str, Any] | None = None, capacity: int = 1024) -> "ViewIndex":
        """An empty index; `info` (render settings, ...) is stored in index.json."""
        if projection.source_dim != bundle.embedding_dim:
            raise ValueError(f"projection reads {projection.source_dim}-d embeddings, {bundle.describe()} makes "
                             f"{bundle.embedding_dim}-d ones")
        if projection.dim > MAX_DESCRIPTOR_DIM and projection.kind == "pca":
            raise ValueError(f"PCA descriptors are limited to {MAX_DESCRIPTOR_DIM} dimensions, got {projection.dim}")
        return cls(new_graph(projection.dim, capacity, params), projection, params, bundle, info)

    # -- contents ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._cols.model_of_view)

    @property
    def categories(self) -> list[str]:
        """Categories with at least one view, sorted."""
        return sorted(set(self._cols.model_category))

    @property
    def model_ids(self) -> list[str]:
        """Indexed models, in the order they were added."""
        return list(self._cols.model_ids)

    def view(self, label: int, similarity: float = 1.0) -> ViewHit:
        """The metadata row of view `label` as a hit."""
        c = self._cols
        m = c.model_of_view[label]
        az, el, th = c.viewpoints[label]
        return ViewHit(int(label), float(similarity), c.model_ids[m], c.model_category[m], az, el, th,
                       self._rotations[label], c.thumbnails[label])

    def symmetry(self, model_id: str) -> dict[str, Any] | None:
        """A model's turns about +z onto itself, {"angles": degrees, "continuous": bool}; None when its
        views were indexed before symmetries were recorded."""
        return self._cols.model_symmetry[self._model_index[model_id]]

    def wireframe(self, model_id: str) -> np.ndarray | None:
        """A model's wireframe segments (S, 2, 3) float32 in its normalised object frame (POSE.md),
        None when the index keeps none for it (built before wireframes, or by `add` without one)."""
        return self._wireframes.get(model_id)

    def add(self, embeddings: np.ndarray, rows: Sequence[dict[str, Any]],
            wireframes: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Add views: raw embeddings (N, D) and their rows (VIEW_KEYS; rotation optional, derived
        from the viewpoint), and optionally wireframes (S, 2, 3) of their models by model id.
        Returns the views' labels. Grows the graph as needed (no rebuild)."""
        vectors = self.projection(embeddings)
        if len(vectors) != len(rows):
            raise ValueError(f"{len(vectors)} embeddings but {len(rows)} metadata rows")
        wires = self._checked_wireframes(wireframes or {}, rows)
        start = len(self)
        labels = np.arange(start, start + len(rows), dtype=np.int64)
        if start + len(rows) > self.graph.get_max_elements():
            self.graph.resize_index(max(start + len(rows), 2 * self.graph.get_max_elements()))
        self._append_rows(rows)
        self._wireframes.update(wires)
        if len(rows):
            self.graph.add_items(vectors, labels, num_threads=max(1, min(4, os.cpu_count() or 1)))
        return labels

    def _checked_wireframes(self, wireframes: dict[str, np.ndarray], rows: Sequence[dict[str, Any]]
                            ) -> dict[str, np.ndarray]:
        """Wireframes as float32 (S, 2, 3), checked before `add` changes anything: each must belong
        to a model that is indexed or arrives with `rows`."""
        models = set(self._model_index) | {row["model_id"] for row in rows}
        out = {}
        for model_id, segments in wireframes.items():
            seg = np.asarray(segments, np.float32)
            if model_id not in models or seg.ndim != 3 or seg.shape[1:] != (2, 3):
                raise ValueError(f"wireframe of {model_id!r}: need segments (S, 2, 3) of an indexed model, "
                                 f"got shape {seg.shape}")
            out[model_id] = seg
        return out

    def _append_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        c = self._cols
        rotations, cats = [], []
        for row in rows:
            model = self._model_index.get(row["model_id"])
            if model is None:
                model = self._model_index[row["model_id"]] = len(c.model_ids)
                c.model_ids.append(row["model_id"])
                c.model_category.append(row["category"])
                c.model_symmetry.append(checked_symmetry(row.get("z_symmetry"), row["model_id"]))
            elif c.model_category[model] != row["category"]:
                raise ValueError(f"model {row['model_id']!r} is {c.model_category[model]!r}, a row says {row['category']!r}")
            vp = (float(row["azimuth"]), float(row["elevation"]), float(row["theta"]))
            rot = row.get("rotation")
            rotations.append(viewpoint_to_rotation(*vp) if rot is None else np.asarray(rot, np.float64).reshape(3, 3))
            c.model_of_view.append(model)
            c.viewpoints.append(vp)
            c.backgrounds.append(str(row.get("background", "")))
            c.thumbnails.append(str(row.get("thumbnail", "")))
            if row["category"] not in self._categories:
                self._categories.append(row["category"])
            cats.append(self._categories.index(row["category"]))
        if rotations:
            self._rotations = np.concatenate([self._rotations, np.stack(rotations)])
            self._category_of_view = np.concatenate([self._category_of_view, np.asarray(cats, np.int32)])

    def rows(self) -> Iterable[dict[str, Any]]:
        """The views table, in label order (what views.jsonl holds)."""
        c = self._cols
        for label, m in enumerate(c.model_of_view):
            az, el, th = c.viewpoints[label]
            yield {"label": label, "model_id": c.model_ids[m], "category": c.model_category[m], "azimuth": az,
                   "elevation": el, "theta": th, "rotation": [round(float(v), 7) for v in self._rotations[label].ravel()],
                   "background": c.backgrounds[label], "thumbnail": c.thumbnails[label],
                   **({"z_symmetry": c.model_symmetry[m]} if c.model_symmetry[m] is not None else {})}

    # -- persistence -----------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The contents of index.json."""
        return {"format": INDEX_FORMAT, "format_version": INDEX_FORMAT_VERSION, "space": "ip",
                "hnsw": asdict(self.params), "descriptor": self.projection.describe(), "bundle": asdict(self.bundle),
                "views": len(self), "models": len(self._cols.model_ids), "categories": self.categories,
                "wireframes": len(self._wireframes), **self.info}

    def save(self, root: str | Path) -> Path:
        """Write the index folder (overwrites the files of a previous save)."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        self.graph.save_index(str(root / GRAPH_FILE))
        self.projection.save(root)
        save_wireframes(root, self._wireframes)
        tmp = root / (VIEWS_FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in self.rows():
                fh.write(json.dumps(row) + "\n")
        os.replace(tmp, root / VIEWS_FILE)
        (root / INFO_FILE).write_text(json.dumps(self.describe(), indent=2) + "\n", encoding="utf-8")
        self.root = root
        return root

    @classmethod
    def load(cls, root: str | Path, expected: BundleIdentity | None) -> "ViewIndex":
        """Read an index folder; IndexMismatchError when `expected` (the bundle that will embed
        queries) is not the bundle that embedded the views."""
        root = Path(root)
        try:
            info = json.loads((root / INFO_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ViewIndexError(f"{str(root)!r} is not a view index: it has no {INFO_FILE}") from None
        except json.JSONDecodeError as exc:
            raise ViewIndexError(f"{root / INFO_FILE} is not valid JSON: {exc}") from None
        if info.get("format") != INDEX_FORMAT or int(info.get("format_version", 0)) > INDEX_FORMAT_VERSION:
            raise ViewIndexError(f"{str(root)!r}: unknown index format {info.get('format')!r} "
                                 f"version {info.get('format_version')!r}, expected {INDEX_FORMAT!r} ≤ {INDEX_FORMAT_VERSION}")
        built_with = BundleIdentity(**info["bundle"])
        if expected is not None and not expected.same_embedding(built_with):
            raise IndexMismatchError(
                f"view index {str(root)!r} was built with {built_with.describe()}, but the embeddings now come from "
                f"{expected.describe()}: rebuild it with `vantage index --model BUNDLE --out {root}`")
        projection = Projection.load(root, info["descriptor"])
        params = HnswParams(**info["hnsw"])
        graph = hnswlib.Index(space="ip", dim=projection.dim)
        try:
            graph.load_index(str(root / GRAPH_FILE), max_elements=int(info["views"]))
        except RuntimeError as exc:
            raise ViewIndexError(f"view index {str(root)!r}: cannot read {GRAPH_FILE}: {exc}") from None
        graph.set_ef(params.ef)
        index = cls(graph, projection, params, built_with, {k: v for k, v in info.items() if k not in _CORE_KEYS}, root)
        try:
            with open(root / VIEWS_FILE, encoding="utf-8") as fh:
                index._append_rows(json.loads(line) for line in fh if line.strip())
        except (OSError, KeyError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            raise ViewIndexError(f"view index {str(root)!r}: cannot read {VIEWS_FILE}: {exc}") from None
        if len(index) != graph.get_current_count():
            raise ViewIndexError(f"view index {str(root)!r}: {VIEWS_FILE} has {len(index)} rows but the graph "
                                 f"holds {graph.get_current_count()} vectors")
        index._wireframes = load_wireframes(root, index.model_ids)
        return index

    # -- search ----------------------------------------------------------------------

    def search(self, embedding: np.ndarray, k: int, category: str | None = None) -> list[ViewHit]:
        """The k views most similar to one raw embedding (D,), best first, optionally of one category
        (CategoryNotIndexedError when the index has none)."""
        filt = None
        available = len(self)
        if category:
            if category not in self._categories:
                raise CategoryNotIndexedError(
                    f"the view index has no views of category {category!r}; it holds: {', '.join(self.categories)}")
            allowed = self._category_of_view == self._categories.index(category)
            available = int(allowed.sum())
            filt = allowed.__getitem__
        k = min(int(k), available)
        if k <= 0:
            return []
        query = self.projection(embedding)
        with self._lock:  # ef is graph state shared by all threads
            self.graph.set_ef(max(self.params.ef, k))
            labels, distances = self.graph.knn_query(query, k=k, num_threads=1, filter=filt)
        return [self.view(int(label), 1.0 - float(d)) for label, d in zip(labels[0], distances[0])]


# -- pose from neighbours ------------------------------------------------------------


def _weights(hits: Sequence[ViewHit]) -> np.ndarray:
    return np.maximum(np.array([h.similarity for h in hits], np.float64), 1e-6)


def camera_average_pose(hits: Sequence[ViewHit], k: int = 2) -> NeighbourPose:
    """The image-graphics paper's estimate: the normalised mean of the k nearest views' camera
    positions (k = 2 there), with their circular-mean roll. Opposite neighbours cancel into
    nonsense; that is the paper's method, kept as the reference."""
    near = list(hits[:k])
    if not near:
        raise ValueError("no neighbours to average")
    rot = np.stack([h.rotation for h in near])
    c = rotation_to_camera_position(rot).sum(0)
    c = c / max(np.linalg.norm(c), 1e-12)
    az = float(np.degrees(np.arctan2(c[0], -c[1])) % 360.0)
    el = float(np.degrees(np.arcsin(np.clip(c[2], -1.0, 1.0))))
    th = np.radians([h.theta for h in near])
    theta = float(np.degrees(np.arctan2(np.sin(th).sum(), np.cos(th).sum())))
    return NeighbourPose(viewpoint_to_rotation(az, el, theta), 1.0, len(near), f"camera-average-{k}")


def knn_pose(hits: Sequence[ViewHit], k: int = POSE_K, agree_deg: float = AGREE_DEG) -> NeighbourPose:
    """Rotation average over the k nearest views that agree.

    Neighbours often split into front/back or mirror matches (MEASURED.md); averaging
    them all gives neither. Each neighbour is a candidate centre; the one whose views
    within `agree_deg` carry the most similarity weight wins, and those views are
    averaged on SO(3) (similarity-weighted chordal mean).
    """
    near = list(hits[:k])
    if not near:
        raise ValueError("no neighbours to average")
    rot = np.stack([h.rotation for h in near])
    w = _weights(near)
    close = geodesic_distance(rot[:, None], rot[None, :]) < agree_deg
    support = close.astype(np.float64) @ w
    members = close[int(np.argmax(support))]
    return NeighbourPose(chordal_mean(rot[members], w[members]), float(w[members].sum() / w.sum()),
                         int(members.sum()), f"knn-so3-{k}")


def fused_pose(network_rotation: np.ndarray, hits: Sequence[ViewHit], k: int = POSE_K, agree_deg: float = AGREE_DEG,
               network_weight: float = 0.5, min_support: float = 0.5) -> NeighbourPose:
    """The network picks the mode, the neighbours refine it (the paper's k-NN quantisation).

    Neighbours within `agree_deg` of the network's rotation are averaged and combined
    with it (chordal mean, the network weighing `network_weight`). When none agrees,
    the neighbours' own agreeing cluster wins if it holds at least `min_support` of
    their weight (the network is then the outlier), else the network stands.
    """
    net = np.asarray(network_rotation, np.float64).reshape(3, 3)
    near = list(hits[:k])
    if near:
        rot = np.stack([h.rotation for h in near])
        w = _weights(near)
        agree = geodesic_distance(rot, net[None]) < agree_deg
        if agree.any():
            refined = chordal_mean(rot[agree], w[agree])
            mean = chordal_mean(np.stack([net, refined]), [network_weight, 1.0 - network_weight])
            return NeighbourPose(mean, float(w[agree].sum() / w.sum()), int(agree.sum()), "fused-refined")
        own = knn_pose(near, k, agree_deg)
        if own.support >= min_support:
            return NeighbourPose(own.rotation, own.support, own.count, "fused-neighbours")
    return NeighbourPose(net, 0.0, 0, "fused-network")


def rank_models(hits: Sequence[ViewHit], method: str = "vote") -> list[ModelHit]:
    """3D models of the neighbours, best first: by the summed similarity of their views ("vote",
    the default: better top-1 and top-5 model accuracy in train/retrieval_bench.py) or by their
    best view's similarity ("best")."""
    if method not in ("best", "vote"):
        raise ValueError(f"method must be 'best' or 'vote', got {method!r}")
    models: dict[str, ModelHit] = {}
    for h in hits:
        m = models.get(h.model_id)
        if m is None:
            models[h.model_id] = ModelHit(h.model_id, h.category, h.similarity, h, 1)
        else:
            m.views += 1
            m.score = max(m.score, h.similarity) if method == "best" else m.score + h.similarity
    return sorted(models.values(), key=lambda m: -m.score)

