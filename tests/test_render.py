"""Renderer and dataset writer (train/render.py, train/backgrounds.py) on real rendered images.

Labels are checked independently of the renderer: every mesh triangle is projected
with the manifest's rotation, camera position and K (numpy + cv2.fillConvexPoly,
pixel centres at +0.5 as train/render.py documents) and must reproduce the saved mask.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh

from vantage.geometry import camera_position, viewpoint_to_rotation
from vantage.train.backgrounds import make_background
from vantage.train.meshes import ModelSpec, normalise_mesh
from vantage.train.render import (
    MANIFEST_FORMAT,
    MANIFEST_KEYS,
    MeshRenderer,
    RenderConfig,
    icosphere_directions,
    intrinsics,
    mask_box,
    read_manifest,
    render_dataset,
    rendered_with,
    sample_viewpoints,
    square_crop_window,
    stretch_mesh,
)

CAD_ROOT = Path(__file__).resolve().parents[2] / "shared/data/pascal3d_cad"
CAD_MODEL = CAD_ROOT / "car" / "01.off"


# -- helpers ---------------------------------------------------------------------------
def marked_mesh() -> trimesh.Trimesh:
    """Asymmetric test object: a long body along x, a mast rising at +x, a fin sticking out at −y, −x."""
    body = trimesh.creation.box(extents=(1.2, 0.5, 0.35))
    mast = trimesh.creation.box(extents=(0.12, 0.12, 0.6))
    mast.apply_translation((0.45, 0.0, 0.175 + 0.3))
    fin = trimesh.creation.box(extents=(0.3, 0.2, 0.1))
    fin.apply_translation((-0.3, -0.35, 0.0))
    return normalise_mesh(trimesh.util.concatenate([body, mast, fin]))


def write_mesh(mesh: trimesh.Trimesh, path: Path) -> Path:
    mesh.export(str(path))
    return path


def project_mask(mesh: trimesh.Trimesh, rotation, centre, K, width: int, height: int, scale: int = 5) -> np.ndarray:
    """Silhouette by projecting and filling every triangle (independent of the ray caster).

    Triangles are filled at an odd `scale`× resolution, where the fine pixel
    (scale·v + scale//2, scale·u + scale//2) is centred on the centre of pixel (u, v):
    sampling it is the renderer's pixel-centre rule, up to cv2's conservative
    (boundary-inclusive) filling, i.e. 1/scale pixel.
    """
    xc = (np.asarray(mesh.vertices) - np.asarray(centre)) @ np.asarray(rotation).T
    assert np.all(xc[:, 2] > 0), "mesh behind the camera"
    uv = (xc @ np.asarray(K).T)[:, :2] / xc[:, 2:3]
    # cv2 puts integer coordinates at pixel centres, ours are at +0.5 → shift; 4 fractional bits
    pts = np.round((uv * scale - 0.5) * 16).astype(np.int32)[np.asarray(mesh.faces)]
    fine = np.zeros((height * scale, width * scale), np.uint8)
    for tri in pts:
        cv2.fillConvexPoly(fine, tri, 1, lineType=cv2.LINE_8, shift=4)
    return fine[scale // 2 :: scale, scale // 2 :: scale].astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path} not decodable"
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_mask(path: Path) -> np.ndarray:
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert m is not None and m.ndim == 2, f"{path} not a single-channel PNG"
    assert set(np.unique(m).tolist()) <= {0, 255}
    return m > 0


# -- label consistency -------------------------------------------------------------------
@pytest.fixture(scope="module")
def marked_spec(tmp_path_factory) -> ModelSpec:
    folder = tmp_path_factory.mktemp("meshes")
    return ModelSpec("test/marked", "car", path=str(write_mesh(marked_mesh(), folder / "marked.ply")))


@pytest.fixture(params=["marked", "cad"])
def label_spec(request, marked_spec) -> ModelSpec:
    if request.param == "marked":
        return marked_spec
    if not CAD_MODEL.is_file():
        pytest.skip(f"real CAD meshes not present at {CAD_ROOT} (shared data folder beside the checkout)")
    return ModelSpec("pascal3d/car/01", "car", path=str(CAD_MODEL))


@pytest.mark.parametrize(
    "crop,antialias,shapes",
    [("none", "blur", 1), ("square", "blur", 1), ("box", "blur", 1), ("none", "supersample", 1), ("none", "blur", 5)],
)
def test_manifest_labels_reproduce_saved_masks(tmp_path, label_spec, crop, antialias, shapes):
    """Projecting the mesh with a view's (rotation, distance·camera_position, K) gives its saved mask.

    With shape augmentation each view draws its own stretched copy: the manifest's
    "stretch" must rebuild it, and the unstretched mesh must not fit those views.
    """
    config = RenderConfig(
        shape_variants=shapes,
        shape_stretch=1.5,
        image_size=128,
        views_per_model=5,
        theta_std_deg=25.0,  # clearly nonzero in-plane rotations
        elevation_range=(-60.0, 80.0),
        crop=crop,
        antialias=antialias,
        image_format="png",
        seed=7,
    )
    manifest = render_dataset([label_spec], tmp_path / "ds", config, workers=1, progress=False)
    mesh = label_spec.load()
    records = read_manifest(manifest)
    assert len(records) == 5
    assert max(abs(r["theta"]) for r in records) > 5.0
    stretches = np.array([r["stretch"] for r in records])
    assert np.array_equal(stretches[0], np.ones(3)), "the first shape is the mesh itself"
    assert len({tuple(s) for s in stretches}) == shapes
    assert np.all((stretches >= 1 / 1.5) & (stretches <= 1.5))
    scores, unstretched = [], []
    for r in records:
        mask = read_mask(tmp_path / "ds" / r["mask"])
        assert mask.shape == (r["height"], r["width"])
        rotation = np.array(r["rotation"]).reshape(3, 3)
        expected_r = viewpoint_to_rotation(r["azimuth"], r["elevation"], r["theta"])
        np.testing.assert_allclose(rotation, expected_r, atol=1e-12)
        centre = r["distance"] * np.array(r["camera_position"])
        K = np.array(r["K"]).reshape(3, 3)
        drawn = stretch_mesh(mesh, r["stretch"])
        expected = project_mask(drawn, rotation, centre, K, r["width"], r["height"])
        score = iou(mask, expected)
        if shapes > 1:
            unstretched.append(iou(mask, project_mask(mesh, rotation, centre, K, r["width"], r["height"])))
        scores.append(score)
        assert score > 0.95, f"view {r['index']} ({crop}): IoU {score:.3f} between saved and projected mask"
        if crop == "square":
            assert (r["width"], r["height"]) == (config.crop_size, config.crop_size)
    # Tighter on average: a half-pixel error in the pixel-centre convention brings the mean
    # to about 0.97 (uncropped) / 0.975 (square crops, whose mask is resampled by crop_square).
    assert np.mean(scores) > (0.978 if crop == "square" else 0.985), scores
    if shapes > 1:
        assert min(unstretched[1:]) < 0.93, f"stretched views fit the unstretched mesh: {unstretched}"


def test_projection_check_detects_wrong_labels(tmp_path, marked_spec):
    """The IoU check above is not vacuous: a 20° azimuth error or a mirrored K fails it."""
    config = RenderConfig(image_size=128, theta_std_deg=0.0, seed=3)
    renderer = MeshRenderer(marked_spec.load())
    rng = np.random.default_rng(0)
    view = renderer.render(35.0, 20.0, 10.0, 3.0, rng, config)
    mesh = marked_spec.load()
    centre = view.viewpoint[3] * camera_position(view.viewpoint[0], view.viewpoint[1])
    good = project_mask(mesh, view.rotation, centre, view.K, 128, 128)
    assert iou(view.mask, good) > 0.95
    wrong_r = viewpoint_to_rotation(view.viewpoint[0] + 20.0, view.viewpoint[1], view.viewpoint[2])
    wrong_c = view.viewpoint[3] * camera_position(view.viewpoint[0] + 20.0, view.viewpoint[1])
    assert iou(view.mask, project_mask(mesh, wrong_r, wrong_c, view.K, 128, 128)) < 0.9
    flipped = np.diag([-1.0, 1.0, 1.0]) @ view.K
    flipped[0, 2] += 128
    assert iou(view.mask, project_mask(mesh, view.rotation, centre, flipped, 128, 128)) < 0.9


# -- POSE.md orientation -----------------------------------------------------------------
def test_front_view_sees_minus_y_and_z_up():
    """Azimuth 0, elevation 0, θ 0: the −y face faces the camera, +z is up, +x is on the right."""
    mesh = marked_mesh()
    renderer = MeshRenderer(mesh)
    config = RenderConfig(image_size=160, center_jitter=0.0, theta_std_deg=0.0)
    view = renderer.render(0.0, 0.0, 0.0, 3.5, np.random.default_rng(0), config)
    assert view.viewpoint[3] == 3.5  # fits without moving the camera
    cx, cy = view.K[0, 2], view.K[1, 2]
    assert (cx, cy) == (80.0, 80.0)

    # POSE.md worked example (0, 0, 0): X_cam = (x, −z, y + d); project the centre of
    # the body's −y face by hand and look up the face the renderer's ray hits there.
    np.testing.assert_allclose(view.rotation, [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)
    body_faces = 12  # trimesh.util.concatenate keeps the body's 12 triangles first
    body = mesh.vertices[mesh.faces[:body_faces]].reshape(-1, 3)
    front = np.array([body[:, 0].mean(), body[:, 1].min(), (body[:, 2].min() + body[:, 2].max()) / 2])
    f = view.K[0, 0]
    u = cx + f * front[0] / (front[1] + 3.5)
    v = cy - f * front[2] / (front[1] + 3.5)
    centre = 3.5 * camera_position(0.0, 0.0)
    np.testing.assert_allclose(centre, [0.0, -3.5, 0.0], atol=1e-12)
    faces = renderer.cast(view.rotation, centre, view.K, 160, 160)
    face = faces[int(v), int(u)]
    assert 0 <= face < body_faces, face
    np.testing.assert_allclose(mesh.vertices[mesh.faces[face]][:, 1], body[:, 1].min(), atol=1e-9)  # the −y face
    assert view.mask[int(v), int(u)]

    # In the rendered mask the mast (at +x, rising along +z) is the top-right part.
    mask = view.mask
    ys, xs = np.nonzero(mask)
    top = ys.min()
    assert top < cy - 30, "the mast (+z) must rise above the image centre"
    assert xs[ys == top].mean() > cx + 20, "the mast at +x must be on the right"
    bottom = ys.max()
    # not upside down: the narrow mast is at the top, the wide body at the bottom
    assert mask[top + 2].sum() < 0.3 * mask[bottom - 2].sum()
    # The fin sticks out towards the camera (−y) at −x: fin pixels lie left of the centre.
    fin_cols = np.nonzero(faces >= 24)[1]  # faces 24..35 are the fin's
    assert fin_cols.size > 0
    assert fin_cols.mean() < cx


@pytest.mark.parametrize("theta,expected_angle", [(30.0, -30.0), (-30.0, 30.0)])
def test_theta_turns_image_counter_clockwise(theta, expected_angle):
    """θ = +30: the object's +x axis tilts up-right on screen (POSE.md worked example)."""
    bar = normalise_mesh(trimesh.creation.box(extents=(1.6, 0.25, 0.25)))
    renderer = MeshRenderer(bar)
    config = RenderConfig(image_size=160, center_jitter=0.0)
    view = renderer.render(0.0, 0.0, theta, 3.5, np.random.default_rng(1), config)
    m = cv2.moments(view.mask.astype(np.uint8), binaryImage=True)
    # principal axis angle in image coordinates (x right, y down); up-right is negative
    angle = 0.5 * np.degrees(np.arctan2(2 * m["mu11"], m["mu20"] - m["mu02"]))
    assert abs(angle - expected_angle) < 3.0, angle
    # where the +x end is: project the bar's +x tip with the view's labels
    tip = np.array([bar.vertices[:, 0].max(), 0.0, 0.0])
    tip_cam = view.rotation @ (tip - view.viewpoint[3] * camera_position(0.0, 0.0))
    u, v = (view.K @ tip_cam)[:2] / tip_cam[2]
    if theta > 0:
        assert u > 80 and v < 80  # +x tip up-right
    else:
        assert u > 80 and v > 80


# -- dataset writer ----------------------------------------------------------------------
def _dataset_specs(folder: Path) -> list[ModelSpec]:
    chair_like = trimesh.util.concatenate(
        [trimesh.creation.box(extents=(0.8, 0.8, 0.1)), trimesh.creation.cylinder(radius=0.05, height=1.0)]
    )
    return [
        ModelSpec("test/marked", "car", path=str(write_mesh(marked_mesh(), folder / "marked.ply"))),
        ModelSpec("test/table", "diningtable", path=str(write_mesh(chair_like, folder / "table.off"))),
    ]


def _photo_dir(folder: Path) -> Path:
    photos = folder / "photos"
    photos.mkdir()
    yy, xx = np.mgrid[0:64, 0:96]
    a_rgb = np.dstack([np.full_like(xx, 40), yy * 3, xx * 2]).astype(np.uint8)  # R = 40
    b_rgb = np.dstack([np.full_like(xx, 200), yy, xx]).astype(np.uint8)  # R = 200
    cv2.imwrite(str(photos / "a.png"), cv2.cvtColor(a_rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(photos / "b.png"), cv2.cvtColor(b_rgb, cv2.COLOR_RGB2BGR))
    return photos


def test_render_dataset_writes_deterministic_consistent_dataset(tmp_path):
    specs = _dataset_specs(tmp_path)
    photos = _photo_dir(tmp_path)
    config = RenderConfig(
        image_size=96,
        views_per_model=6,
        photo_dir=str(photos),
        background_weights={"plain": 1.0, "texture": 1.0, "photo": 2.0},
        seed=11,
    )
    m1 = render_dataset(specs, tmp_path / "a", config, workers=2, progress=False)
    m2 = render_dataset(specs, tmp_path / "b", config, workers=1, progress=False)
    r1, r2 = read_manifest(m1), read_manifest(m2)
    assert m1 == tmp_path / "a" / "manifest.jsonl"
    assert len(r1) == 12
    assert r1 == r2, "same seed must give the same labels (whatever the worker count)"
    assert [r["index"] for r in r1] == list(range(12))
    assert {r["model_id"] for r in r1} == {"test/marked", "test/table"}
    assert {r["category"] for r in r1} == {"car", "diningtable"}
    assert {r["background"] for r in r1} <= {"plain", "texture", "photo"}
    assert "photo" in {r["background"] for r in r1}
    assert len({(r["azimuth"], r["elevation"]) for r in r1}) == 12
    for rec in r1:
        assert set(MANIFEST_KEYS) <= set(rec), set(MANIFEST_KEYS) - set(rec)
        assert rec["file"] == f"images/{rec['index']:07d}.jpg" and rec["mask"] == f"masks/{rec['index']:07d}.png"
        img = read_rgb(tmp_path / "a" / rec["file"])
        img2 = read_rgb(tmp_path / "b" / rec["file"])
        assert np.array_equal(img, img2), "same seed must give the same pixels"
        assert img.shape == (rec["height"], rec["width"], 3) == (96, 96, 3)
        mask = read_mask(tmp_path / "a" / rec["mask"])
        assert mask.any()
        x0, y0, x1, y1 = rec["box"]
        assert 0 <= x0 < x1 <= rec["width"] and 0 <= y0 < y1 <= rec["height"]
        assert mask_box(mask) == (x0, y0, x1, y1), "box must be tight around the mask"
        assert len(rec["rotation"]) == 9 and len(rec["K"]) == 9 and len(rec["camera_position"]) == 3
        R = np.array(rec["rotation"]).reshape(3, 3)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
        expected_c = camera_position(rec["azimuth"], rec["elevation"])
        np.testing.assert_allclose(rec["camera_position"], expected_c, atol=1e-12)
        assert 0 <= rec["azimuth"] < 360 and -20 <= rec["elevation"] <= 60 and -180 < rec["theta"] <= 180
        assert rec["distance"] >= 2.2
        # the object is not plastered over the background: pixels inside and outside the mask differ
        assert img[mask].std() > 0 or img[~mask].std() > 0
    symmetry = {r["model_id"]: r["z_symmetry"] for r in r1}
    assert symmetry["test/marked"] == {"angles": [], "continuous": False}
    table = symmetry["test/table"]  # a square top on a pole: quarter turns (and angles near them) map it onto itself
    assert {90.0, 180.0, 270.0} <= set(table["angles"]) and 30.0 not in table["angles"] and not table["continuous"]
    info = json.loads((tmp_path / "a" / "render.json").read_text())
    assert info["format"] == MANIFEST_FORMAT
    assert info["views"] == 12 and info["models"] == 2 and info["models_failed"] == []
    assert info["config"]["seed"] == 11 and info["views_per_second"] > 0
    assert RenderConfig.from_dict(info["config"]) == config

    assert info["model_ids"] == [s.model_id for s in specs]
    assert rendered_with(tmp_path / "a", config, specs) and not rendered_with(tmp_path / "a", replace(config, seed=12), specs)
    assert not rendered_with(tmp_path / "a", config, specs[:1]), "other models (another held-out split) render again"
    assert not rendered_with(tmp_path / "missing", config, specs)
    del info["format"]  # a render from before the manifest recorded z_symmetry must be made again
    (tmp_path / "a" / "render.json").write_text(json.dumps(info))
    assert not rendered_with(tmp_path / "a", config, specs)

    config12 = RenderConfig(image_size=96, views_per_model=6, seed=12)
    other = render_dataset(specs[:1], tmp_path / "c", config12, workers=1, progress=False)
    assert read_manifest(other)[0]["azimuth"] != r1[0]["azimuth"], "a different seed must change the views"


def test_unloadable_or_invisible_mesh_is_reported_not_fatal(tmp_path):
    bad = tmp_path / "bad.off"
    bad.write_text("not a mesh\n")
    # only zero-area triangles: loads, but no ray ever hits it (every view is re-sampled, then given up)
    flat = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 1]], faces=[[0, 1, 2]], process=False)
    assert MeshRenderer(normalise_mesh(flat)).render(0, 0, 0, 3, np.random.default_rng(0), RenderConfig()) is None
    flat_path = tmp_path / "flat.ply"
    flat.export(str(flat_path))
    specs = [
        ModelSpec("test/bad", "car", path=str(bad)),
        _dataset_specs(tmp_path)[0],
        ModelSpec("test/flat", "car", path=str(flat_path)),
    ]
    config = RenderConfig(image_size=64, views_per_model=2)
    manifest = render_dataset(specs, tmp_path / "ds", config, workers=1, progress=False)
    records = read_manifest(manifest)
    assert [r["model_id"] for r in records] == ["test/marked", "test/marked"]
    info = json.loads((tmp_path / "ds" / "render.json").read_text())
    assert len(info["models_failed"]) == 2
    assert "test/bad" in info["models_failed"][0] and "test/flat: object not visible" in info["models_failed"][1]
    assert info["resampled"] == config.max_resample  # gave up on its first view
    assert sorted(p.name for p in (tmp_path / "ds" / "images").iterdir()) == ["0000002.jpg", "0000003.jpg"]


