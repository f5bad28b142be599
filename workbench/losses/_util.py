"""Small helpers shared by the losses."""

from __future__ import annotations

from collections.abc import Mapping

import paddle


def batch_tensor(batch: Mapping, key: str, dtype: str | None = None) -> paddle.Tensor:
    """``batch[key]`` as a Paddle tensor (collate may hand us numpy arrays), optionally cast to ``dtype``."""
    if key not in batch:
        raise KeyError(f"loss: the batch has no {key!r} entry (keys: {sorted(batch)})")
    value = batch[key]
    tensor = value if isinstance(value, paddle.Tensor) else paddle.to_tensor(value)
    if dtype is not None and tensor.dtype != getattr(paddle, dtype):
        tensor = tensor.astype(dtype)
    return tensor
