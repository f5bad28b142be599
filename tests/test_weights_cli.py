"""`wb weights fetch` against a local HTTP server (resume, corruption, offline) and `wb weights import` end to end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import paddle
import pytest

from http_server import FileServer
from workbench import cli

FETCHED = "PP-OCRv5_mobile_det"  # the smallest model with official pretrained weights (3.6 M values)
FILE = f"/{FETCHED}_pretrained.pdparams"


def wb(*argv: str) -> int:
    return cli.main(["weights", *map(str, argv)])


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> bytes:
    """A genuine training state dict of FETCHED, as the server will serve it."""
    from workbench.models import zoo

    path = tmp_path_factory.mktemp("payload") / "w.pdparams"
    paddle.seed(3)
    paddle.save(zoo.build_model(FETCHED).state_dict(), str(path))
    return path.read_bytes()


def _cached(cache: Path) -> Path:
    return cache / "pretrained" / FILE[1:]


# ------------------------------------------------------------------------------------------------ fetch


def test_fetch_resumes_an_interrupted_transfer_and_checks_the_file(payload, tmp_path, capsys):
    with FileServer() as srv:
        srv.files[FILE] = payload
        srv.cut_after[FILE] = 4_000_000
        assert wb("fetch", FETCHED, "--cache-dir", tmp_path, "--mirror", srv.url, "--no-progress") == 0
    out = capsys.readouterr().out
    path = _cached(tmp_path)
    assert path.read_bytes() == payload
    assert srv.requests[0] == (FILE, None) and srv.requests[1] == (FILE, "bytes=4000000-")
    sha = hashlib.sha256(payload).hexdigest()
    assert sha in out and "tensors fit the training graph" in out
    assert path.with_name(path.name + ".sha256").read_text().split()[0] == sha


def test_fetch_continues_a_previous_runs_partial_file(payload, tmp_path):
    part = _cached(tmp_path).with_name(FILE[1:] + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(payload[:1_234_567])  # what an interrupted earlier run left
    with FileServer() as srv:
        srv.files[FILE] = payload
        assert wb("fetch", FETCHED, "--cache-dir", tmp_path, "--mirror", srv.url, "--no-progress") == 0
    assert srv.requests == [(FILE, "bytes=1234567-")]
    assert _cached(tmp_path).read_bytes() == payload and not part.exists()


def test_fetch_refuses_a_corrupted_file(payload, tmp_path, capsys):
    garbage = bytes(np.random.default_rng(0).integers(0, 256, len(payload), dtype=np.uint8))
    with FileServer() as srv:
        srv.files[FILE] = garbage
        assert wb("fetch", FETCHED, "--cache-dir", tmp_path, "--mirror", srv.url, "--no-progress") == 2
    err = capsys.readouterr().err
    assert "not a readable Paddle weights file" in err and "moved to" in err
    path = _cached(tmp_path)
    assert not path.exists() and path.with_name(path.name + ".corrupt").exists()
    assert not path.with_name(path.name + ".sha256").exists()


@pytest.mark.parametrize("pin", ["sha256", "bytes"])
def test_fetch_refuses_a_file_that_differs_from_the_pinned_table(payload, tmp_path, capsys, monkeypatch, pin):
    """A genuine-looking state dict that is not the pinned file (another digest, or another size) is moved aside,
    never left under the final name, and nothing of it is loaded."""
    import dataclasses

    from workbench.models import zoo

    spec = zoo.get_spec(FETCHED)
    pinned = {"pretrained_sha256": hashlib.sha256(payload).hexdigest(), "pretrained_bytes": len(payload)}
    pinned["pretrained_" + pin] = "0" * 64 if pin == "sha256" else len(payload) + 10
    real = zoo.get_spec
    monkeypatch.setattr(zoo, "get_spec", lambda name: dataclasses.replace(spec, **pinned) if name == FETCHED
                        else real(name))
    with FileServer() as srv:
        srv.files[FILE] = payload
        assert wb("fetch", FETCHED, "--cache-dir", tmp_path, "--mirror", srv.url, "--no-progress") == 2
    err = capsys.readouterr().err
    assert ("does not match the expected" if pin == "sha256" else "the pinned size is") in err
    path = _cached(tmp_path)
    assert not path.exists() and path.with_name(path.name + ".corrupt").exists()
    assert not path.with_name(path.name + ".part").exists()


def test_fetch_refuses_a_pickle_that_would_run_code(tmp_path, capsys):
    import pickle

    class Payload:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('ran')" % str(tmp_path / "code_ran"),))

    with FileServer() as srv:
        srv.files[FILE] = pickle.dumps({"backbone.conv1.conv.weight": Payload()}, protocol=4)
        assert wb("fetch", FETCHED, "--cache-dir", tmp_path, "--mirror", srv.url, "--no-progress") == 2
    err = capsys.readouterr().err
    assert "refused to load: the file references builtins.exec" in err and "moved to" in err
    assert not (tmp_path / "code_ran").exists() and not _cached(tmp_path).exists()


def test_fetch_refuses_weights_of_another_model(tmp_path, capsys):
    from workbench.models import zoo

    other = tmp_path / "other.pdparams"
    paddle.save(zoo.build_model("det_tiny").state_dict(), str(other))
    with FileServer() as srv:
        srv.files[FILE] = other.read_bytes()
        assert wb("fetch", FETCHED, "--cache-dir", tmp_path, "--mirror", srv.url, "--no-progress") == 2
    assert "is not PP-OCRv5_mobile_det's training state dict" in capsys.readouterr().err


def test_fetch_replaces_a_cached_file_damaged_on_disk(payload, tmp_path):
    with FileServer() as srv:
        srv.files[FILE] = payload
        assert wb("fetch", FETCHED, "--cache-dir", tmp_path, "--mirror", srv.url, "--no-progress") == 0
        path = _cached(tmp_path)
        damaged = bytearray(payload)
        damaged[100_000] ^= 0xFF  # one flipped byte: the state dict would still load, with one wrong weight
        path.write_bytes(bytes(damaged))
        assert wb("fetch", FETCHED, "--cache-dir", tmp_path, "--mirror", srv.url, "--no-progress") == 0
    assert path.read_bytes() == payload and len(srv.requests) == 2  # the recorded sha256 caught it
    assert path.with_name(path.name + ".corrupt").exists()


def test_fetch_offline_says_where_to_put_the_file(payload, tmp_path, capsys):
    assert wb("fetch", FETCHED, "--cache-dir", tmp_path, "--offline") == 2
    err = capsys.readouterr().err
    assert "offline" in err and str(_cached(tmp_path)) in err
    assert f"paddle-model-ecology.bj.bcebos.com/paddlex/official_pretrained_model{FILE}" in err
    # with the file put there by hand, offline works (and checks it)
    _cached(tmp_path).parent.mkdir(parents=True)
    _cached(tmp_path).write_bytes(payload)
    assert wb("fetch", FETCHED, "--cache-dir", tmp_path, "--offline", "--no-progress") == 0


@pytest.mark.parametrize("name", ["PP-OCRv6_small_rec", "PP-OCRv6_tiny_det", "PP-OCRv4_server_rec_doc",
                                  "korean_PP-OCRv5_mobile_rec"])
def test_fetch_knows_the_official_file_of_every_family(name, tmp_path, capsys):
    """The official URL (offline message) and the file name asked of a mirror; a file of the wrong layout is refused."""
    assert wb("fetch", name, "--cache-dir", tmp_path, "--offline") == 2
    assert (f"https://paddle-model-ecology.bj.bcebos.com/paddlex/official_pretrained_model/{name}_pretrained.pdparams"
            in capsys.readouterr().err)
    wrong = tmp_path / "wrong.pdparams"
    paddle.save({"head.ctc_head.fc.weight": paddle.zeros([4, 4])} if "rec" in name else {"x": paddle.zeros([1])},
                str(wrong))
    with FileServer() as srv:
        srv.files[f"/{name}_pretrained.pdparams"] = wrong.read_bytes()
        assert wb("fetch", name, "--cache-dir", tmp_path, "--mirror", srv.url, "--no-progress") == 2
    assert srv.requests[0][0] == f"/{name}_pretrained.pdparams"
    assert f"is not {name}'s training state dict" in capsys.readouterr().err


def test_fetch_a_v6_model_and_check_it_fits(tmp_path, capsys):
    from workbench.models import zoo

    name = "PP-OCRv6_tiny_det"  # 0.5 M values: a genuine training state dict, served and checked
    path = tmp_path / "w.pdparams"
    paddle.save(zoo.build_model(name).state_dict(), str(path))
    with FileServer() as srv:
        srv.files[f"/{name}_pretrained.pdparams"] = path.read_bytes()
        assert wb("fetch", name, "--cache-dir", tmp_path / "cache", "--mirror", srv.url, "--no-progress") == 0
    out = capsys.readouterr().out
    assert "494 tensors fit the training graph" in out and f"model.pretrained={name}" in out


def test_fetch_unknown_or_weightless_model(tmp_path, capsys):
    assert wb("fetch", "PP-OCRv9_det", "--cache-dir", tmp_path, "--offline") == 2
    assert "unknown model" in capsys.readouterr().err
    assert wb("fetch", "det_tiny", "--cache-dir", tmp_path, "--offline") == 2
    assert "has no official pretrained weights" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ import


@pytest.fixture(scope="module")
def imported_det_file(stock, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("det") / "weights" / "v5_mobile_det.pdparams"
    code = wb("import", stock / "PP-OCRv5_mobile_det.onnx", "--out", out,  # model name from the file name
              "--calib", data_dir / "icdar2015_det" / "label.txt", "--calib-count", 2,
              "--probe", data_dir / "icdar2015_det" / "label.txt", "--probe-count", 2)
    assert code == 0
    return out


def test_import_onnx_det(imported_det_file, capsys):
    from workbench.models import zoo
    from workbench.weights.pretrained import read_state_dict

    record = json.loads(imported_det_file.with_name("v5_mobile_det.import.json").read_text())
    assert record["model_name"] == "PP-OCRv5_mobile_det" and record["source_format"] == "onnx"
    assert record["parity"]["runtime"] == "onnxruntime" and record["parity"]["samples"] == 2
    assert record["parity"]["max_abs_diff"] <= 1e-3
    assert "2 images from" in record["calibration"]
    assert {p["group"] for p in record["initialised"]} >= {"head.thresh"}
    state = read_state_dict(imported_det_file)
    assert list(state) == list(zoo.build_model("PP-OCRv5_mobile_det").state_dict())


def test_import_paddle_inference_folder_infers_the_model(imported_det_file, tmp_path, capsys):
    from test_weights_import import export_inference_folder
    from workbench.models import zoo

    model = zoo.build_model("PP-OCRv5_mobile_det")
    model.set_state_dict(paddle.load(str(imported_det_file)))
    folder = export_inference_folder(model, "PP-OCRv5_mobile_det", tmp_path / "PP-OCRv5_mobile_det_infer")
    capsys.readouterr()
    assert wb("import", folder, "--out", tmp_path / "again.pdparams") == 0
    out = capsys.readouterr().out
    assert "as PP-OCRv5_mobile_det" in out and "self-check vs Paddle Inference" in out
    record = json.loads((tmp_path / "again.import.json").read_text())
    assert record["source_format"] == "paddle" and record["parity"]["max_abs_diff"] <= 1e-3


def test_import_onnx_rec_records_the_dictionary(stock, data_dir, tmp_path, monkeypatch, capsys):
    """The dictionary ends up where `wb train` / `wb eval` look for it, so they run offline."""
    from workbench.models import zoo
    from workbench.weights.pretrained import fetch_dictionary

    monkeypatch.setenv("WB_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "weights" / "v5_mobile_rec.pdparams"
    assert wb("import", stock / "PP-OCRv5_mobile_rec.onnx", "--model", "PP-OCRv5_mobile_rec",
              "--dict", stock / "ppocrv5_dict.txt", "--out", out,
              "--calib", data_dir / "icdar2015_rec" / "label.txt", "--calib-count", 8,
              "--probe", data_dir / "sroie_rec" / "label.txt", "--probe-count", 6) == 0
    printed = capsys.readouterr().out
    assert "decoded texts differing: 0" in printed and "wb eval recipe=rec_finetune checkpoint=" in printed
    record = json.loads(out.with_name("v5_mobile_rec.import.json").read_text())
    assert record["num_classes"] == 18385 and record["parity"]["text_mismatches"] == 0
    assert {p["group"] for p in record["initialised"]} == {"head.gtc_head", "head.before_gtc"}
    dict_file = Path(record["dictionary"]["file"])
    assert b"\r" not in dict_file.read_bytes() and len(dict_file.read_text(encoding="utf-8").splitlines()) == 18383
    monkeypatch.setenv("WB_OFFLINE", "1")  # the official dictionary is now in the cache: no download needed
    assert fetch_dictionary(zoo.get_spec("PP-OCRv5_mobile_rec").dictionary) == Path(
        record["dictionary"]["official_copy_in_cache"])


def test_import_refuses_a_dictionary_of_the_wrong_size(stock, fixtures_dir, tmp_path, capsys):
    out = tmp_path / "rec.pdparams"
    assert wb("import", stock / "PP-OCRv5_mobile_rec.onnx", "--dict", fixtures_dir / "parity" / "ppocrv5_en_dict.txt",
              "--out", out) == 2
    assert "wrong dictionary" in capsys.readouterr().err and not out.exists()


def test_import_needs_to_know_the_model(stock, tmp_path, capsys):
    renamed = tmp_path / "model.onnx"
    renamed.write_bytes((stock / "PP-OCRv5_mobile_det.onnx").read_bytes())
    assert wb("import", renamed, "--out", tmp_path / "x.pdparams") == 2
    assert "pass --model" in capsys.readouterr().err
