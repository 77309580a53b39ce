"""Compact wireframes of 3D models, stored in the view index so that clients can draw the retrieved model.

A wireframe is the mesh's feature lines: boundary edges, edges of more than two
faces (where parts meet) and edges whose faces fold by at least `SHARP_DEG`. Flat
triangulation diagonals and the facets of smooth surfaces are left out, so a box
gives its 12 edges. The lines are chained into polylines, simplified (Ramer–
Douglas–Peucker, `TOLERANCE` object radii) and chosen greedily by the space they
cover within a budget of segments: a CAD mesh of 50k faces shrinks to its outlines
in a few kilobytes. Whole polylines are the unit because ranking single edges by
length keeps the longest facets and loses every curve; coverage rather than length
because CAD wheels and bottles hold dozens of parallel rings that would fill the
budget and leave the rest of the object out. Coordinates are those of the mesh, the
object frame of POSE.md after `normalise_mesh` (what the renderer draws).
"""

from __future__ import annotations

import heapq
from collections import defaultdict

import numpy as np
import trimesh

SHARP_DEG = 30.0  # fold between face normals that makes an edge a feature line
TOLERANCE = 0.01  # simplification tolerance in object radii: about a pixel on a 200-pixel box
CELL = 0.05  # coverage cubes (object radii) when choosing which lines to keep
MAX_SEGMENTS = 300  # per model: ~7 kB as float32, small enough to send with every streamed frame


def feature_edges(mesh: trimesh.Trimesh, sharp_deg: float = SHARP_DEG) -> np.ndarray:
    """Feature edges as sorted vertex-index pairs (E, 2): boundary, non-manifold and sharp edges.

    The mesh must have merged vertices (a file's split vertices make every edge a boundary).
    """
    edges, counts = np.unique(mesh.edges_sorted, axis=0, return_counts=True)
    sharp = mesh.face_adjacency_edges[mesh.face_adjacency_angles >= np.radians(sharp_deg)]
    return np.unique(np.concatenate([edges[counts != 2], np.sort(sharp, axis=1)]), axis=0)


def chains(edges: np.ndarray) -> list[np.ndarray]:
    """Vertex paths covering every edge once, broken at ends and junctions (degree ≠ 2); a closed
    loop starts and ends on the same vertex."""
    neighbours: dict[int, list[int]] = defaultdict(list)
    for a, b in edges.tolist():
        neighbours[a].append(b)
        neighbours[b].append(a)
    used: set[tuple[int, int]] = set()

    def walk(a: int, b: int) -> list[int]:
        path = [a]
        while (min(a, b), max(a, b)) not in used:
            used.add((min(a, b), max(a, b)))
            path.append(b)
            if len(neighbours[b]) != 2:
                break
            a, b = b, neighbours[b][1] if neighbours[b][0] == a else neighbours[b][0]
        return path

    ends = [v for v in neighbours if len(neighbours[v]) != 2]
    paths = [walk(a, b) for a in ends for b in neighbours[a]]
    paths += [walk(a, neighbours[a][0]) for a in neighbours]  # what is left are closed loops
    return [np.asarray(p) for p in paths if len(p) > 1]


def simplify(points: np.ndarray, tolerance: float = TOLERANCE) -> np.ndarray:
    """Ramer–Douglas–Peucker on a 3D polyline (N, 3): the vertices within `tolerance` of the line
    through their kept neighbours are dropped; the ends are always kept."""
    keep = np.zeros(len(points), bool)
    keep[[0, -1]] = True
    stack = [(0, len(points) - 1)]
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        inner, chord = points[i + 1:j] - points[i], points[j] - points[i]
        length = np.linalg.norm(chord)
        dist = (np.linalg.norm(np.cross(inner, chord), axis=1) / length if length > 1e-12
                else np.linalg.norm(inner, axis=1))
        k = int(np.argmax(dist))
        if dist[k] > tolerance:
            keep[i + 1 + k] = True
            stack += [(i, i + 1 + k), (i + 1 + k, j)]
    return points[keep]


def cells(line: np.ndarray, cell: float = CELL) -> set[tuple[int, int, int]]:
    """The cubes of side `cell` that a polyline (N, 3) passes through, sampled every half cell."""
    steps = np.ceil(np.linalg.norm(np.diff(line, axis=0), axis=1) / (cell / 2)).astype(int) + 1
    points = np.concatenate([np.linspace(a, b, n + 1) for a, b, n in zip(line[:-1], line[1:], steps)])
    return set(map(tuple, np.floor(points / cell).astype(np.int64).tolist()))


def pick(lines: list[np.ndarray], max_segments: int) -> list[np.ndarray]:
    """Polylines chosen greedily by the cubes (`cells`) they cover that the chosen ones do not, until
    nothing new is covered or the budget is spent; one that no longer fits is skipped for shorter ones."""
    covers = [cells(line) for line in lines]
    heap = [(-len(c), i) for i, c in enumerate(covers)]
    heapq.heapify(heap)
    covered: set[tuple[int, int, int]] = set()
    chosen, count = [], 0
    while heap and count < max_segments:
        _, i = heapq.heappop(heap)
        gain = len(covers[i] - covered)
        if gain == 0 or count + len(lines[i]) - 1 > max_segments:
            continue
        if heap and gain < -heap[0][0]:  # a stale bound (lazy greedy): another line may cover more now
            heapq.heappush(heap, (-gain, i))
            continue
        covered |= covers[i]
        chosen.append(lines[i])
        count += len(lines[i]) - 1
    return chosen


def wireframe(mesh: trimesh.Trimesh, max_segments: int = MAX_SEGMENTS, sharp_deg: float = SHARP_DEG,
              tolerance: float = TOLERANCE) -> np.ndarray:
    """The model's wireframe as line segments (S, 2, 3) float32 in the mesh's coordinates, S ≤ max_segments."""
    merged = mesh.copy()
    merged.merge_vertices()
    merged.update_faces(merged.unique_faces())  # CAD files often list faces twice (double-sided)
    lines = [simplify(merged.vertices[c], tolerance) for c in chains(feature_edges(merged, sharp_deg))]
    segments = [np.stack([line[:-1], line[1:]], axis=1) for line in pick(lines, max_segments)]
    return np.concatenate(segments).astype(np.float32) if segments else np.zeros((0, 2, 3), np.float32)