# -- framing -------------------------------------------------------------------------
def test_fit_in_frame_keeps_object_and_crop_window_inside():
    """A long object seen side-on from close by would overflow a 36° view; the camera backs off instead,
    far enough that the square crop window (box + 10 % per side) needs no edge padding."""
    bar = normalise_mesh(trimesh.creation.box(extents=(1.9, 0.2, 0.2)))
    renderer = MeshRenderer(bar)
    rng = np.random.default_rng(0)
    fitted = renderer.render(0.0, 0.0, 0.0, 2.2, rng, RenderConfig(image_size=128))
    assert not fitted.truncated and fitted.viewpoint[3] > 2.2
    left, top, side = square_crop_window(fitted.box, 0.1)
    assert left >= 0 and top >= 0 and left + side <= 128 and top + side <= 128
    x0, y0, x1, y1 = fitted.box
    assert x1 - x0 > 0.75 * 128 / 1.2  # backed off only as far as needed
    loose = renderer.render(0.0, 0.0, 0.0, 2.2, rng, RenderConfig(image_size=128, fit_in_frame=False))
    assert loose.truncated and loose.viewpoint[3] == 2.2


# -- backgrounds -----------------------------------------------------------------------
def test_background_kinds(tmp_path):
    photos = _photo_dir(tmp_path)
    paths = sorted(str(p) for p in photos.iterdir())
    rng = np.random.default_rng(0)
    for _ in range(10):
        plain = make_background("plain", 64, rng)
        assert plain.shape == (64, 64, 3) and plain.dtype == np.uint8
        assert (plain == plain[0, 0]).all()
    for _ in range(30):
        tex = make_background("texture", 64, rng)
        assert tex.shape == (64, 64, 3) and tex.dtype == np.uint8
        assert len(np.unique(tex.reshape(-1, 3), axis=0)) > 1, "texture background is constant"
    reds = []
    for _ in range(12):
        photo = make_background("photo", 48, rng, paths)
        assert photo.shape == (48, 48, 3) and photo.dtype == np.uint8
        assert len(np.unique(photo.reshape(-1, 3), axis=0)) > 1
        reds.append(photo[..., 0].mean())
    # b.png has R = 200 everywhere, a.png R = 40: both must be used (RGB order kept)
    assert set(np.round(reds).tolist()) == {40.0, 200.0}
    with pytest.raises(ValueError):
        make_background("photo", 48, rng, [])
    with pytest.raises(ValueError):
        make_background("sky", 48, rng)


