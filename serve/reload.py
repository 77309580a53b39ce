"""The served model and its hot reload: a bundle folder, or a folder of versions swapped atomically.

    store = ModelStore.open("models/", load=lambda path: Predictor(path))   # models/<version>/vantage.json
    predictor = store.current          # one consistent model for one request
    store.reload()                     # load + warm up the newest version, then swap

`--model` may name a bundle (a folder with vantage.json) or a folder of versions,
`MODEL/<version>/` each a bundle. The newest version is the greatest name: names of
digits compare as numbers and rank above other names, which compare as text (so
`2 < 10`, and `2024-05-01 < 1`). Folders whose name starts with "." are ignored:
write a new version under a hidden name and rename it into place when complete.

A reload loads and warms up the new predictor before swapping one reference, so a
request that already holds the old predictor finishes on it, and no request sees a
half-loaded model. A version that fails to load leaves the current one serving.

Polling serves the newest version, except after a reload that named a version (a
rollback): that pins it until a reload without a version. Polling does not retry a
version that failed to load until a newer one appears.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vantage.bundle import METADATA_FILE, BundleError
from vantage.serve.engine import Predictor
from vantage.serve.security import confine_path

log = logging.getLogger(__name__)


class ReloadError(RuntimeError):
    """A reload was refused or failed; the current model keeps serving."""


class UnknownVersionError(ValueError):
    """A requested version is not a version folder of the model folder."""


def version_key(name: str) -> tuple[int, int, str]:
    """Sort key of version folder names: numeric names by value, after the others by text."""
    return (1, int(name), "") if name.isdigit() else (0, 0, name)


def list_versions(folder: Path) -> list[str]:
    """Version folder names under `folder`, oldest first."""
    names = [p.name for p in folder.iterdir() if not p.name.startswith(".") and (p / METADATA_FILE).is_file()]
    return sorted(names, key=version_key)


@dataclass(frozen=True)
class Served:
    """What is being served: the predictor and the version folder it came from ("" for a single bundle)."""

    predictor: Predictor
    version: str


class ModelStore:
    """Holds the served predictor; `reload` swaps it under a lock (one reload at a time)."""

    def __init__(self, served: Served, folder: Path | None, load: Callable[[Path], Predictor] | None) -> None:
        self._served = served
        self.folder = folder  # folder of versions; None for a single bundle or a fixed predictor
        self._load = load
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str, Served], None]] = []
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._pinned = False  # the last reload named its version: polling leaves it alone
        self._failed = ""  # the last version that failed to load

    @classmethod
    def fixed(cls, predictor: Predictor) -> "ModelStore":
        """A store around a ready predictor: nothing to reload from."""
        return cls(Served(predictor, ""), None, None)

    @classmethod
    def open(cls, path: str | Path, load: Callable[[Path], Predictor], root: str | Path = "") -> "ModelStore":
        """Load the bundle at `path`, or the newest version when `path` is a folder of versions.

        With `root`, `path` (and every version, after resolving links) must lie inside it.
        """
        path = confine_path(root, path) if root else Path(path)
        if (path / METADATA_FILE).is_file():
            return cls(Served(load(path), ""), None, load)
        if not path.is_dir():
            raise BundleError(f"model folder {str(path)!r} does not exist")
        versions = list_versions(path)
        if not versions:
            raise BundleError(f"{str(path)!r} is neither a bundle ({METADATA_FILE}) nor a folder of bundle versions")
        return cls(Served(load(confine_path(path, path / versions[-1])), versions[-1]), path, load)

    @property
    def current(self) -> Served:
        return self._served

    def on_reload(self, listener: Callable[[str, Served], None]) -> None:
        """Call `listener(result, served)` after every reload; result is "swapped", "unchanged" or "failed"."""
        self._listeners.append(listener)

    def _tell(self, result: str) -> None:
        for listener in self._listeners:
            listener(result, self._served)

    def reload(self, version: str = "", automatic: bool = False) -> bool:
        """Load `version` (default: the newest, or the single bundle again) and swap it in; False if already served.

        `automatic` (polling) does nothing while a version is pinned or when the newest
        is the one that failed last. UnknownVersionError for a name that is not a version
        folder; ReloadError when there is nothing to reload from or loading fails (the
        current model stays).
        """
        if self._load is None:
            raise ReloadError("this server serves a fixed model object: there is nothing to reload from")
        with self._lock:
            path, name = self._target(version)
            if automatic and (self._pinned or name in (self._served.version, self._failed)):
                return False
            if self.folder is not None and name == self._served.version:
                self._pinned = bool(version)
                self._tell("unchanged")
                return False
            try:
                predictor = self._load(path)
                predictor.warmup()
            except Exception as exc:  # noqa: BLE001 - any failure keeps the old model
                self._failed = name
                self._tell("failed")
                raise ReloadError(f"cannot load {str(path)!r}: {exc}") from exc
            self._served = Served(predictor, name)
            self._pinned = bool(version)
            self._tell("swapped")
        log.info("now serving %s (model version %s)", path, predictor.metadata.model_version)
        return True

    def _target(self, version: str) -> tuple[Path, str]:
        if self.folder is None:
            if version:
                raise UnknownVersionError("the server's model is a single bundle, not a folder of versions")
            return self._served.predictor.bundle_dir, ""
        versions = list_versions(self.folder)
        if version and version not in versions:
            raise UnknownVersionError(f"{version!r} is not a version folder of the model folder; have {versions}")
        if not versions:
            raise ReloadError(f"no versions left in {str(self.folder)!r}")
        name = version or versions[-1]
        try:
            return confine_path(self.folder, self.folder / name), name
        except ValueError as exc:
            raise UnknownVersionError(str(exc)) from None

    def start_polling(self, interval_s: float) -> None:
        """Check for a newer version every `interval_s` seconds in a daemon thread (folders of versions only)."""
        if self.folder is None or interval_s <= 0:
            return

        def poll() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.reload(automatic=True)
                except (ReloadError, UnknownVersionError, OSError) as exc:
                    log.error("automatic reload failed: %s", exc)

        self._poller = threading.Thread(target=poll, name="vantage-reload-poll", daemon=True)
        self._poller.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
