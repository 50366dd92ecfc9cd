"""The batch process's wire (api.dataplane.batch_wire): messages cross a
Unix socket whole, whatever the length of the socket's path."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from api.dataplane.batch_wire import reachable, receive, send


def test_a_socket_deeper_than_a_unix_path_allows_is_bound_and_reached(tmp_path):
    directory = tmp_path / ("d" * 60) / ("e" * 60)
    directory.mkdir(parents=True)
    path = str(directory / "batch.sock")
    assert len(path) > 108
    with pytest.raises(OSError, match="too long"):
        socket.socket(socket.AF_UNIX).bind(path)

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with reachable(path) as short:
        listener.bind(short)
    listener.listen(1)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with reachable(path) as short:
        client.connect(short)
    server, _ = listener.accept()

    rows = np.random.default_rng(0).normal(size=(3, 20))
    send(client, ("predict", rows, 3))
    kind, received, count = receive(server)
    assert (kind, count) == ("predict", 3)
    assert received.tobytes() == rows.tobytes()
    for sock in (client, server, listener):
        sock.close()


def test_a_message_larger_than_one_read_arrives_whole():
    left, right = socket.socketpair()
    big = np.arange(1_000_000, dtype=np.float64)  # 8 MB: many reads
    sender = threading.Thread(target=send, args=(left, ("ok", big)))
    sender.start()
    kind, received = receive(right)
    sender.join()
    assert kind == "ok" and np.array_equal(received, big)
    left.close()
    with pytest.raises(EOFError):
        receive(right)
    right.close()