def test_photo_weight_ignored_without_photos(tmp_path):
    config = RenderConfig(image_size=64, views_per_model=3, background_weights={"photo": 1.0, "texture": 1.0})
    manifest = render_dataset(_dataset_specs(tmp_path)[:1], tmp_path / "ds", config, workers=1, progress=False)
    assert {r["background"] for r in read_manifest(manifest)} == {"texture"}


# -- viewpoint sampling ----------------------------------------------------------------
def test_icosphere_sampling_uses_icosphere_vertices():
    config = RenderConfig(sampling="icosphere", icosphere_subdivisions=2)
    verts = np.asarray(trimesh.creation.icosphere(subdivisions=2).vertices)
    verts = verts / np.linalg.norm(verts, axis=1, keepdims=True)
    views = sample_viewpoints(None, config, np.random.default_rng(0))
    assert views.shape == (len(verts), 4) == (162, 4)
    dirs = camera_position(views[:, 0], views[:, 1])
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-12)
    dist = np.linalg.norm(dirs[:, None, :] - verts[None, :, :], axis=2)
    assert dist.min(axis=1).max() < 1e-9  # every sample is a vertex
    assert sorted(dist.argmin(axis=1).tolist()) == list(range(162))  # each vertex once
    twice = sample_viewpoints(2 * 162, config, np.random.default_rng(0))
    idx = np.linalg.norm(camera_position(twice[:, 0], twice[:, 1])[:, None] - verts[None], axis=2).argmin(1)
    assert np.bincount(idx, minlength=162).tolist() == [2] * 162
    assert (views[:, 3] >= 2.2).all() and (views[:, 3] <= 3.5).all()

    upper = sample_viewpoints(None, RenderConfig(sampling="icosphere", upper_hemisphere=True), np.random.default_rng(0))
    assert (upper[:, 1] >= -1e-9).all()
    assert len(upper) == int((verts[:, 2] >= -1e-9).sum()) == len(icosphere_directions(2, True))


