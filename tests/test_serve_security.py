"""TLS, mTLS, bearer tokens, the Reload RPC's guard and model-folder confinement, on loopback servers.

Certificates are made at test time (a throwaway CA, a server and a client certificate,
and a second CA that nobody trusts) with the `cryptography` package.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from serve_fixtures import add_version, make_test_image
from vantage.serve.client import PoseClient
from vantage.serve.config import ServerConfig
from vantage.serve.engine import Predictor
from vantage.serve.reload import ModelStore
from vantage.serve.security import confine_path
from vantage.serve.server import start_server

IMAGE = make_test_image(seed=5)
TOKEN = "s3cret-token"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(folder: Path, stem: str, cert: x509.Certificate, key) -> tuple[str, str]:
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def _certificate(subject: str, issuer_name: x509.Name, issuer_key, public_key, ca: bool, sans=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _ca(folder: Path, stem: str):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(stem, _name(stem), key, key.public_key(), ca=True)
    return cert, key, _write(folder, stem, cert, key)[0]


def _leaf(folder: Path, stem: str, ca_cert, ca_key, sans=()) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(stem, ca_cert.subject, ca_key, key.public_key(), ca=False, sans=sans)
    return _write(folder, stem, cert, key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key, ca = _ca(folder, "ca")
    other_cert, other_key, other_ca = _ca(folder, "other-ca")
    sans = (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server_cert, server_key = _leaf(folder, "server", ca_cert, ca_key, sans)
    client_cert, client_key = _leaf(folder, "client", ca_cert, ca_key)
    rogue_cert, rogue_key = _leaf(folder, "rogue", other_cert, other_key)
    token = folder / "token.txt"
    token.write_text(TOKEN + "\n")
    return dict(ca=ca, other_ca=other_ca, server_cert=server_cert, server_key=server_key, client_cert=client_cert,
                client_key=client_key, rogue_cert=rogue_cert, rogue_key=rogue_key, token=str(token))


@pytest.fixture(scope="module")
def predictor(tiny_bundle: Path) -> Predictor:
    return Predictor(tiny_bundle, intra_op_threads=1)


def _refused(client: PoseClient, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.RpcError) as info:
        client.estimate(IMAGE, timeout=5)
    assert info.value.code() == code, info.value.details()
    return info.value.details()


def test_token_is_required_on_every_call_but_health(predictor: Predictor, pki: dict[str, str]) -> None:
    running = start_server(predictor, ServerConfig(port=0, workers=4, auth_token_file=pki["token"]))
    target = f"127.0.0.1:{running.port}"
    try:
        with PoseClient(target, timeout=5) as anonymous:
            anonymous.wait_ready(5)  # health is exempt
            assert "missing bearer token" in _refused(anonymous, grpc.StatusCode.UNAUTHENTICATED)
            for call in (anonymous.model_info, anonymous.reload):
                with pytest.raises(grpc.RpcError) as info:
                    call()
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with PoseClient(target, timeout=5, token="guess") as wrong:
            assert "wrong bearer token" in _refused(wrong, grpc.StatusCode.UNAUTHENTICATED)
        with PoseClient(target, timeout=5, token=TOKEN) as good:
            assert len(good.estimate(IMAGE).rotation) == 9
            assert good.model_info().name == "tiny-test"
            frames = list(good.stream([good_request(i) for i in range(2)], timeout=10))
            assert [f.frame_id for f in frames] == [0, 1]
        text = _scrape(running)
        assert 'code="UNAUTHENTICATED",method="Estimate"' in text
    finally:
        running.stop(0)


def good_request(i: int):
    from vantage.serve.protocol import make_request

    return make_request(IMAGE, frame_id=i, keep_frame=True)


def _scrape(running) -> str:
    from prometheus_client import generate_latest

    return generate_latest(running.metrics.registry).decode()


def test_tls_and_mutual_tls(predictor: Predictor, pki: dict[str, str]) -> None:
    tls = ServerConfig(port=0, workers=4, tls_cert=pki["server_cert"], tls_key=pki["server_key"])
    running = start_server(predictor, tls)
    target = f"127.0.0.1:{running.port}"
    try:
        with PoseClient(target, timeout=5, tls_ca=pki["ca"]) as trusted:
            assert len(trusted.estimate(IMAGE).rotation) == 9
        with PoseClient(target, timeout=5, tls_ca=pki["other_ca"]) as distrusting:
            _refused(distrusting, grpc.StatusCode.UNAVAILABLE)  # the handshake fails: the server is not trusted
        with PoseClient(target, timeout=5) as plaintext:
            _refused(plaintext, grpc.StatusCode.UNAVAILABLE)
    finally:
        running.stop(0)

    mtls = ServerConfig(port=0, workers=4, tls_cert=pki["server_cert"], tls_key=pki["server_key"],
                        tls_client_ca=pki["ca"], auth_token_file=pki["token"])
    running = start_server(predictor, mtls)
    target = f"127.0.0.1:{running.port}"
    try:
        with PoseClient(target, timeout=5, tls_ca=pki["ca"], token=TOKEN) as no_certificate:
            _refused(no_certificate, grpc.StatusCode.UNAVAILABLE)
        with PoseClient(target, timeout=5, tls_ca=pki["ca"], token=TOKEN,
                        tls_cert=pki["rogue_cert"], tls_key=pki["rogue_key"]) as wrong_certificate:
            _refused(wrong_certificate, grpc.StatusCode.UNAVAILABLE)
        with PoseClient(target, timeout=5, tls_ca=pki["ca"], tls_cert=pki["client_cert"],
                        tls_key=pki["client_key"]) as certificate_without_token:
            _refused(certificate_without_token, grpc.StatusCode.UNAUTHENTICATED)
        with PoseClient(target, timeout=5, tls_ca=pki["ca"], token=TOKEN, tls_cert=pki["client_cert"],
                        tls_key=pki["client_key"], tls_server_name="localhost") as good:
            assert len(good.estimate(IMAGE).rotation) == 9
    finally:
        running.stop(0)


def test_unreadable_security_files_stop_the_start(predictor: Predictor, tmp_path: Path) -> None:
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        start_server(predictor, ServerConfig(port=0, auth_token_file=str(empty)))
    with pytest.raises(ValueError, match="cannot read the TLS key"):
        start_server(predictor, ServerConfig(port=0, tls_cert=str(empty), tls_key=str(tmp_path / "missing.key")))


def test_reload_rpc_is_guarded_and_confined(tiny_bundle: Path, tmp_path: Path, pki: dict[str, str]) -> None:
    models = tmp_path / "models"
    models.mkdir()
    add_version(tiny_bundle, models, "1")
    outside = add_version(tiny_bundle, tmp_path, "elsewhere", model_version="outside")
    (models / "9").symlink_to(outside, target_is_directory=True)  # newest by name, but outside the folder

    store = ModelStore.open(models / "1", lambda p: Predictor(p, intra_op_threads=1), root=models)
    running = start_server(store, ServerConfig(port=0, workers=4))
    try:
        with PoseClient(f"127.0.0.1:{running.port}", timeout=10) as client:
            with pytest.raises(grpc.RpcError) as info:
                client.reload()
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED and "auth token" in info.value.details()
    finally:
        running.stop(0)

    with pytest.raises(ValueError, match="outside the configured model root"):
        ModelStore.open(outside, Predictor, root=models)
    with pytest.raises(ValueError, match="outside the configured model root"):
        ModelStore.open(models, Predictor, root=models)  # the newest, 9, is a link out of the folder

    (models / "9").unlink()
    store = ModelStore.open(models, lambda p: Predictor(p, intra_op_threads=1), root=models)
    running = start_server(store, ServerConfig(port=0, workers=4, auth_token_file=pki["token"]))
    try:
        with PoseClient(f"127.0.0.1:{running.port}", timeout=10, token=TOKEN) as client:
            (models / "9").symlink_to(outside, target_is_directory=True)
            for version in ("../elsewhere", "9", "no-such"):
                with pytest.raises(grpc.RpcError) as info:
                    client.reload(version)
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, version
            assert client.model_info().bundle_version == "1"
    finally:
        running.stop(0)


def test_confine_path(tmp_path: Path) -> None:
    (tmp_path / "root" / "a").mkdir(parents=True)
    assert confine_path(tmp_path / "root", tmp_path / "root" / "a") == (tmp_path / "root" / "a").resolve()
    for bad in (tmp_path, tmp_path / "root" / ".." / "x", Path("/etc")):
        with pytest.raises(ValueError, match="outside"):
            confine_path(tmp_path / "root", bad)


def test_retrieve_sends_the_token(indexed_bundle: Path, pki: dict[str, str]) -> None:
    config = ServerConfig(port=0, workers=2, auth_token_file=pki["token"])
    running = start_server(Predictor(indexed_bundle, intra_op_threads=1), config)
    target = f"127.0.0.1:{running.port}"
    try:
        with PoseClient(target, timeout=10) as anonymous:
            with pytest.raises(grpc.RpcError) as info:
                anonymous.retrieve(IMAGE, top_k=3)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with PoseClient(target, timeout=10, token=TOKEN) as good:
            views = good.retrieve(IMAGE, top_k=3, request_id="r").retrieval.views
            assert len(views) == 3 and {v.category for v in views} == {"car"}
    finally:
        running.stop(0)


def test_client_options_are_checked_before_any_call(pki: dict[str, str]) -> None:
    with pytest.raises(TypeError, match=r"unknown client options \['tls_cart'\]"):
        PoseClient("127.0.0.1:1", tls_cart=pki["client_cert"])  # a typo must not mean plaintext
    with pytest.raises(ValueError, match="tls_cert and tls_key go together"):
        PoseClient("127.0.0.1:1", tls_ca=pki["ca"], tls_cert=pki["client_cert"])
