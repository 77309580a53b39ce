"""protos/generate_mobile.py makes Kotlin, Java and Objective-C stubs holding every message, field and RPC."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2

PROTOS = Path(__file__).resolve().parents[1] / "protos"
OBJC_PREFIX = "VNT"  # option objc_class_prefix of vantage.proto


def load_script(path: Path) -> ModuleType:
    """Import a repository script (protos/generate_mobile.py, deploy/generate.py) as a module."""
    spec = importlib.util.spec_from_file_location(f"vantage_script_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen = load_script(PROTOS / "generate_mobile.py")


def _need_protoc() -> None:
    if shutil.which("protoc") is None:
        message = f"protoc is not installed: {gen.INSTALL_PROTOC}"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs it)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def contract(tmp_path_factory) -> descriptor_pb2.FileDescriptorSet:
    """The .proto files as protoc itself reads them (not the checked-in Python stubs, which may lag)."""
    _need_protoc()
    out = tmp_path_factory.mktemp("descriptor") / "vantage.pb"
    subprocess.run(["protoc", f"--proto_path={PROTOS}", f"--descriptor_set_out={out}", *gen.PROTO_FILES],
                   check=True, cwd=PROTOS)
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    _need_protoc()
    out = tmp_path_factory.mktemp("mobile")
    return out, gen.generate_mobile(out)


def camel(name: str, upper: bool) -> str:
    """protoc's field name → accessor name: "frames_dropped_before" → framesDroppedBefore / FramesDroppedBefore."""
    parts = name.split("_")
    text = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    return text[:1].upper() + text[1:] if upper else text


def messages(contract: descriptor_pb2.FileDescriptorSet):
    for file in contract.file:
        folder = file.options.java_package.replace(".", "/")
        for message in file.message_type:
            yield folder, message


def test_every_message_and_field_is_in_the_java_and_kotlin_stubs(contract, stubs) -> None:
    out, report = stubs
    names = [m.name for _, m in messages(contract)]
    assert {"EstimateRequest", "EstimateResponse", "ModelInfo", "Box"} <= set(names)
    for folder, message in messages(contract):
        java = (out / "java" / folder / f"{message.name}.java").read_text()
        kotlin = (out / "kotlin" / folder / f"{message.name}Kt.kt").read_text()
        assert "GeneratedMessageLite" in java, "Android stubs use the lite runtime by default"
        for f in message.field:
            assert f"get{camel(f.name, True)}(" in java, f"{message.name}.{f.name} missing in Java"
            assert re.search(rf"\b(val|var) {camel(f.name, False)}\b", kotlin), f"{message.name}.{f.name} missing in Kotlin"
    java_files = {p.stem for p in report.generated["java"]}
    assert set(names) <= java_files


def test_every_message_and_field_is_in_the_objective_c_stubs(contract, stubs) -> None:
    out, report = stubs
    headers = [p for p in report.generated["objc"] if p.suffix == ".h"]
    assert headers and all(p.with_suffix(".m").is_file() for p in headers)
    header = "\n".join(p.read_text() for p in headers)
    for _, message in messages(contract):
        body = re.search(rf"@interface {OBJC_PREFIX}{message.name} : GPBMessage(.*?)@end", header, re.S)
        assert body, f"{OBJC_PREFIX}{message.name} missing in Objective-C"
        for f in message.field:
            suffix = "Array" if f.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED else ""
            # names that clash with GPBMessage/NSObject methods get "_p" (ViewIndexInfo.descriptor → descriptor_p)
            assert re.search(rf"@property\([^)]*\)[^;]*\b{camel(f.name, False)}{suffix}(_p)?;", body.group(1)), \
                f"{message.name}.{f.name} missing in Objective-C"


def test_service_stubs_or_the_reason_they_are_missing(contract, stubs) -> None:
    out, report = stubs
    assert set(report.skipped) | {p.name for p in gen.PLUGINS if gen.find_plugin(p)} == {p.name for p in gen.PLUGINS}
    for name, why in report.skipped.items():
        assert "not found; get it with" in why and len(why) > 60, name
    if "grpc-java" in report.skipped:
        pytest.skip(f"no gRPC-Java plugin here: {report.skipped['grpc-java']}")
    for file in contract.file:
        folder = file.options.java_package.replace(".", "/")
        for service in file.service:
            java = (out / "java" / folder / f"{service.name}Grpc.java").read_text()
            assert f'SERVICE_NAME = "{file.package}.{service.name}"' in java
            for method in service.method:
                assert f"get{method.name}Method()" in java, f"{service.name}.{method.name} missing in gRPC-Java"


def test_without_protoc_the_script_says_how_to_install_it(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gen.main([str(tmp_path / "out")]) == 1
    assert "protoc is not on PATH: apt-get install -y protobuf-compiler" in capsys.readouterr().err


def test_api_doc_describes_every_message_field_and_rpc(contract) -> None:
    """docs/API.md is the mobile contract: a section per message with a row per field, a row per RPC."""
    doc = (PROTOS.parent / "docs" / "API.md").read_text()
    sections = dict(re.findall(r"\n### `(\w+)`\n(.*?)(?=\n##)", doc, re.S))
    for _, message in messages(contract):
        assert message.name in sections, f"docs/API.md has no section for {message.name}"
        for f in message.field:
            assert f"| `{f.name}` |" in sections[message.name], f"docs/API.md does not describe {message.name}.{f.name}"
    for file in contract.file:
        assert f"package `{file.package}`" in doc or f"`{file.package}`" in doc
        for service in file.service:
            for method in service.method:
                assert f"| `{method.name}` |" in doc, f"docs/API.md does not describe the RPC {method.name}"
