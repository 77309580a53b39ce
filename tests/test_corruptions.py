"""Camera corruptions of labelled renders (`vantage corrupt`) and the robustness bench over them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vantage.train.corruptions import CORRUPTIONS, SEVERITIES, corrupt, make_corrupted


def _view(car_chair_renders: Path, index: int = 0) -> tuple[np.ndarray, list[float]]:
    rec = [json.loads(line) for line in (car_chair_renders / "views" / "manifest.jsonl").open()][index]
    return cv2.imread(str(car_chair_renders / "views" / rec["file"])), rec["box"]


def _sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def test_every_corruption_spoils_the_view_more_at_each_severity(car_chair_renders: Path) -> None:
    image, box = _view(car_chair_renders)
    for name in CORRUPTIONS:
        damage = []
        for severity in SEVERITIES:
            out = corrupt(image, name, severity, np.random.default_rng(3), box)
            assert out.shape == image.shape and out.dtype == np.uint8, name
            np.testing.assert_array_equal(out, corrupt(image, name, severity, np.random.default_rng(3), box))
            damage.append(np.abs(out.astype(float) - image).mean())
        assert 0 < damage[0] < damage[1] < damage[2], (name, damage)


def test_each_corruption_does_what_its_name_says(car_chair_renders: Path) -> None:
    image, box = _view(car_chair_renders)
    rng = np.random.default_rng(0)
    assert corrupt(image, "dark", 3, rng, box).mean() < 0.5 * image.mean()
    bright = corrupt(image, "bright", 2, rng, box)
    assert bright.mean() > image.mean() and (bright == 255).mean() > (image == 255).mean()
    for blur in ("motion_blur", "defocus", "low_res"):
        assert _sharpness(corrupt(image, blur, 3, rng, box)) < 0.5 * _sharpness(image), blur
    noisy = corrupt(image, "noise", 2, rng, box).astype(float) - image
    assert abs(noisy.mean()) < 1.5 and 15 < noisy.std() < 21  # σ 20, less where it clips
    cast = corrupt(image, "colour_cast", 3, rng, box).astype(float).mean((0, 1)) / image.mean((0, 1))
    assert abs(cast[0] - cast[2]) > 0.6 and cast[1] == pytest.approx(1.0, abs=0.01)  # blue against red, green kept
    # an occluder lies inside the object's box, over about its share of it
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    changed = np.any(corrupt(image, "occlusion", 2, rng, box) != image, axis=2)
    assert not changed[:y0].any() and not changed[y1:].any() and not changed[:, :x0].any() and not changed[:, x1:].any()
    assert changed.sum() / ((x1 - x0) * (y1 - y0)) == pytest.approx(0.3, abs=0.06)


def test_bad_arguments_are_refused_with_the_choices(car_chair_renders: Path, tmp_path: Path) -> None:
    image, box = _view(car_chair_renders)
    with pytest.raises(ValueError, match="unknown corruption 'fog'.*motion_blur"):
        corrupt(image, "fog", 1, np.random.default_rng(), box)
    with pytest.raises(ValueError, match="severity must be one of"):
        corrupt(image, "noise", 4, np.random.default_rng(), box)
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        corrupt(image[..., 0], "noise", 1, np.random.default_rng(), box)
    with pytest.raises(ValueError, match="unknown corruption"):
        make_corrupted(car_chair_renders / "views", tmp_path / "out", "fog", 1)
    assert not (tmp_path / "out").exists()  # refused before anything was written
    with pytest.raises(ValueError, match="would replace the views"):
        make_corrupted(car_chair_renders / "views", car_chair_renders / "views", "noise", 1)


def test_corrupted_copies_keep_every_label_and_mask(car_chair_renders: Path, tmp_path: Path) -> None:
    source = [json.loads(line) for line in (car_chair_renders / "views" / "manifest.jsonl").open()]
    res = subprocess.run([sys.executable, "-m", "vantage", "corrupt", "--data", str(car_chair_renders / "views"), "--out",
                          str(tmp_path / "blurred"), "--corruption", "motion_blur", "--severity", "3"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    copied = [json.loads(line) for line in (tmp_path / "blurred" / "manifest.jsonl").open()]
    assert len(copied) == len(source) == 6
    for before, after in zip(source, copied):
        assert {k: v for k, v in after.items() if k not in ("file", "corruption", "severity")} == \
               {k: v for k, v in before.items() if k != "file"}
        assert (after["corruption"], after["severity"], after["file"][-4:]) == ("motion_blur", 3, ".png")
        original = cv2.imread(str(car_chair_renders / "views" / before["file"]))
        blurred = cv2.imread(str(tmp_path / "blurred" / after["file"]))
        assert _sharpness(blurred) < _sharpness(original)
        assert (tmp_path / "blurred" / after["mask"]).read_bytes() == (car_chair_renders / "views" / before["mask"]).read_bytes()
    missing = subprocess.run([sys.executable, "-m", "vantage", "corrupt", "--data", str(tmp_path / "nowhere"), "--out",
                              str(tmp_path / "x"), "--corruption", "noise"], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "has no manifest.jsonl" in missing.stderr


def test_the_bench_measures_each_corruption_beside_the_clean_views(car_chair_renders: Path, tmp_path: Path, capsys) -> None:
    from vantage.train.corruption_bench import main
    from vantage.train.trainer import TrainConfig, train

    cfg = TrainConfig(data=[str(car_chair_renders / "views")], out=str(tmp_path / "run"), epochs=1, batch_size=6,
                      augmented_copies=0, progress=False)
    cfg.model.categories, cfg.model.input_size, cfg.model.head = ["car", "chair"], 64, "regression_g"
    checkpoint = train(cfg)
    main(["--model", str(checkpoint), "--data", str(car_chair_renders / "views"), "--out", str(tmp_path / "bench"),
          "--corruptions", "dark", "occlusion", "--severities", "1", "3"])
    result = json.loads((tmp_path / "bench" / "corruptions.json").read_text())
    assert [(r["corruption"], r["severity"], r["level"]) for r in result["rows"]] == [
        ("dark", 1, 0.25), ("dark", 3, 0.04), ("occlusion", 1, 0.15), ("occlusion", 3, 0.45)]
    assert all(r["views"] == 6 and 0 <= r["med_err"] <= 180 for r in [*result["rows"], result["clean"]])
    assert (tmp_path / "bench" / "corruptions.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "| none (clean views) |" in printed and "| dark | gain in linear light: 0.25, 0.04 |" in printed
