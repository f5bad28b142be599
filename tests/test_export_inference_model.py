"""Loading a checkpoint for export: which weights, and refusing checkpoints that would deploy something other
than what was trained."""

from __future__ import annotations

import json
import shutil

import pytest

from workbench.errors import ExportError
from workbench.export.inference_model import load_export_source


def _copy(run, tmp_path, name="ckpt"):
    dst = tmp_path / name
    shutil.copytree(run / "checkpoints" / "best", dst)
    return dst


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_trained_checkpoints_load(tiny_rec_run, tiny_det_run):
    rec = load_export_source(tiny_rec_run, "rec")
    assert rec.paddlex_name == "PP-OCRv5_mobile_rec" and rec.charset.num_ctc_classes == 438
    assert rec.path.name == "best" and rec.image_shape == (3, 48, 320)
    det = load_export_source(tiny_det_run, "det", prefer="latest")
    assert det.paddlex_name == "PP-OCRv5_mobile_det" and det.path.name == "latest"


def test_untrained_checkpoint_is_refused(tiny_rec_run, tmp_path):
    ckpt = _copy(tiny_rec_run, tmp_path)
    _edit_json(ckpt / "meta.json", trained_steps=0)
    _edit_json(ckpt / "state.json", global_step=0)
    with pytest.raises(ExportError, match="never trained"):
        load_export_source(ckpt, "rec")


def test_incompletely_loaded_starting_weights_are_refused(tiny_det_run, tmp_path):
    ckpt = _copy(tiny_det_run, tmp_path)
    _edit_json(ckpt / "meta.json", weights_complete=False,
               weights={"source": "PP-OCRv5_mobile_det", "loaded_keys": 800, "total_keys": 905})
    with pytest.raises(ExportError, match=r"did not load completely.*800 of 905"):
        load_export_source(ckpt, "det")


