"""Hybrid training meshes: one CAD mesh's front (or bottom) joined to another's back (or top).

Why: the reference recipe's error on unseen meshes is a generalisation gap across
instances (the networks fit their ~3 training meshes per category to ~5° and unseen ones
stay at 15°), and a third of the misses are front/back half turns. Stretched copies add
proportions but no new parts; a hybrid adds a new combination of real parts in the
category's canonical frame (POSE.md: +z up, front faces −y), so that a network has to read
the front from the front's own cues rather than from one mesh's overall silhouette.

A cut is the plane through 0 across an object axis of the normalised meshes (their
bounding-box centres; faces crossing it are cut): y splits front (−y) from back, z bottom
from top. The second mesh is scaled along the other
two axes so that its cross-section extents match the first's, and the joined mesh is
normalised again (POSE.md).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

import numpy as np
import trimesh

from vantage.train.meshes import MeshError, ModelSpec, normalise_mesh

CUTS = {"y": 1, "z": 2}  # front | back, bottom | top


def hybrid_mesh(first: trimesh.Trimesh, second: trimesh.Trimesh, cut: str) -> trimesh.Trimesh:
    """`first`'s faces on the negative side of the cut (its front, or its bottom) joined to
    `second`'s on the positive side (its back, or its top); normalised (POSE.md)."""
    if cut not in CUTS:
        raise ValueError(f"cut must be one of {sorted(CUTS)}, got {cut!r}")
    axis = CUTS[cut]
    a, b = normalise_mesh(first), normalise_mesh(second)
    others = [i for i in range(3) if i != axis]
    scale = np.ones(4)
    scale[others] = a.extents[others] / np.maximum(b.extents[others], 1e-9)
    b.apply_transform(np.diag(scale))
    parts = []
    for mesh, side, name in ((a, -1.0, "first"), (b, 1.0, "second")):
        normal = np.zeros(3)
        normal[axis] = side
        # faces crossing the cut are cut; no cap (the ray-caster shades either side of a face)
        vertices, faces = trimesh.intersections.slice_faces_plane(mesh.vertices, mesh.faces, normal, np.zeros(3))[:2]
        if len(faces) == 0:
            raise MeshError(f"the {name} mesh has no faces on its side of the {cut} cut")
        parts.append(trimesh.Trimesh(vertices, faces, process=False))
    return normalise_mesh(trimesh.util.concatenate(parts))


def hybrid_specs(specs: Sequence[ModelSpec], per_category: int, seed: int = 0) -> list[ModelSpec]:
    """Up to `per_category` hybrids per category of the file meshes in `specs`, drawn by `seed`
    from every ordered pair of two meshes and every cut. Only the given meshes are used: pass
    the training meshes, never the held-out ones."""
    if per_category < 0:
        raise ValueError(f"per_category must be 0 or more, got {per_category}")
    by_category: dict[str, list[ModelSpec]] = {}
    for spec in specs:
        if spec.path is not None and spec.donor is None:
            by_category.setdefault(spec.category, []).append(spec)
    rng = random.Random(seed)
    out = []
    for category in sorted(by_category):
        meshes = sorted(by_category[category], key=lambda s: s.model_id)
        choices = [(a, b, cut) for a in meshes for b in meshes if a is not b for cut in sorted(CUTS)]
        rng.shuffle(choices)
        out += [ModelSpec(f"hybrid/{category}/{Path(a.path).stem}+{Path(b.path).stem}/{cut}", category, path=a.path,
                          donor=b.path, cut=cut)
                for a, b, cut in choices[:per_category]]
    return out
