"""Transport security, bearer tokens and the model folder confinement of the server (and the client's side).

Decisions:
* TLS from PEM files; with a client CA the server requires and verifies client
  certificates (mTLS).
* A token, when configured, is required as "authorization: Bearer <token>" metadata
  on every RPC except the gRPC health service: load balancers and the Kubernetes
  gRPC probe cannot send metadata, and health reveals nothing but SERVING or not.
  Tokens are compared in constant time. Without TLS a token crosses the network in
  clear text: the server warns when it listens beyond loopback like that.
* Models (and retrieval indexes) are opened only inside the configured root folder,
  after resolving symbolic links, so that neither a path in the configuration nor a
  version name sent in a Reload request can reach other files.
"""

from __future__ import annotations

import argparse
import hmac
import logging
from pathlib import Path
from types import ModuleType
from typing import Any, TypedDict

import grpc
from grpc_health.v1 import health

from vantage.serve.protocol import channel_options

log = logging.getLogger(__name__)

AUTH_METADATA_KEY = "authorization"
EXEMPT_PREFIXES: tuple[str, ...] = (f"/{health.SERVICE_NAME}/",)


def read_file(path: str | Path, what: str) -> bytes:
    """The bytes of a configured security file; ValueError names the setting when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {str(path)!r}: {exc.strerror or exc}") from None


def read_token(path: str | Path) -> str:
    """The token in a file (surrounding whitespace removed); ValueError when the file is empty."""
    token = read_file(path, "auth token file").decode().strip()
    if not token:
        raise ValueError(f"the auth token file {str(path)!r} is empty")
    return token


def server_credentials(cert: str, key: str, client_ca: str = "") -> grpc.ServerCredentials:
    """TLS credentials from PEM files; a client CA makes client certificates mandatory (mTLS)."""
    pair = [(read_file(key, "TLS key"), read_file(cert, "TLS certificate"))]
    if not client_ca:
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(
        pair, root_certificates=read_file(client_ca, "TLS client CA"), require_client_auth=True
    )


def channel_credentials(ca: str = "", cert: str = "", key: str = "") -> grpc.ChannelCredentials:
    """Client TLS credentials: `ca` verifies the server (system roots when empty); cert + key for mTLS."""
    return grpc.ssl_channel_credentials(
        root_certificates=read_file(ca, "TLS CA") if ca else None,
        private_key=read_file(key, "TLS client key") if key else None,
        certificate_chain=read_file(cert, "TLS client certificate") if cert else None,
    )


class ClientSecurity(TypedDict, total=False):
    """A client's credentials: the keyword arguments of PoseClient, AsyncPoseClient and
    `predict_files(client_options=...)`, declared once so that the clients cannot drift apart.

    `token` is sent as "authorization: Bearer <token>" on every call but health checks;
    `tls=True` (or any TLS file) makes the channel TLS: `tls_ca` verifies the server
    (system roots when empty), `tls_cert` + `tls_key` are a client certificate (mTLS),
    `tls_server_name` overrides the name checked in the server's certificate.
    """

    token: str | None
    tls: bool
    tls_ca: str
    tls_cert: str
    tls_key: str
    tls_server_name: str


def client_channel(channels: ModuleType, target: str, max_message_bytes: int, security: ClientSecurity) -> Any:
    """A channel to `target` from `channels` (`grpc` or `grpc.aio`: their channel functions take the same
    arguments), TLS when `security` asks for it. A misspelt option raises instead of silently meaning plaintext."""
    known = ClientSecurity.__optional_keys__
    if unknown := set(security) - known:
        raise TypeError(f"unknown client options {sorted(unknown)}; expected {sorted(known)}")
    ca, cert, key = security.get("tls_ca", ""), security.get("tls_cert", ""), security.get("tls_key", "")
    if bool(cert) != bool(key):
        raise ValueError("tls_cert and tls_key go together (a client certificate and its key)")
    options: list[tuple[str, int | str]] = list(channel_options(max_message_bytes))
    if security.get("tls_server_name"):
        options.append(("grpc.ssl_target_name_override", security["tls_server_name"]))
    if not (security.get("tls") or ca or cert):
        return channels.insecure_channel(target, options=options)
    return channels.secure_channel(target, channel_credentials(ca, cert, key), options=options)


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags with which `vantage predict` and `vantage bench` reach a server that has a token or TLS
    (named after the server's own: a token travels in a file, never on a command line that `ps` shows)."""
    parser.add_argument("--token-file", help="file holding the server's bearer token (its --auth-token-file)")
    parser.add_argument("--tls-ca", help="PEM CA certificate that verifies a TLS server (enables TLS)")
    parser.add_argument("--tls-cert", help="PEM client certificate, for a server with --tls-client-ca (mTLS)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")


def client_security(
    token_file: str | None = None, tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None
) -> ClientSecurity:
    """Client options from those flags' values (None = not given), the token read from its file
    (ValueError when it cannot be)."""
    security = ClientSecurity(tls_ca=tls_ca or "", tls_cert=tls_cert or "", tls_key=tls_key or "")
    if token_file:
        security["token"] = read_token(token_file)
    return security


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying `token` (none without one)."""
    return ((AUTH_METADATA_KEY, f"Bearer {token}"),) if token else ()


def _aborting_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, details: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that ends the call with `code` (requests left unparsed)."""

    def abort(_request, context: grpc.ServicerContext):
        context.abort(code, details)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


class TokenInterceptor(grpc.ServerInterceptor):
    """UNAUTHENTICATED for calls without "authorization: Bearer <token>" (health checks exempt)."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, handler_call_details: grpc.HandlerCallDetails):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(EXEMPT_PREFIXES):
            return handler
        given = dict(handler_call_details.invocation_metadata or ()).get(AUTH_METADATA_KEY, "")
        if hmac.compare_digest(str(given).encode(), self._expected):
            return handler
        reason = "missing" if not given else "wrong"
        log.info("refused %s: %s bearer token", method, reason)
        return _aborting_handler(handler, grpc.StatusCode.UNAUTHENTICATED, f"{reason} bearer token in 'authorization' metadata")


def confine_path(root: str | Path, path: str | Path) -> Path:
    """`path` resolved (symlinks followed); ValueError unless it lies inside `root` (also resolved)."""
    root_resolved = Path(root).resolve()
    resolved = Path(path).resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise ValueError(f"{str(path)!r} lies outside the configured model root {str(root_resolved)!r}")
    return resolved
