"""Recording alternative graphs of a bundle: `vantage.json` lists the accepted ones, `report.json` all.

A server picks a variant from `vantage.json["variants"]`; `report.json` keeps the
measurements behind each decision, including the variants that were refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vantage.bundle import load_metadata, save_metadata

REPORT_FILE = "report.json"


def read_report(bundle_dir: str | Path) -> dict[str, Any]:
    """The bundle's report.json, or an empty report."""
    path = Path(bundle_dir) / REPORT_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def record_variant(
    bundle_dir: str | Path, name: str, entry: dict[str, Any], accepted: bool, context: dict[str, Any] | None = None
) -> None:
    """Store a variant's measurements in report.json (with `context`, e.g. the reference figures) and,
    when accepted, in vantage.json; a refused variant is removed from vantage.json."""
    meta = load_metadata(bundle_dir)
    if accepted:
        meta.variants[name] = entry
    else:
        meta.variants.pop(name, None)
    save_metadata(bundle_dir, meta)
    report = read_report(bundle_dir)
    report.update(context or {})
    report.setdefault("variants", {})[name] = {**entry, "accepted": accepted}
    (Path(bundle_dir) / REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