def test_random_sampling_ranges():
    config = RenderConfig(elevation_range=(-10.0, 40.0), distance_range=(2.5, 3.0), theta_std_deg=8.0)
    v = sample_viewpoints(2000, config, np.random.default_rng(0))
    assert v.shape == (2000, 4)
    assert (v[:, 0] >= 0).all() and (v[:, 0] < 360).all() and v[:, 0].max() > 350 and v[:, 0].min() < 10
    assert (v[:, 1] >= -10).all() and (v[:, 1] <= 40).all()
    assert 6.0 < v[:, 2].std() < 10.0 and (v[:, 2] > -180).all() and (v[:, 2] <= 180).all()
    assert (v[:, 3] >= 2.5).all() and (v[:, 3] <= 3.0).all()


def test_config_validation():
    with pytest.raises(ValueError, match="crop"):
        RenderConfig(crop="circle")
    with pytest.raises(ValueError, match="elevation_range"):
        RenderConfig(elevation_range=(50.0, 10.0))
    with pytest.raises(ValueError, match="background"):
        RenderConfig(background_weights={"sky": 1.0})
    with pytest.raises(ValueError, match="shape_variants"):
        RenderConfig(views_per_model=4, shape_variants=5)
    with pytest.raises(ValueError, match="shape_stretch"):
        RenderConfig(shape_stretch=0.8)
    with pytest.raises(ValueError, match="ground_prob"):
        RenderConfig(ground_prob=1.5)
    assert RenderConfig().focal == pytest.approx(80.0 / np.tan(np.radians(18.0)))
    np.testing.assert_allclose(intrinsics(100.0, 5.0, 6.0), [[100, 0, 5], [0, 100, 6], [0, 0, 1]])


