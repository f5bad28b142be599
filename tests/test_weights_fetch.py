"""Downloads against a local HTTP server: resume after an interrupted transfer, corrupted files, offline mode."""

from __future__ import annotations

import hashlib
import os

import pytest

from http_server import FileServer
from workbench.errors import WeightsError
from workbench.weights.fetch import fetch

PAYLOAD = os.urandom(3 * (1 << 20) + 123)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_plain_download_verifies_sha(tmp_path):
    with FileServer() as srv:
        srv.files["/w.pdparams"] = PAYLOAD
        out = fetch(srv.url + "/w.pdparams", tmp_path / "w.pdparams", sha256=SHA, progress=False)
    assert out.read_bytes() == PAYLOAD


def test_interrupted_download_resumes_with_range(tmp_path):
    with FileServer() as srv:
        srv.files["/w.pdparams"] = PAYLOAD
        srv.cut_after["/w.pdparams"] = 1_000_000
        out = fetch(srv.url + "/w.pdparams", tmp_path / "w.pdparams", sha256=SHA, progress=False)
        assert out.read_bytes() == PAYLOAD
        # the second request continued where the first stopped instead of starting over
        assert srv.requests[0] == ("/w.pdparams", None)
        assert srv.requests[1][1].startswith("bytes=") and int(srv.requests[1][1][6:-1]) >= 1_000_000


def test_corrupted_download_is_rejected_and_not_used(tmp_path):
    with FileServer() as srv:
        srv.files["/w.pdparams"] = PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 0xFF])  # always differs (urandom may end in 0)
        with pytest.raises(WeightsError, match="sha256"):
            fetch(srv.url + "/w.pdparams", tmp_path / "w.pdparams", sha256=SHA, progress=False)
    assert not (tmp_path / "w.pdparams").exists()
    assert (tmp_path / "w.pdparams.corrupt").exists()


def test_corrupted_cached_file_is_replaced(tmp_path):
    (tmp_path / "w.pdparams").write_bytes(b"garbage")
    with FileServer() as srv:
        srv.files["/w.pdparams"] = PAYLOAD
        out = fetch(srv.url + "/w.pdparams", tmp_path / "w.pdparams", sha256=SHA, progress=False)
    assert out.read_bytes() == PAYLOAD


def test_offline_mode_explains_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("WB_OFFLINE", "1")
    with pytest.raises(WeightsError) as e:
        fetch("http://example.invalid/x.pdparams", tmp_path / "x.pdparams", progress=False)
    assert str(tmp_path / "x.pdparams") in str(e.value) and "http://example.invalid/x.pdparams" in str(e.value)


def test_failed_download_keeps_partial_file_and_next_run_resumes(tmp_path):
    with FileServer() as srv:
        srv.files["/w.pdparams"] = PAYLOAD
        srv.cut_after["/w.pdparams"] = 500_000
        with pytest.raises(WeightsError, match="resume"):
            fetch(srv.url + "/w.pdparams", tmp_path / "w.pdparams", sha256=SHA, progress=False, max_attempts=1)
        part = tmp_path / "w.pdparams.part"
        assert part.stat().st_size == 500_000
        out = fetch(srv.url + "/w.pdparams", tmp_path / "w.pdparams", sha256=SHA, progress=False)
        assert out.read_bytes() == PAYLOAD and not part.exists()
        assert srv.requests[-1][1] == "bytes=500000-"
