"""Derived view folders (vantage.train.derived_views): written afresh, never over their source."""

import json

import pytest

from vantage.train.derived_views import close_derived, open_derived


def _source(root):
    (root / "images").mkdir(parents=True)
    records = [{"index": i, "file": f"images/{i:07d}.png"} for i in range(3)]
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "\n")
    return records


def test_open_derived_reads_the_source_and_empties_the_output(tmp_path):
    records = _source(tmp_path / "src")
    stale = tmp_path / "out" / "images" / "old.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    src, dst, read = open_derived(tmp_path / "src", tmp_path / "out", "copies")
    assert read == records and src == tmp_path / "src"
    assert not stale.exists() and (dst / "masks").is_dir() and not (dst / "manifest.jsonl").exists()

    manifest = close_derived(dst, read[:2], "how.json", {"views": 2})
    assert [json.loads(line) for line in manifest.read_text().splitlines()] == records[:2]
    assert json.loads((dst / "how.json").read_text()) == {"views": 2}


def test_open_derived_refuses_before_removing_anything(tmp_path):
    _source(tmp_path / "data" / "src")
    with pytest.raises(ValueError, match="would replace the views it copies"):
        open_derived(tmp_path / "data" / "src", tmp_path / "data", "copies")  # the output holds the source
    with pytest.raises(ValueError, match="would replace"):
        open_derived(tmp_path / "data" / "src", tmp_path / "data" / "src", "copies")
    with pytest.raises(FileNotFoundError, match="no manifest.jsonl"):
        open_derived(tmp_path / "elsewhere", tmp_path / "out", "copies")
    assert (tmp_path / "data" / "src" / "manifest.jsonl").is_file() and not (tmp_path / "out").exists()
