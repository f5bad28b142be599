"""``tasks.common.batch_tensors``: the batch's arrays become tensors in place, so a training step does not hold
each array twice (numpy and Paddle's copy) across its forward pass; a batch given again reuses the tensors."""

from __future__ import annotations

import numpy as np
import paddle

from workbench.tasks.common import batch_tensors


def test_arrays_replaced_by_the_tensors_returned():
    image = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
    batch = {"image": image, "length": np.array([1, 2]), "path": ["a.jpg", "b.jpg"]}
    tensors = batch_tensors(batch, ("image", "length", "label_sar"))
    assert set(tensors) == {"image", "length"}  # absent keys are skipped
    assert tensors["image"] is batch["image"] and isinstance(batch["image"], paddle.Tensor)
    np.testing.assert_array_equal(batch["image"].numpy(), image)
    assert batch["path"] == ["a.jpg", "b.jpg"]  # keys not asked for are left alone


def test_a_batch_given_again_reuses_its_tensors():
    batch = {"image": np.ones((1, 3, 4, 4), np.float32)}
    first = batch_tensors(batch, ("image",))["image"]
    assert batch_tensors(batch, ("image",))["image"] is first