def test_dictionary_that_does_not_fit_the_head_is_refused(tiny_rec_run, tmp_path):
    """dict.txt one line short, with meta.json consistent with it: only the head shape can tell."""
    from workbench.data.charset import Charset

    ckpt = _copy(tiny_rec_run, tmp_path)
    lines = (ckpt / "dict.txt").read_text(encoding="utf-8").splitlines()[:-1]
    (ckpt / "dict.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    short = Charset.from_file(ckpt / "dict.txt")
    _edit_json(ckpt / "meta.json", dictionary_sha256=short.sha256, num_ctc_classes=short.num_ctc_classes)
    with pytest.raises(ExportError) as e:
        load_export_source(ckpt, "rec")
    msg = str(e.value)
    assert "ctc_head" in msg and "435 lines" in msg and "trained with another dictionary" in msg


def test_edited_dictionary_is_refused_by_its_hash(tiny_rec_run, tmp_path):
    ckpt = _copy(tiny_rec_run, tmp_path)
    lines = (ckpt / "dict.txt").read_text(encoding="utf-8").splitlines()
    lines[0], lines[1] = lines[1], lines[0]  # same size, classes swapped: the head fits, decoding would be wrong
    (ckpt / "dict.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ExportError, match="dictionary_sha256"):
        load_export_source(ckpt, "rec")


def test_other_dictionary_given_on_the_command_line_is_refused(tiny_rec_run, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("a\nb\nc\n")
    with pytest.raises(ExportError, match="not the dictionary the checkpoint trained with"):
        load_export_source(tiny_rec_run, "rec", dictionary=other)


def test_model_trained_without_space_class_is_refused(tiny_rec_run, tmp_path):
    ckpt = _copy(tiny_rec_run, tmp_path)
    _edit_json(ckpt / "meta.json", use_space_char=False)
    with pytest.raises(ExportError, match="use_space_char"):
        load_export_source(ckpt, "rec")


def test_wrong_task_and_missing_weights_are_refused(tiny_rec_run, tmp_path):
    with pytest.raises(ExportError, match="task='rec'"):
        load_export_source(tiny_rec_run, "det")
    ckpt = _copy(tiny_rec_run, tmp_path)
    import paddle

    state = paddle.load(str(ckpt / "model.pdparams"))
    state.pop(next(k for k in state if k.startswith("backbone.")))
    paddle.save(state, str(ckpt / "model.pdparams"))
    with pytest.raises(ExportError, match="missing from the file"):
        load_export_source(ckpt, "rec")
    with pytest.raises(ExportError, match="neither an existing path"):
        load_export_source(tmp_path / "nothing_here", "rec")


def test_ema_weights_are_exported_when_the_run_evaluated_with_them(tiny_det_run, tmp_path):
    import numpy as np
    import paddle

    ckpt = _copy(tiny_det_run, tmp_path)
    state = paddle.load(str(ckpt / "model.pdparams"))
    key = next(k for k in state if k.endswith("weight"))
    ema = {"updates": 7, **{k: paddle.to_tensor(np.asarray(v) + 1.0) for k, v in state.items()}}
    paddle.save(ema, str(ckpt / "ema.pdparams"))
    auto = load_export_source(ckpt, "det")
    assert auto.weights_file == "ema.pdparams"
    np.testing.assert_array_equal(np.asarray(auto.state_dict[key]), np.asarray(state[key]) + 1.0)
    raw = load_export_source(ckpt, "det", weights="model")
    assert raw.weights_file == "model.pdparams"
    np.testing.assert_array_equal(np.asarray(raw.state_dict[key]), np.asarray(state[key]))


@pytest.mark.parametrize("task", ["rec", "det"])
def test_saved_graph_is_the_fused_eval_forward_with_dynamic_shapes(task, tiny_rec_run, tiny_det_run, tmp_path):
    import numpy as np
    import paddle

    from workbench.export.inference_model import build_model, save_inference_model
    from workbench.export.verify.ours import Workbench
    from workbench.export.verify.report import Tolerances

    source = load_export_source(tiny_rec_run if task == "rec" else tiny_det_run, task)
    facts = save_inference_model(source, tmp_path)
    assert (tmp_path / facts["graph"]).is_file() and (tmp_path / facts["params"]).is_file()
    trained = build_model(source)
    wb = Workbench({task: source})
    n_train = sum(int(p.size) for p in trained.parameters())
    assert facts["num_parameters"] < n_train  # rep branches fused, NRTR / DB threshold branch dropped
    loaded = paddle.jit.load(str(tmp_path / "inference"))
    loaded.eval()
    rng = np.random.default_rng(0)
    shapes = [(1, 3, 48, 96), (2, 3, 48, 320)] if task == "rec" else [(1, 3, 64, 96), (1, 3, 160, 128)]
    for shape in shapes:  # several sizes through one saved graph
        x = paddle.to_tensor(rng.uniform(-1, 1, shape).astype("float32"))
        ours, theirs = trained(x).numpy(), loaded(x).numpy()
        assert theirs.shape == ours.shape
        # the bound export verification puts on two float32 graphs of the same weights: the fixed tolerance or 4x
        # our own float32 noise on this input, whichever is larger (the tiny test models are ill-conditioned: on the
        # Xeon of 2026-12-05, 2 of 35,040 rec probabilities were 1.19e-4 apart, the one-ulp weight response 5.3e-5)
        _, noise = wb.det_map(x.numpy()) if task == "det" else wb.rec_probs(x.numpy())
        limit = max(5e-3 if task == "det" else 1e-4, Tolerances().noise_factor * noise)
        assert np.abs(theirs - ours).max() <= limit
    if task == "rec":
        assert ours.shape[-1] == source.charset.num_ctc_classes  # the CTC head only: [N, T, classes]


def test_eval_and_pretrained_read_the_ema_weights_export_ships(tiny_det_run, tmp_path):
    """`wb eval checkpoint=<run>` and ``model.pretrained=<run>`` resolve a checkpoint to the weights the run
    selected on (EMA when kept), without the average's update counter, so they load strictly and equal the export."""
    import numpy as np
    import paddle

    from workbench.weights import refs
    from workbench.weights.pretrained import read_state_dict

    ckpt = _copy(tiny_det_run, tmp_path)
    state = paddle.load(str(ckpt / "model.pdparams"))
    assert refs.resolve(str(ckpt), fetch=False).weights_file.name == "model.pdparams"  # no EMA kept: raw
    ema = {"updates": 7, **{k: paddle.to_tensor(np.asarray(v) + 1.0) for k, v in state.items()}}
    paddle.save(ema, str(ckpt / "ema.pdparams"))
    w = refs.resolve(str(ckpt), fetch=False)
    assert w.weights_file.name == "ema.pdparams"
    got = read_state_dict(w.weights_file)
    assert set(got) == set(state)  # no "updates"
    exported = load_export_source(ckpt, "det").state_dict
    for k in state:
        np.testing.assert_array_equal(got[k], np.asarray(exported[k]))
        np.testing.assert_array_equal(got[k], np.asarray(state[k]) + 1.0)
    # a weights file named inside the checkpoint is that file, with the checkpoint's model name and task
    for name in ("model.pdparams", "ema.pdparams"):
        named = refs.resolve(str(ckpt / name), fetch=False)
        assert (named.kind, named.weights_file, named.task) == (refs.RefKind.CHECKPOINT, ckpt / name, "det")
        assert named.model_name == w.model_name is not None
    np.testing.assert_array_equal(read_state_dict(ckpt / "model.pdparams")[k], np.asarray(state[k]))
