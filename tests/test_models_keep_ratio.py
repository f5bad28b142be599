"""Keep-ratio recognition training (the rec_finetune recipe's default) on every recogniser of the zoo: in training
the backbone then pools to as many time steps as at inference (T follows the crop width), instead of upstream's
fixed 40."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from workbench.models import zoo

REC_MODELS = zoo.list_models("rec")


@pytest.mark.parametrize("name", REC_MODELS)
def test_training_time_steps_follow_the_width_as_at_inference(name):
    model = zoo.build_model(name, num_classes=12)
    model.pool_like_inference()
    backbone = model.backbone
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((1, 3, 48, 480)).astype("float32"))
    with paddle.no_grad():
        backbone.eval()
        at_inference = backbone(x).shape
        backbone.train()
        in_training = backbone(x).shape
    assert in_training == at_inference, (name, in_training, at_inference)
