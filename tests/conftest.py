"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny model bundle (model.onnx + vantage.json) with the bundle-graph contract."""
    from serve_fixtures import make_tiny_bundle  # imports torch only when a test needs the bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(scope="session")
def indexed_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny bundle with the smallest view index in BUNDLE/index: 12 views of one built-in car."""
    import shutil

    from vantage.serve.retrieval import INDEX_DIR_NAME
    from vantage.train.indexing import IndexConfig, build_index
    from vantage.train.meshes import builtin_specs

    root = tmp_path_factory.mktemp("indexed-small") / "bundle"
    shutil.copytree(tiny_bundle, root)
    config = IndexConfig(subdivisions=0, backgrounds=1, pca_dim=0, thumbnail_size=0)
    build_index(root, builtin_specs(1, categories=["car"]), root / INDEX_DIR_NAME, config, workers=0, progress=False)
    return root


@pytest.fixture(scope="session")
def small_renders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Labelled renders (2 views of one procedural model per category) for calibration and accuracy checks."""
    from export_fixtures import render_small_set

    return render_small_set(tmp_path_factory.mktemp("renders") / "small")


@pytest.fixture(scope="session")
def car_chair_renders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose `views` holds 3 labelled renders (200², with intrinsics) each of one built-in car and chair,
    for the tools that derive view folders from renders (corruptions, off-axis views); tests write beside it."""
    from vantage.train.meshes import builtin_specs
    from vantage.train.render import RenderConfig, render_dataset

    root = tmp_path_factory.mktemp("derivable")
    render_dataset(builtin_specs(1, ["car", "chair"]), root / "views", RenderConfig(image_size=200, views_per_model=3),
                   workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def quantised_bundle(tmp_path_factory: pytest.TempPathFactory, small_renders: Path) -> Path:
    """A 64² bundle (ImageNet backbone, random heads) with accepted int8 and fp16 ONNX Runtime variants."""
    from export_fixtures import export_small_bundle

    from vantage.bundle import load_metadata
    from vantage.export.quantize import build_variants
    from vantage.export.renders import load_renders

    bundle = export_small_bundle(tmp_path_factory.mktemp("bundle") / "quantised")
    renders = load_renders(small_renders, load_metadata(bundle))
    build_variants(bundle, ["int8", "fp16"], renders, renders, max_mederr_increase=180.0, repeats=3)
    return bundle


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small but really trained bundle (cars and chairs, built-in models), for end-to-end checks.

    Sized to train in well under a minute on 2 CPU cores; good enough to beat chance
    clearly, not to be accurate.
    """
    from vantage.export.onnx_export import export_bundle
    from vantage.train.meshes import builtin_specs
    from vantage.train.render import RenderConfig, render_dataset
    from vantage.train.trainer import TrainConfig, load_model, train

    root = tmp_path_factory.mktemp("trained")
    render_dataset(
        builtin_specs(4, categories=["car", "chair"]), root / "data",
        RenderConfig(views_per_model=60, seed=1, elevation_range=(0.0, 45.0), theta_std_deg=5.0),
        workers=2, progress=False,
    )
    cfg = TrainConfig(data=[str(root / "data")], out=str(root / "run"), epochs=12, batch_size=32,
                      augmented_copies=1, progress=False)
    cfg.model.categories = ["car", "chair"]
    model, _ = load_model(train(cfg))
    return export_bundle(model, root / "bundle", model_version="trained-test")
