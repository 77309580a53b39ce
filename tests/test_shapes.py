"""Procedural meshes (`vantage.train.shapes`): size, determinism, variety, and POSE.md orientation.

Orientation checks are geometric and chosen so that they fail if a category's front
were at +y instead of −y, or if its up axis were ±y instead of +z.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from vantage.categories import CATEGORIES
from vantage.train.meshes import ModelSpec, hold_out, load_mesh, scan_repository
from vantage.train.shapes import CATEGORY_BUILDERS, generate_mesh

SEEDS = range(6)
CAD_ROOT = Path(__file__).resolve().parents[2] / "shared/data/pascal3d_cad"


@lru_cache(maxsize=None)
def normalised_mesh(category: str, seed: int):
    """The built-in model as ModelSpec.load() gives it (bbox-centred, radius 1), built once per test run."""
    return ModelSpec(f"builtin/{category}/{seed:04d}", category, seed=seed).load()


def normalised(category: str, seed: int) -> np.ndarray:
    return normalised_mesh(category, seed).vertices


def extents(v: np.ndarray) -> np.ndarray:
    return v.max(axis=0) - v.min(axis=0)


def slab(v: np.ndarray, axis: int, fraction: float, high: bool) -> np.ndarray:
    """Vertices within `fraction` of the extent from the max (high) or min end of `axis`."""
    cut = fraction * (v[:, axis].max() - v[:, axis].min())
    if high:
        return v[v[:, axis] >= v[:, axis].max() - cut]
    return v[v[:, axis] <= v[:, axis].min() + cut]


def span(v: np.ndarray, axis: int) -> float:
    return float(v[:, axis].max() - v[:, axis].min())


def test_builders_cover_the_categories_in_order():
    assert tuple(CATEGORY_BUILDERS) == CATEGORIES


@pytest.mark.parametrize("category", CATEGORIES)
def test_builds_small_finite_deterministic(category):
    for seed in SEEDS:
        mesh = normalised_mesh(category, seed)
        assert 50 < len(mesh.faces) < 6000, (category, seed, len(mesh.faces))
        assert np.isfinite(mesh.vertices).all()
    a, b = generate_mesh(category, 1234), generate_mesh(category, 1234)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)


@pytest.mark.parametrize("category", CATEGORIES)
def test_parts_are_closed_with_outward_normals(category):
    parts = CATEGORY_BUILDERS[category](np.random.default_rng(3))
    for part in parts:
        assert part.volume > 0, (category, part)


@pytest.mark.parametrize("category", CATEGORIES)
def test_seeds_differ(category):
    shapes = [extents(normalised(category, s)) for s in range(4)]
    proportions = [e / e.max() for e in shapes]
    for i in range(len(proportions)):
        for j in range(i + 1, len(proportions)):
            assert np.abs(proportions[i] - proportions[j]).max() > 1e-3, (category, i, j)


def test_unknown_category_names_the_known_ones():
    with pytest.raises(ValueError, match="aeroplane.*tvmonitor"):
        generate_mesh("giraffe", 0)


@pytest.mark.parametrize("category", CATEGORIES)
def test_modelspec_load_is_normalised(category):
    for seed in (0, 5):
        v = normalised(category, seed)
        assert np.linalg.norm(v, axis=1).max() == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose((v.min(axis=0) + v.max(axis=0)) / 2, 0.0, atol=1e-9)


# --- orientation (POSE.md: +z up, front towards −y) ----------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_aeroplane_nose_at_minus_y_fin_at_plus_y(seed):
    v = normalised("aeroplane", seed)
    e = extents(v)
    assert e[2] < min(e[0], e[1])  # flat: wings span x, fuselage spans y
    nose = slab(v, 1, 0.05, high=False)
    assert span(nose, 0) < 0.25 * e[0]  # a narrow nose, not the tailplane
    fin_top = slab(v, 2, 0.05, high=True)
    assert fin_top[:, 1].mean() > 0.2  # the fin, the highest part, is at the tail


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("category", ["chair", "sofa"])
def test_backrest_at_plus_y(category, seed):
    v = normalised(category, seed)
    top = slab(v, 2, 0.05, high=True)
    assert top[:, 1].mean() > 0.1
    assert extents(v)[2] > 0.3 * extents(v).max()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("category, window", [("bus", 0.03), ("train", 0.02), ("car", 0.15)])
def test_vehicles_long_along_y_with_lower_front(category, window, seed):
    v = normalised(category, seed)
    e = extents(v)
    assert e[1] > 1.5 * e[0] and e[1] > e[2]
    front, back = slab(v, 1, window, high=False), slab(v, 1, window, high=True)
    # A bevelled windscreen, a streamlined nose, or a hood: the front end is lower than the rear end.
    assert front[:, 2].max() < back[:, 2].max()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("category", ["bicycle", "motorbike"])
def test_handlebar_widest_and_at_the_front(category, seed):
    v = normalised(category, seed)
    e = extents(v)
    assert e[1] > e[2] > e[0]
    widest = v[np.abs(v[:, 0]) > 0.9 * np.abs(v[:, 0]).max()]
    assert widest[:, 1].mean() < -0.1


@pytest.mark.parametrize("seed", SEEDS)
def test_boat_bow_at_minus_y(seed):
    v = normalised("boat", seed)
    e = extents(v)
    assert e[1] > 2 * e[0]
    bow, stern = slab(v, 1, 0.05, high=False), slab(v, 1, 0.05, high=True)
    assert span(bow, 0) < 0.6 * span(stern, 0)  # a pointed bow, a wide transom
    assert span(stern, 0) > 0.5 * e[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_bottle_upright_and_round(seed):
    v = normalised("bottle", seed)
    e = extents(v)
    assert e[0] == pytest.approx(e[1], rel=0.05)
    assert e[2] > 2 * e[0]
    assert span(slab(v, 2, 0.1, high=True), 0) < 0.7 * e[0]  # the neck is at the top


@pytest.mark.parametrize("seed", SEEDS)
def test_diningtable_top_is_highest_and_wide(seed):
    v = normalised("diningtable", seed)
    e = extents(v)
    assert e[0] >= e[1] and e[0] > e[2]
    top = slab(v, 2, 0.02, high=True)
    assert span(top, 0) > 0.95 * e[0] and span(top, 1) > 0.95 * e[1]


@pytest.mark.parametrize("seed", SEEDS)
def test_tvmonitor_screen_faces_minus_y(seed):
    v = normalised("tvmonitor", seed)
    e = extents(v)
    assert e[0] > e[1] and e[0] > e[2] * 0.9
    front, back = slab(v, 1, 0.02, high=False), slab(v, 1, 0.02, high=True)
    assert span(front, 0) > 0.95 * e[0]  # the bezelled screen spans the full width
    assert span(front, 0) * span(front, 2) > 1.5 * span(back, 0) * span(back, 2)


# --- the real PASCAL3D+ CAD models beside the checkout -------------------------------


def test_real_cad_models_load_normalised():
    if not CAD_ROOT.is_dir():
        pytest.skip(f"no PASCAL3D+ CAD folder at {CAD_ROOT}")
    files = sorted(CAD_ROOT.glob("*/*.off"))
    specs = scan_repository(CAD_ROOT)
    assert len(specs) == len(files) == 53
    assert {s.category for s in specs} == set(CATEGORIES)
    assert sorted(Path(s.path) for s in specs) == files
    for spec in specs:
        mesh = load_mesh(spec.path)
        # As meshes.py normalises: centre of the bounds of the faces' vertices, farthest vertex at 1.
        np.testing.assert_allclose(mesh.bounds.mean(axis=0), 0.0, atol=1e-9, err_msg=spec.model_id)
        assert np.linalg.norm(mesh.vertices, axis=1).max() == pytest.approx(1.0, abs=1e-6), spec.model_id
        # Some OFF files carry unreferenced vertices; the rendered surface must still reach ~1.
        assert np.linalg.norm(mesh.triangles.reshape(-1, 3), axis=1).max() > 0.999, spec.model_id


def test_hold_out_folds_hold_out_disjoint_models_and_train_on_the_rest():
    sizes = {"car": 4, "bottle": 3, "train": 1}
    specs = [ModelSpec(f"repo/{c}/{i:02d}", c, path=f"{c}/{i:02d}.off") for c, n in sizes.items() for i in range(n)]
    held_by_fold = []
    for fold in range(3):
        train, held = hold_out(specs, 1, seed=5, fold=fold)
        assert sorted(s.model_id for s in train + held) == sorted(s.model_id for s in specs)
        assert {s.category for s in held} == {"car", "bottle"}, "a category with one model keeps it for training"
        held_by_fold.append({s.model_id for s in held})
    assert all(not a & b for i, a in enumerate(held_by_fold) for b in held_by_fold[i + 1:]), held_by_fold
    assert hold_out(specs, 1, seed=5, fold=3)[1] != hold_out(specs, 1, seed=5, fold=0)[1]  # car wraps later than bottle
    cars = [{s.model_id for s in hold_out(specs, 2, seed=5, fold=f)[1] if s.category == "car"} for f in (0, 1)]
    assert len(cars[0]) == len(cars[1]) == 2 and len(cars[0] | cars[1]) == 4, "two runs of two cover the four cars"
    with pytest.raises(ValueError, match="fold must be 0 or more"):
        hold_out(specs, 1, fold=-1)
