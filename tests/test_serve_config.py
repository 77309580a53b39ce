"""Server configuration: one dataclass behind flags, YAML and the README table."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from vantage.cli import build_parser
from vantage.serve.bench import QUICK, settings_from_args
from vantage.serve.config import ServerConfig, config_from_args, config_markdown_table, load_config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_are_valid_and_every_field_is_documented() -> None:
    cfg = ServerConfig()
    assert cfg.port == 50051 and cfg.backend == "auto" and cfg.max_batch_size >= 1
    for f in fields(ServerConfig):
        assert f.metadata["help"], f.name


def test_yaml_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text("port: 6000\nmax_batch_size: 4\nbatch_delay_ms: 1\nlog_format: json\n")
    args = build_parser().parse_args(["serve", "--config", str(path), "--model", "m", "--max-batch-size", "16"])
    cfg = config_from_args(args)
    assert (cfg.model, cfg.port, cfg.max_batch_size, cfg.log_format) == ("m", 6000, 16, "json")
    assert cfg.batch_delay_ms == 1.0 and isinstance(cfg.batch_delay_ms, float)
    assert cfg.workers == ServerConfig().workers  # neither in the file nor given: the default


@pytest.mark.parametrize(
    "text,message",
    [
        ("prot: 1\n", "unknown server settings ['prot']"),
        ("port: fast\n", "port must be a int"),
        ("max_batch_size: 0\n", "max_batch_size must be at least 1"),
        ("backend: cuda\n", "backend must be one of auto, onnxruntime-cpu"),
        ("tls_cert: a.pem\n", "tls_cert and tls_key go together"),
        ("tls_client_ca: ca.pem\n", "needs tls_cert"),
        ("metrics_port: -2\n", "metrics_port must be -1"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


def test_cli_reports_bad_settings(capsys) -> None:
    args = build_parser().parse_args(["serve", "--model", "m", "--tls-cert", "x.pem"])
    assert args.func(args) == 2
    assert "tls_cert and tls_key go together" in capsys.readouterr().err


def test_readme_documents_every_setting() -> None:
    text = README.read_text()
    assert "## Server configuration" in text
    assert config_markdown_table() in text, "README's table is stale: paste config_markdown_table()"


def test_bench_flags() -> None:
    args = build_parser().parse_args(["bench", "--model", "b", "--quick", "--concurrency", "1", "2"])
    settings = settings_from_args(args)
    assert settings.concurrency == (1, 2) and settings.seconds == QUICK["seconds"] and settings.model == "b"
