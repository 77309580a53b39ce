"""The server's configuration: one dataclass, the single source of truth for flags, YAML and docs.

    cfg = load_config("server.yaml", port=50052)        # defaults < YAML file < overrides
    add_config_arguments(parser)                          # `vantage serve` flags, one per field
    cfg = config_from_args(args)                          # --config FILE, then the flags given
    config_markdown_table()                               # the README table

Every field has a help text in its metadata; flags are the field names with dashes
(`max_batch_size` → `--max-batch-size`), YAML keys are the field names. Deployment
tooling can walk `dataclasses.fields(ServerConfig)` the same way.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from vantage.imaging import DEFAULT_MAX_PIXELS
from vantage.serve.protocol import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_PORT

# Inference backends (`vantage.serve.backends` implements them); kept here so flags need no ONNX Runtime.
BACKENDS: tuple[str, ...] = ("auto", "onnxruntime-cpu", "onnxruntime-gpu", "tensorrt")
LOG_FORMATS: tuple[str, ...] = ("text", "json")
LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")


def _opt(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class ServerConfig:
    """Everything `vantage serve` can be told; see the README table (`config_markdown_table`)."""

    model: str = _opt("", "bundle folder, or a folder of version folders MODEL/<version>/ (the newest is served)")
    model_root: str = _opt("", "when set, models (and indexes) are loaded only from inside this folder")
    host: str = _opt("127.0.0.1", "address to listen on; 0.0.0.0 or [::] accepts other machines")
    port: int = _opt(DEFAULT_PORT, "gRPC port; 0 picks a free one (logged)")
    workers: int = _opt(32, "gRPC handler threads: requests decoded at once; each open stream holds one")
    backend: str = _opt("auto", "inference backend; auto = tensorrt, onnxruntime-gpu, onnxruntime-cpu, first that works", BACKENDS)
    intra_op_threads: int = _opt(0, "ONNX Runtime threads per inference call; 0 = one per core")
    max_batch_size: int = _opt(8, "most requests run as one inference batch; 1 = batching off")
    batch_delay_ms: float = _opt(2.0, "how long a batch waits for more requests while others are on their way")
    inference_workers: int = _opt(1, "threads running inference batches at once")
    queue_size: int = _opt(64, "requests waiting for inference; more are refused with RESOURCE_EXHAUSTED")
    max_message_bytes: int = _opt(DEFAULT_MAX_MESSAGE_BYTES, "largest gRPC message accepted or sent, bytes")
    max_image_pixels: int = _opt(DEFAULT_MAX_PIXELS, "largest image (width x height) decoded, checked on the header before decoding; also bounds crops")
    tls_cert: str = _opt("", "PEM server certificate chain; enables TLS (with --tls-key)")
    tls_key: str = _opt("", "PEM private key of --tls-cert")
    tls_client_ca: str = _opt("", "PEM CA certificates; when set, clients must present a certificate signed by them (mTLS)")
    auth_token_file: str = _opt("", "file holding the bearer token required on every call (health checks exempt); enables Reload")
    metrics_port: int = _opt(-1, "Prometheus metrics HTTP port (/metrics); -1 = off, 0 = a free port (logged)")
    metrics_host: str = _opt("127.0.0.1", "address of the metrics HTTP server")
    reload_poll_s: float = _opt(0.0, "check a folder of versions for a newer one every this many seconds; 0 = only on Reload")
    grace_s: float = _opt(5.0, "on SIGTERM/SIGINT, how long in-flight requests may still run")
    log_format: str = _opt("text", "log lines as text or JSON objects (with request ids)", LOG_FORMATS)
    log_level: str = _opt("INFO", "log level; DEBUG adds one line per call", LOG_LEVELS)

    def __post_init__(self) -> None:
        problems = []
        for f in fields(self):
            choices = f.metadata["choices"]
            if choices and getattr(self, f.name) not in choices:
                problems.append(f"{f.name} must be one of {', '.join(choices)}, got {getattr(self, f.name)!r}")
        positive = ("workers", "max_batch_size", "inference_workers", "queue_size", "max_message_bytes", "max_image_pixels")
        problems += [f"{n} must be at least 1, got {getattr(self, n)}" for n in positive if getattr(self, n) < 1]
        non_negative = ("intra_op_threads", "batch_delay_ms", "reload_poll_s", "grace_s")
        problems += [f"{n} must not be negative, got {getattr(self, n)}" for n in non_negative if getattr(self, n) < 0]
        if not 0 <= self.port <= 65535:
            problems.append(f"port must be in 0..65535, got {self.port}")
        if not -1 <= self.metrics_port <= 65535:
            problems.append(f"metrics_port must be -1 (off) or in 0..65535, got {self.metrics_port}")
        if bool(self.tls_cert) != bool(self.tls_key):
            problems.append("tls_cert and tls_key go together")
        if self.tls_client_ca and not self.tls_cert:
            problems.append("tls_client_ca (mTLS) needs tls_cert and tls_key")
        if problems:
            raise ValueError("server configuration: " + "; ".join(problems))


def _field_types() -> dict[str, type]:
    return typing.get_type_hints(ServerConfig)


def load_config(path: str | Path | None = None, **overrides: Any) -> ServerConfig:
    """Defaults, then the YAML file's keys (field names), then `overrides`; ValueError names unknown keys."""
    values: dict[str, Any] = {}
    if path:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of server settings, got {type(data).__name__}")
        values.update(data)
    values.update(overrides)
    types = _field_types()
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ValueError(f"unknown server settings {unknown}; known: {', '.join(types)}")
    for name, value in values.items():  # YAML gives ints for floats and the like
        if types[name] is float and isinstance(value, int) and not isinstance(value, bool):
            values[name] = float(value)
        elif not isinstance(value, types[name]):
            raise ValueError(f"server setting {name} must be a {types[name].__name__}, got {value!r}")
    return ServerConfig(**values)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field plus --config FILE; flags not given stay out of the namespace (YAML wins over defaults)."""
    parser.add_argument("--config", help="YAML file of server settings (keys are the flag names with underscores)")
    types = _field_types()
    for f in fields(ServerConfig):
        parser.add_argument(
            _flag(f.name), dest=f.name, type=types[f.name], choices=f.metadata["choices"],
            default=argparse.SUPPRESS, help=f"{f.metadata['help']} (default: {f.default!r})",
        )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The configuration of parsed `add_config_arguments` flags: --config file, then the flags given."""
    given = {f.name: getattr(args, f.name) for f in fields(ServerConfig) if hasattr(args, f.name)}
    return load_config(getattr(args, "config", None), **given)


def config_markdown_table() -> str:
    """The README's table of settings, generated from the dataclass."""
    rows = ["| flag | YAML key | default | meaning |", "|---|---|---|---|"]
    for f in fields(ServerConfig):
        choices = f.metadata["choices"]
        meaning = f.metadata["help"] + (" (" + " \\| ".join(choices) + ")" if choices else "")
        default = f"`{f.default}`" if f.default != "" else "(none)"
        rows.append(f"| `{_flag(f.name)}` | `{f.name}` | {default} | {meaning} |")
    return "\n".join(rows)
