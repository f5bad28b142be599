"""PP-OCRv3 recognisers: the SAR training branch (labels, loss, gradients, export) and a training step of the real
task on real crops. Forward parity of MobileNetV1Enhance with upstream code: ``test_models_upstream_backbones.py``."""

from __future__ import annotations

import numpy as np
import paddle

from workbench.models import zoo
from workbench.models.rep import fuse_for_inference


def _x(shape, seed=0):
    return paddle.to_tensor(np.random.default_rng(seed).normal(0, 1, shape).astype("float32"))


# ---------------------------------------------------------------------------------------------- PP-OCRv3 SAR branch


def test_sar_labels_loss_and_gradients(fixtures_dir):
    """PP-OCRv3 rec: SAR labels as upstream's SARLabelEncode, the loss ignores padding, and the SAR branch is what
    trains the backbone (the CTC branch detaches its input)."""
    from workbench.data.charset import Charset
    from workbench.losses.multi import MultiLoss
    from workbench.losses.sar import SARLoss

    charset = Charset.from_file(fixtures_dir / "parity" / "ppocrv5_en_dict.txt")
    n = len(charset) + 1  # dictionary + space
    label, length = charset.encode_sar("ab", 25)
    assert length == 2 and charset.num_sar_classes == charset.num_ctc_classes + 2 == n + 3
    a, b = charset.encode("ab")
    assert label[:4].tolist() == [n + 1, a - 1, b - 1, n + 1] and (label[4:] == n + 2).all()

    logits = paddle.to_tensor(np.random.default_rng(0).normal(size=(1, 25, n + 2)).astype("float32"))
    loss = float(SARLoss()({"sar": logits}, {"label_sar": label[None]})["loss"])
    targets = label[1:4]  # <PAD> targets are ignored: 3 terms
    lp = logits.numpy()[0, :3] - np.log(np.exp(logits.numpy()[0, :3]).sum(-1, keepdims=True))
    np.testing.assert_allclose(loss, -np.mean(lp[np.arange(3), targets]), rtol=1e-5)

    paddle.seed(0)
    model = zoo.build_model("en_PP-OCRv3_mobile_rec", charset=charset)
    model.train()
    batch = {"label_ctc": paddle.to_tensor(charset.encode_ctc("ab", 25)[0][None]), "length": paddle.to_tensor([2]),
             "label_sar": paddle.to_tensor(label[None]), "valid_ratio": paddle.to_tensor([0.5], "float32")}
    x = _x([1, 3, 48, 320])
    out = model(x, batch)
    assert out["sar"].shape == [1, 25, n + 2]  # one prediction per label position (the loss drops the last)
    MultiLoss(ctc_weight=0.0)(out, batch)["loss"].backward()
    grad = model.backbone.conv1._conv.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0
    # eval: the CTC probabilities only, and the export drops the SAR branch
    model.eval()
    with paddle.no_grad():
        assert model(x).shape == [1, 40, charset.num_ctc_classes]
    fuse_for_inference(model, drop_training_branches=True)
    assert not any("sar_head" in k for k in model.state_dict())



def test_v3_rec_trains_through_the_task_on_real_crops(shared_dir, tmp_path):
    """The rec task gives a SAR model its labels (``label_sar``) and the resize's ``valid_ratio``; the first loss
    is the untrained SAR branch's ~ln(classes)."""
    from tiny_runs import rec_config
    from workbench.tasks import build_task

    cfg = rec_config(shared_dir, tmp_path / "run", model__name="en_PP-OCRv3_mobile_rec")
    task = build_task(cfg)
    model = task.build_model()
    dataset = task.train_dataset()
    batch = task.collate_train([dataset.load(i, rng=np.random.default_rng(i), epoch=0) for i in range(4)])
    assert batch["label_sar"].shape == (4, 25) and 0 < float(batch["valid_ratio"].min()) <= 1.0
    model.train()
    losses, count = task.training_step(model, task.build_loss(), batch)
    assert count == 4 and set(losses) == {"loss", "loss_ctc", "loss_sar"}
    assert abs(float(losses["loss_sar"]) - np.log(task.charset.num_sar_classes - 1)) < 1.5
