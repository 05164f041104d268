"""Who may talk to the control socket and the worker link: CURVE key files and the loopback-only default.

``p2p-network keys --curve-dir DIR`` writes one key pair for a network: ``DIR/network.key`` (public) and
``DIR/network.key_secret`` (secret, mode 0600). A supervisor or worker started with ``--curve-dir DIR`` serves
CURVE only; a client needs the same directory to talk to it. ZeroMQ CURVE encrypts and authenticates the server;
a client that lacks the public key (or speaks plain ZeroMQ) never completes the handshake and gets no answer.

Binding anything but a loopback address (or an ``ipc://`` file) without keys is refused unless the user says
``--insecure`` (:func:`p2pzmq.addresses.is_loopback` says what is loopback).
"""
from __future__ import annotations

import dataclasses
import os

from .addresses import is_loopback
from .errors import OutputError, UsageError
from .paths import check_path
from .transport import GreenSocket, curve_keypair

PUBLIC_FILE = "network.key"
SECRET_FILE = "network.key_secret"


@dataclasses.dataclass(frozen=True)
class Keys:
    """A network's CURVE key pair (Z85 bytes)."""

    public: bytes
    secret: bytes

    def serve(self, sock: GreenSocket) -> None:
        sock.curve_server(self.public, self.secret)

    def dial(self, sock: GreenSocket) -> None:
        sock.curve_client(self.public, self.public, self.secret)


def generate(directory: str) -> Keys:
    """Write a new key pair into ``directory`` (created if missing). Refuses (:class:`UsageError`) to overwrite
    existing keys or to use a path that is not a directory; :class:`OutputError` if the system refuses to write."""
    check_path(directory, "the key directory")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"{directory} is a file, not a directory")
    paths = [os.path.join(directory, name) for name in (PUBLIC_FILE, SECRET_FILE)]
    if any(os.path.exists(path) for path in paths):
        raise UsageError(f"{directory} already holds keys; remove them first or choose another directory")
    public, secret = curve_keypair()
    try:
        os.makedirs(directory, exist_ok=True)
        for path, key, mode in zip(paths, (public, secret), (0o644, 0o600)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(descriptor, "wb") as out:
                out.write(key + b"\n")
    except OSError as exc:
        raise OutputError(f"cannot write keys in {directory}: {exc.strerror or exc}") from exc
    return Keys(public, secret)


def load(directory: str | None) -> Keys | None:
    """The key pair in ``directory`` (None for None); a missing or malformed file is a :class:`UsageError`."""
    if directory is None:
        return None
    check_path(directory, "the key directory")
    keys = []
    for name in (PUBLIC_FILE, SECRET_FILE):
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as key_file:
                key = key_file.read().strip()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc} (make keys with p2p-network keys)") from exc
        if len(key) != 40:
            raise UsageError(f"{path} is not a Z85 CURVE key")
        keys.append(key)
    return Keys(*keys)


def check_exposure(what: str, endpoint: str, keys: Keys | None, insecure: bool) -> str | None:
    """Refuse to expose ``endpoint`` beyond loopback without keys, unless ``insecure``; returns the warning to show
    when exposed on purpose without keys (None otherwise)."""
    if is_loopback(endpoint) or keys is not None:
        return None
    if not insecure:
        raise UsageError(f"the {what} at {endpoint} is not loopback: give --curve-dir (see p2p-network keys) "
                         "or say --insecure")
    return f"WARNING: the {what} at {endpoint} is open to anyone who can reach it (--insecure, no CURVE keys)"
