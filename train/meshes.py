"""3D model sources: built-in procedural meshes and user repositories on disk.

A `ModelSpec` is a small picklable description of one mesh, so that renderer
worker processes can load meshes themselves. Every mesh is normalised as POSE.md
says: centred on its axis-aligned bounding-box centre, farthest vertex at 1.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import trimesh

from vantage.categories import CATEGORIES

MESH_SUFFIXES = (".off", ".obj", ".ply", ".stl", ".glb")


class MeshError(Exception):
    """A mesh file cannot be loaded or has no triangles."""


@dataclass(frozen=True)
class ModelSpec:
    """One 3D model: built-in (`seed` set), a file (`path` set), or a hybrid of two files
    (`path`'s front or bottom joined to `donor`'s back or top at `cut`: vantage.train.hybrids)."""

    model_id: str
    category: str
    path: str | None = None
    seed: int | None = None
    donor: str | None = None
    cut: str | None = None

    def load(self) -> trimesh.Trimesh:
        if self.donor is not None:
            from vantage.train.hybrids import hybrid_mesh

            return hybrid_mesh(load_mesh(self.path), load_mesh(self.donor), str(self.cut))
        if self.path is not None:
            return load_mesh(self.path)
        from vantage.train.shapes import generate_mesh

        return normalise_mesh(generate_mesh(self.category, int(self.seed or 0)))


def normalise_mesh(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Centre on the bounding-box centre and scale the farthest vertex to distance 1.

    Vertices no face uses are dropped first (many CAD files carry them), so the
    box and the radius both describe the surface that is drawn.
    """
    mesh = mesh.copy()
    mesh.remove_unreferenced_vertices()
    lo, hi = mesh.bounds
    mesh.apply_translation(-(lo + hi) / 2.0)
    radius = float(np.linalg.norm(mesh.vertices, axis=1).max())
    if radius <= 0:
        raise MeshError("mesh has zero extent")
    mesh.apply_scale(1.0 / radius)
    return mesh


def load_mesh(path: str | Path) -> trimesh.Trimesh:
    """Load any trimesh-readable file (scenes are flattened), normalised per POSE.md."""
    try:
        loaded = trimesh.load(str(path), force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for bad files
        raise MeshError(f"cannot load mesh {path}: {exc}") from exc
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise MeshError(f"mesh {path} has no triangles")
    return normalise_mesh(loaded)


def scan_repository(root: str | Path, categories: Sequence[str] = CATEGORIES) -> list[ModelSpec]:
    """Models of a repository laid out as `root/<category>/*.{off,obj,ply,stl,glb}`."""
    root = Path(root)
    if not root.is_dir():
        raise MeshError(f"model repository {root} does not exist")
    specs = []
    for category in categories:
        folder = root / category
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in MESH_SUFFIXES:
                specs.append(ModelSpec(f"{root.name}/{category}/{path.stem}", category, path=str(path)))
    if not specs:
        raise MeshError(f"no meshes found under {root}/<category>/*{{{','.join(MESH_SUFFIXES)}}}")
    return specs


def builtin_specs(
    instances: int, categories: Sequence[str] = CATEGORIES, first_seed: int = 0
) -> list[ModelSpec]:
    """`instances` procedural models per category, seeds first_seed .. first_seed+instances-1."""
    return [
        ModelSpec(f"builtin/{c}/{s:04d}", c, seed=s)
        for c in categories
        for s in range(first_seed, first_seed + instances)
    ]


def builtin_spec(model_id: str) -> ModelSpec | None:
    """The procedural model a `builtin_specs` id ("builtin/<category>/<seed>") names, else None."""
    parts = model_id.split("/")
    if len(parts) != 3 or parts[0] != "builtin" or parts[1] not in CATEGORIES or not parts[2].isdigit():
        return None
    return ModelSpec(model_id, parts[1], seed=int(parts[2]))


def hold_out(specs: Iterable[ModelSpec], per_category: int, seed: int = 0,
             fold: int = 0) -> tuple[list[ModelSpec], list[ModelSpec]]:
    """Split into (train, held_out) keeping `per_category` unseen models per category.

    Each category's models are shuffled once by `seed`; fold k holds out the k-th run of
    `per_category` of them (wrapping around), so folds 0, 1, ... hold out disjoint models
    as long as a category has enough of them: cross-validation over which models are unseen.
    A category with a single model keeps it for training: it cannot be both.
    """
    if fold < 0:
        raise ValueError(f"fold must be 0 or more, got {fold}")
    by_cat: dict[str, list[ModelSpec]] = {}
    for s in specs:
        by_cat.setdefault(s.category, []).append(s)
    rng = random.Random(seed)
    train, held = [], []
    for cat in sorted(by_cat):
        items = sorted(by_cat[cat], key=lambda s: s.model_id)
        rng.shuffle(items)
        k = min(per_category, len(items) - 1)
        start = fold * k % len(items) if k else 0
        items = items[start:] + items[:start]
        held += items[:k]
        train += items[k:]
    return train, held
