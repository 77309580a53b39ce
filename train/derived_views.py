"""Folders of views derived from a rendered folder: corrupted copies (`vantage corrupt`) and views re-imaged
off the optical axis (`vantage off-axis`).

A derived folder has a rendered folder's layout (manifest.jsonl, images/, masks/) so that every reader of
renders reads it, plus one JSON file that says how it was made. It is written afresh each time and never
over its source: a folder that replaced (or held) the views it derives from would lose them. Only the
standard library here: `vantage.train.corruptions` sits under the training data's import path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def open_derived(data: str | Path, out: str | Path, making: str) -> tuple[Path, Path, list[dict[str, Any]]]:
    """(source folder, output folder, the source's manifest records) with the output emptied down to fresh
    images/ and masks/ folders; a source without a manifest, or an output that is (or holds) the source, fails
    before anything is removed. `making` names the work in that message ("corrupts", "re-images")."""
    src, dst = Path(data), Path(out)
    manifest = src / "manifest.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"{src} has no manifest.jsonl: render it with `vantage render` first")
    if dst.resolve() == src.resolve() or src.resolve().is_relative_to(dst.resolve()):
        raise ValueError(f"the output folder {dst} would replace the views it {making} ({src})")
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    if dst.exists():
        shutil.rmtree(dst)
    (dst / "images").mkdir(parents=True)
    (dst / "masks").mkdir()
    return src, dst, records


def close_derived(dst: Path, records: list[dict[str, Any]], about: str, summary: dict[str, Any]) -> Path:
    """Write the derived views' manifest and `about` (the JSON `summary` of how they were made); returns the
    manifest's path. Last, so that a folder interrupted while writing images has no manifest to be read as done."""
    (dst / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (dst / about).write_text(json.dumps(summary, indent=1))
    return dst / "manifest.jsonl"
