"""Nothing reaches the network: the demo study and `predict` with every host lookup and internet connection refused.

The frozen build is checked the same way by packaging/smoke_test.py (tests/test_frozen_build.py).
"""

from __future__ import annotations

import csv
import socket

import pytest

from app.commands.predict import predict_folder
from app.inference.registry import ModelRegistry
from app.io.demo import demo_paths


@pytest.fixture
def network_attempts(monkeypatch):
    """Each refused attempt, recorded; the code under test sees an OSError as it would offline."""
    attempts = []

    def refuse(what):
        def refused(*args, **kwargs):
            attempts.append((what, args[:2]))
            raise OSError(f"network forbidden in this test: {what}")
        return refused

    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            return refuse("connect")(self, address)
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)
    return attempts


def test_the_guard_refuses_and_records(network_attempts):
    with pytest.raises(OSError):
        socket.getaddrinfo("example.org", 443)
    assert network_attempts == [("getaddrinfo", ("example.org", 443))]


def test_demo_study_and_predict_run_offline(network_attempts, tmp_path):
    registry = ModelRegistry.discover()
    inputs = demo_paths(tmp_path / "cache")
    if not any(registry.default_for(m) for m in ("MG", "US", "MR")):
        pytest.skip("no shipped model for the demo's modalities")
    folder = tmp_path / "inputs"
    folder.mkdir()
    for path in inputs:
        (folder / path.name).write_bytes(path.read_bytes())
    report = predict_folder(folder, tmp_path / "out", device="cpu", registry=registry)
    rows = list(csv.DictReader((tmp_path / "out" / "predictions.csv").open()))
    assert report.predicted >= 1 and len(rows) == report.predicted
    assert network_attempts == []
