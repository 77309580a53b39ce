"""Regenerate the Python gRPC stubs of the Vantage API from `vantage/v1/vantage.proto`.

    python protos/generate.py            # rewrites protos/vantage/v1/vantage_pb2*.py(i)

Needs grpcio-tools (a dev dependency; serving only needs the checked-in stubs). The
proto root `protos/` is the include path, so the generated modules import each
other as `from vantage.v1 import vantage_pb2`, which the package mapping of
pyproject.toml (`vantage.v1` → protos/vantage/v1) resolves. tests/test_protos.py
regenerates into a temporary folder and requires byte-identical files, so edit the
.proto, run this script, and commit the .proto and the stubs together.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PROTO_FILES: tuple[str, ...] = ("vantage/v1/vantage.proto",)
GENERATED_FILES: tuple[str, ...] = (
    "vantage/v1/vantage_pb2.py",
    "vantage/v1/vantage_pb2.pyi",
    "vantage/v1/vantage_pb2_grpc.py",
)


def generate(out_dir: str | Path = PROTO_ROOT) -> list[Path]:
    """Run grpc_tools.protoc on PROTO_FILES; return the paths of the generated files."""
    from grpc_tools import protoc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(PROTO_ROOT / name) for name in PROTO_FILES),
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with exit status {rc}: {' '.join(args[1:])}")
    paths = [out / name for name in GENERATED_FILES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"grpc_tools.protoc did not write {', '.join(missing)}")
    return paths


if __name__ == "__main__":
    for path in generate(sys.argv[1] if len(sys.argv) > 1 else PROTO_ROOT):
        print(path)
