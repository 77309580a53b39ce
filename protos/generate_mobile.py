"""Generate mobile client stubs of the Vantage API (Kotlin + Java for Android, Objective-C/Swift for iOS).

    python protos/generate_mobile.py OUT_DIR            # OUT_DIR/{java,kotlin,objc[,swift]}/...
    python protos/generate_mobile.py OUT_DIR --full     # full protobuf runtime instead of lite

Why a script and no checked-in stubs: each app pins its own protobuf and gRPC runtimes,
and generated code must match the runtime it is compiled against, so apps generate
from `vantage/v1/*.proto` with their own toolchain; this script is the reference and
the CI check that the contract compiles to every mobile language.

Needs a real `protoc` (grpcio-tools' bundled one has only the Python generators):
Debian/Ubuntu `apt-get install protobuf-compiler` (3.21 on Debian 12), which has the
Java, Kotlin and Objective-C message generators built in. Service stubs come from
plugins found on PATH (or named by --plugin-dir):

| output | plugin | where it comes from |
|---|---|---|
| Java gRPC service (`PoseEstimatorGrpc.java`, used from Kotlin too) | `grpc_java_plugin` or `protoc-gen-grpc-java` | Debian `protobuf-compiler-grpc-java-plugin` |
| Kotlin coroutine gRPC service (`PoseEstimatorGrpcKt.kt`) | `protoc-gen-grpc-kotlin` | Maven Central `io.grpc:protoc-gen-grpc-kotlin` (a JVM jar; not on Debian, PyPI or npm) |
| Swift messages (`vantage.pb.swift`) | `protoc-gen-swift` | `brew install swift-protobuf` or a build of apple/swift-protobuf (not on Debian, PyPI or npm) |
| Swift gRPC service (`vantage.grpc.swift`) | `protoc-gen-grpc-swift` | `brew install grpc-swift` or a build of grpc/grpc-swift (not on Debian, PyPI or npm) |
| Objective-C gRPC service | `grpc_objective_c_plugin` | a build of grpc/grpc (Debian's protobuf-compiler-grpc leaves it out) |

Missing plugins are skipped with the reason and the command to get them; the message
stubs (Java, Kotlin, Objective-C, usable from Swift through a bridging header) need
protoc alone. Exit status 1 when protoc itself is missing or fails.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PROTO_FILES: tuple[str, ...] = tuple(
    str(p.relative_to(PROTO_ROOT)) for p in sorted(PROTO_ROOT.glob("vantage/*/*.proto"))
)
MIN_PROTOC = (3, 17)  # --kotlin_out appeared in protoc 3.17
INSTALL_PROTOC = "apt-get install -y protobuf-compiler   # Debian/Ubuntu; macOS: brew install protobuf"


@dataclass(frozen=True)
class Plugin:
    """A protoc plugin for service stubs (or Swift messages), the folder it writes to and how users get it."""

    name: str
    folder: str
    executables: tuple[str, ...]
    how_to_get: str
    lite_option: bool = False


PLUGINS: tuple[Plugin, ...] = (
    Plugin("grpc-java", "java", ("grpc_java_plugin", "protoc-gen-grpc-java"),
           "`apt-get install protobuf-compiler-grpc-java-plugin` (Debian/Ubuntu), or the "
           "io.grpc:protoc-gen-grpc-java artifact from Maven Central (Gradle protobuf plugin)", lite_option=True),
    Plugin("grpc-kotlin", "kotlin", ("protoc-gen-grpc-kotlin",),
           "the io.grpc:protoc-gen-grpc-kotlin jar (classifier jdk8@jar) from Maven Central, through the "
           "Gradle protobuf plugin: `plugins { id(\"grpckt\") { artifact = "
           "\"io.grpc:protoc-gen-grpc-kotlin:<version>:jdk8@jar\" } }`", lite_option=True),
    Plugin("swift", "swift", ("protoc-gen-swift",),
           "`brew install swift-protobuf` (macOS), or `swift build -c release --product protoc-gen-swift` "
           "in a clone of github.com/apple/swift-protobuf"),
    Plugin("grpc-swift", "swift", ("protoc-gen-grpc-swift",),
           "`brew install grpc-swift` (macOS), or `swift build -c release --product protoc-gen-grpc-swift` "
           "in a clone of the grpc-swift protobuf plugin repository"),
    Plugin("grpc-objc", "objc", ("grpc_objective_c_plugin", "protoc-gen-grpc-objc"),
           "build target grpc_objective_c_plugin of github.com/grpc/grpc (CocoaPods users get it "
           "through the `!ProtoCompiler-gRPCPlugin` pod)"),
)


@dataclass
class Report:
    """protoc's version, the generated files (folder → files) and the skipped plugins (name → why, how to get it)."""

    protoc: str
    generated: dict[str, list[Path]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def protoc_version(protoc: str) -> tuple[int, ...]:
    """protoc's version as numbers, from `protoc --version` ("libprotoc 3.21.12")."""
    text = subprocess.run([protoc, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        raise RuntimeError(f"cannot read the version of {protoc}: {text.strip()!r}")
    return tuple(int(g) for g in match.groups() if g is not None)


def find_plugin(plugin: Plugin, plugin_dir: str | None = None) -> str | None:
    """The plugin's executable: in `plugin_dir` when given, else on PATH."""
    for name in plugin.executables:
        found = shutil.which(name, path=plugin_dir)
        if found:
            return found
    return None


def generate_mobile(out_dir: str | Path, lite: bool = True, plugin_dir: str | None = None) -> Report:
    """Run protoc for Java, Kotlin, Objective-C and every plugin found; RuntimeError without a usable protoc."""
    protoc = shutil.which("protoc")
    if protoc is None:
        raise RuntimeError(f"protoc is not on PATH: {INSTALL_PROTOC}")
    version = protoc_version(protoc)
    report = Report(protoc=".".join(map(str, version)))
    if version[:2] < MIN_PROTOC:
        raise RuntimeError(f"protoc {report.protoc} is too old for Kotlin (needs 3.17+): {INSTALL_PROTOC}")
    out = Path(out_dir)
    runtime = "lite:" if lite else ""
    outputs = [(f"--java_out={runtime}", "java"), (f"--kotlin_out={runtime}", "kotlin"), ("--objc_out=", "objc")]
    plugin_args = []
    for plugin in PLUGINS:
        executable = find_plugin(plugin, plugin_dir)
        if executable is None:
            report.skipped[plugin.name] = f"{' / '.join(plugin.executables)} not found; get it with {plugin.how_to_get}"
            continue
        plugin_args.append(f"--plugin=protoc-gen-{plugin.name}={executable}")
        outputs.append((f"--{plugin.name}_out={'lite:' if lite and plugin.lite_option else ''}", plugin.folder))
    folders = sorted({folder for _, folder in outputs})
    for folder in folders:
        (out / folder).mkdir(parents=True, exist_ok=True)
    command = [protoc, f"--proto_path={PROTO_ROOT}", *plugin_args, *(f"{flag}{out / folder}" for flag, folder in outputs),
               *PROTO_FILES]
    result = subprocess.run(command, cwd=PROTO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"protoc failed ({result.returncode}): {result.stderr.strip()}\ncommand: {' '.join(command)}")
    report.generated = {folder: sorted(p for p in (out / folder).rglob("*") if p.is_file()) for folder in folders}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output folder (java/, kotlin/, objc/ and swift/ are made inside)")
    parser.add_argument("--full", action="store_true", help="full protobuf runtime (default: lite, for Android)")
    parser.add_argument("--plugin-dir", help="look for protoc plugins here instead of on PATH")
    args = parser.parse_args(argv)
    try:
        report = generate_mobile(args.out, lite=not args.full, plugin_dir=args.plugin_dir)
    except RuntimeError as exc:
        print(f"generate_mobile: {exc}", file=sys.stderr)
        return 1
    print(f"protoc {report.protoc}")
    for folder, paths in report.generated.items():
        print(f"{folder}: {len(paths)} files in {Path(args.out) / folder}")
    for name, why in report.skipped.items():
        print(f"skipped {name}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
