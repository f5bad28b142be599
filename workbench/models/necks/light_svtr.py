"""The light SVTR sequence encoder of the PP-OCRv6 small / medium recognisers' CTC branch (upstream
``EncoderWithLightSVTR``, ``SequenceEncoder(encoder_type="lightsvtr")``).

``[N, C, 1, T]`` backbone map:

* ``skip = skip_conv(x)`` (1x1 conv-BN-Swish, C -> dims), a cheap shortcut instead of SVTR's concat-and-fuse;
* ``z = conv_reduce(x)`` (1x1 conv-BN-Swish, C -> dims); ``z = z + local_conv(z)`` (depth-wise 1 x local_kernel
  conv-BN-Swish: local context before attention);
* ``depth`` global-attention transformer blocks over the T positions, a final LayerNorm;
* ``z + skip``, turned into ``[N, T, dims]``.

``use_guide`` detaches the input (the CTC loss then does not train the backbone), as in the v4/v5 SVTR encoder;
the PP-OCRv6 configs leave it off, so the CTC loss trains the backbone too.
"""

from __future__ import annotations

import paddle.nn as nn
from paddle import ParamAttr
from paddle.nn.initializer import Constant, KaimingNormal, TruncatedNormal

from workbench.models.necks.svtr import ConvBNSwish, SVTRBlock

__all__ = ["LightSVTREncoder", "LightSVTRSequenceEncoder"]


class LightSVTREncoder(nn.Layer):
    """Input ``[N, C, H, W]``, output ``[N, dims, H, W]`` (module docstring)."""

    def __init__(
        self,
        in_channels: int,
        dims: int = 64,
        depth: int = 1,
        num_heads: int = 8,
        qkv_bias: bool = True,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.1,
        attn_drop_rate: float = 0.1,
        local_kernel: int = 7,
        use_guide: bool = False,
    ):
        super().__init__()
        self.use_guide = use_guide
        self.conv_reduce = ConvBNSwish(in_channels, dims)
        self.local_conv = nn.Sequential(
            nn.Conv2D(dims, dims, [1, local_kernel], padding=[0, local_kernel // 2], groups=dims, bias_attr=False,
                      weight_attr=ParamAttr(initializer=KaimingNormal())),
            nn.BatchNorm2D(dims),
            nn.Swish(),
        )
        self.svtr_block = nn.LayerList(
            [SVTRBlock(dims, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, epsilon=1e-5)
             for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(dims, epsilon=1e-6)
        self.skip_conv = ConvBNSwish(in_channels, dims)
        self.out_channels = dims
        for layer in self.sublayers():
            if isinstance(layer, nn.Linear):
                TruncatedNormal(std=0.02)(layer.weight)
                if layer.bias is not None:
                    Constant(0.0)(layer.bias)
            elif isinstance(layer, nn.LayerNorm):
                Constant(1.0)(layer.weight)
                Constant(0.0)(layer.bias)

    def forward(self, x):
        if self.use_guide:
            x = x.detach()
        skip = self.skip_conv(x)
        z = self.conv_reduce(x)
        z = z + self.local_conv(z)
        _, channels, height, _ = z.shape
        z = z.flatten(2).transpose([0, 2, 1])  # [N, H*W, dims]
        for block in self.svtr_block:
            z = block(z)
        z = self.norm(z)
        z = z.reshape([0, height, -1, channels]).transpose([0, 3, 1, 2])
        return z + skip


class LightSVTRSequenceEncoder(nn.Layer):
    """:class:`LightSVTREncoder` (state-dict prefix ``encoder.``) + ``[N, C, 1, T] -> [N, T, C]``."""

    def __init__(self, in_channels: int, **kwargs):
        super().__init__()
        self.encoder = LightSVTREncoder(in_channels, **kwargs)
        self.out_channels = self.encoder.out_channels

    def forward(self, x):
        return self.encoder(x).squeeze(2).transpose([0, 2, 1])
