"""Hybrid training meshes: which faces each part gives, the matched cross-section, and which meshes are used."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import trimesh

from vantage.train.hybrids import hybrid_mesh, hybrid_specs
from vantage.train.meshes import MeshError, ModelSpec, builtin_specs, scan_repository


def _box(extents: tuple[float, float, float]) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=extents)


def test_front_of_the_first_joined_to_the_back_of_the_second_with_its_cross_section() -> None:
    long_box = _box((1.0, 3.0, 1.0))  # normalised: half-width 0.302, half-length 0.905
    ball = trimesh.creation.icosphere(subdivisions=2, radius=2.0)  # normalised: radius 1
    joined = hybrid_mesh(long_box, ball, "y")

    assert np.linalg.norm(joined.vertices, axis=1).max() == pytest.approx(1.0)  # normalised again (POSE.md)
    y = joined.vertices[:, 1]
    assert (np.abs(y - y.min()) < 1e-9).sum() == 4, "the front end is the box's flat end"
    # the back is half the ball, squeezed to the box's cross-section: length 0.905 + 1, width 0.603
    assert np.ptp(y) / np.ptp(joined.vertices[:, 0]) == pytest.approx((0.9045 + 1.0) / 0.603, rel=0.01)
    assert np.ptp(joined.vertices[:, 2]) == pytest.approx(np.ptp(joined.vertices[:, 0]))
    cut = y.min() + np.ptp(y) * 0.9045 / 1.9045
    back = joined.vertices[y > cut + 1e-6]
    assert len(back) and np.abs(back[:, 0]).max() <= np.abs(joined.vertices[:, 0]).max() + 1e-9


def test_a_bottom_top_hybrid_takes_the_first_mesh_below_and_the_second_above() -> None:
    low, high = _box((2.0, 2.0, 1.0)), trimesh.creation.icosphere(subdivisions=2)
    joined = hybrid_mesh(low, high, "z")
    lowest = joined.vertices[:, 2] < joined.vertices[:, 2].min() + 1e-6
    assert lowest.sum() == 4, "the box's flat bottom (four corners) is the hybrid's bottom"
    assert joined.vertices[:, 2].max() > 0.3  # and the ball's dome is its top


def test_bad_cuts_and_one_sided_meshes_are_refused() -> None:
    with pytest.raises(ValueError, match="cut must be one of"):
        hybrid_mesh(_box((1, 1, 1)), _box((1, 1, 1)), "x")
    flat = trimesh.Trimesh([[-1, 0, 0], [1, 0, 0], [0, 0, 1]], [[0, 1, 2]])  # nothing in front of the y = 0 plane
    with pytest.raises(MeshError, match="first mesh has no faces on its side of the y cut"):
        hybrid_mesh(flat, _box((1, 1, 1)), "y")


def _repository(root: Path) -> Path:
    for category, count in (("car", 3), ("bus", 1)):
        (root / category).mkdir(parents=True)
        for n in range(count):
            _box((1.0 + n, 2.0, 1.0)).export(root / category / f"{n:02d}.ply")
    return root


def test_hybrids_pair_only_the_given_meshes_of_one_category(tmp_path: Path) -> None:
    specs = scan_repository(_repository(tmp_path / "repo")) + builtin_specs(2, ["car"])
    given = [s for s in specs if not s.model_id.endswith("car/02")]  # as if car 02 were held out

    hybrids = hybrid_specs(given, 10, seed=1)
    assert len(hybrids) == 4, "two car meshes give 2 ordered pairs x 2 cuts; one bus and the built-ins give none"
    assert len({h.model_id for h in hybrids}) == 4 and {h.cut for h in hybrids} == {"y", "z"}
    used = {h.path for h in hybrids} | {h.donor for h in hybrids}
    assert used == {s.path for s in given if s.category == "car" and s.path}
    assert all(h.path != h.donor and h.category == "car" for h in hybrids)
    assert hybrid_specs(given, 2, seed=1) == hybrids[:2] and hybrid_specs(given, 10, seed=1) == hybrids
    assert hybrid_specs(given, 0) == []
    with pytest.raises(ValueError, match="per_category must be 0 or more"):
        hybrid_specs(given, -1)

    spec = pickle.loads(pickle.dumps(hybrids[0]))  # renderer workers load specs themselves
    mesh = spec.load()
    assert isinstance(spec, ModelSpec) and len(mesh.faces) > 0
    assert np.linalg.norm(mesh.vertices, axis=1).max() == pytest.approx(1.0)