def _ground_pair(renderer: MeshRenderer, elevation: float, seed: int) -> tuple:
    """The same view twice, with a shadow of strength 0.6 and of strength 0: the same random draws, so
    the two images differ by the shadow alone."""
    views = []
    for strength in (0.6, 0.0):
        config = RenderConfig(image_size=96, ground_prob=1.0, ground_shadow_range=(strength, strength),
                              light_camera_bias=0.0, background_weights={"plain": 1.0}, ground_softness=0.0)
        views.append(renderer.render(30.0, elevation, 0.0, 2.6, np.random.default_rng(seed), config))
    return tuple(views)


def test_ground_shadow_darkens_only_the_background_next_to_the_object():
    """A box standing on the plane, seen from above: the shadow touches the box, lies outside its mask,
    only darkens, and leaves pixels, mask, box and labels of the object alone; from below, no shadow."""
    renderer = MeshRenderer(normalise_mesh(trimesh.creation.box(extents=(1.0, 0.6, 0.5))))
    touching = 0
    for seed in range(6):
        shadowed, plain = _ground_pair(renderer, 35.0, seed)
        assert shadowed.ground and plain.ground
        np.testing.assert_array_equal(shadowed.mask, plain.mask)
        np.testing.assert_array_equal(shadowed.rotation, plain.rotation)
        assert shadowed.box == plain.box
        diff = plain.image.astype(int) - shadowed.image.astype(int)
        assert diff.min() >= -1, "a shadow only darkens"
        dark = diff.max(axis=2) > 8
        assert not (dark & shadowed.mask).any(), "the object's own pixels are not shadowed"
        near = cv2.dilate(shadowed.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        touching += bool((dark & near).any())
    assert touching >= 2, "a box on the ground casts a contact shadow, in view for some lights"
    below, plain_below = _ground_pair(renderer, -15.0, 0)
    np.testing.assert_array_equal(below.image, plain_below.image)  # the camera under the plane sees no shadow

