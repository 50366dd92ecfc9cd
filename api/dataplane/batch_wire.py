"""The batch process's wire: a message is its length (4 bytes), then a
pickle. Without Django, for the keeper (api.dataplane.batch_host), which
binds the socket before any model code runs.

Pickle, because the rows and results are numpy arrays and DataFrames; the
socket lives in a directory only the server's own user can enter, so only
its own processes can speak on it.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LENGTH = struct.Struct("<I")


def send(sock: socket.socket, message: tuple[Any, ...]) -> None:
    """One message: its pickled length, then the pickle (protocol 5)."""
    data = pickle.dumps(message, protocol=5)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def receive(sock: socket.socket) -> tuple[Any, ...]:
    """The next message; EOFError when the other side has gone."""
    (length,) = _LENGTH.unpack(_exactly(sock, _LENGTH.size))
    return pickle.loads(_exactly(sock, length))


def _exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise EOFError("the other side closed the connection")
        chunks += chunk
    return bytes(chunks)


# What a Unix socket's path may hold (sun_path: 108 bytes with its NUL).
_SUN_PATH_BYTES = 107


@contextmanager
def reachable(path: str) -> Iterator[str]:
    """``path``, or the same socket through a short name when ``path`` is
    too long to bind or connect to (a deep TMPDIR): its directory opened,
    under /proc/self/fd."""
    if len(os.fsencode(path)) <= _SUN_PATH_BYTES:
        yield path
        return
    directory = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{directory}/{os.path.basename(path)}"
    finally:
        os.close(directory)
