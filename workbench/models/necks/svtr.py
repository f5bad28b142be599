"""The SVTR sequence encoder of the PP-OCRv4/v5 recognisers' CTC branch (upstream ``EncoderWithSVTR``).

``[N, C, 1, T]`` backbone map -> conv 1x3 (C/8) -> conv 1x1 (hidden) -> ``depth`` global-attention transformer
blocks over the T positions -> conv 1x1 (C) -> concat with the input -> conv 1x3 (C/8) -> conv 1x1 (dims).
:class:`SVTRSequenceEncoder` wraps it (state-dict prefix ``encoder.``) and turns the result into ``[N, T, dims]``.

``use_guide=True`` **detaches** the encoder's input: the CTC loss then trains only this neck and the CTC
linear layer, never the backbone (the backbone learns through the NRTR branch). This is upstream behaviour
and keeps the official fine-tuning recipe; the forward values are unaffected.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
from paddle import ParamAttr
from paddle.nn.initializer import Constant, KaimingUniform, TruncatedNormal

__all__ = ["ConvBNSwish", "GlobalAttention", "Mlp", "SVTRBlock", "SVTREncoder", "SVTRSequenceEncoder"]

_trunc_normal = TruncatedNormal(std=0.02)
_zeros = Constant(0.0)
_ones = Constant(1.0)


class ConvBNSwish(nn.Layer):
    """Bias-free conv (Kaiming-uniform) + BatchNorm + Swish (state-dict names ``conv``, ``norm``)."""

    def __init__(self, in_channels, out_channels, kernel_size=(1, 1), padding=0):
        super().__init__()
        self.conv = nn.Conv2D(
            in_channels,
            out_channels,
            kernel_size,
            padding=padding,
            weight_attr=ParamAttr(initializer=KaimingUniform()),
            bias_attr=False,
        )
        self.norm = nn.BatchNorm2D(out_channels)
        self.act = nn.Swish()

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class Mlp(nn.Layer):
    """fc1 -> act -> dropout -> fc2 -> dropout."""

    def __init__(self, in_features: int, hidden_features: int, act_layer=nn.Swish, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class GlobalAttention(nn.Layer):
    """Multi-head self-attention over all positions (fused ``qkv`` projection, ``proj`` output)."""

    def __init__(
        self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"GlobalAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dim = dim
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias_attr=None if qkv_bias else False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        qkv = self.qkv(x).reshape([0, -1, 3, self.num_heads, self.head_dim]).transpose([2, 0, 3, 1, 4])
        # training: unbind, whose gradient is one stack; three slices' gradients each fill a zero tensor of the
        # full qkv size (Paddle CPU: 4-12 ms each at rec batch 32). Eval keeps upstream's slices in the graph.
        q, k, v = paddle.unbind(qkv, axis=0) if self.training else (qkv[0], qkv[1], qkv[2])
        q = q * self.scale  # scale q first, as upstream (bit-exact outputs)
        attn = self.attn_drop(nn.functional.softmax(q.matmul(k, transpose_y=True), axis=-1))
        x = attn.matmul(v).transpose([0, 2, 1, 3]).reshape([0, -1, self.dim])
        return self.proj_drop(self.proj(x))


class SVTRBlock(nn.Layer):
    """Post-residual transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(self, dim, num_heads, mlp_ratio=2.0, qkv_bias=True, drop=0.0, attn_drop=0.0, epsilon=1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=epsilon)
        self.mixer = GlobalAttention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.norm2 = nn.LayerNorm(dim, epsilon=epsilon)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), nn.Swish, drop)

    def forward(self, x):
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SVTREncoder(nn.Layer):
    """Upstream ``EncoderWithSVTR``; input ``[N, C, H, W]``, output ``[N, dims, H, W]``."""

    def __init__(
        self,
        in_channels: int,
        dims: int = 64,
        depth: int = 2,
        hidden_dims: int = 120,
        use_guide: bool = False,
        num_heads: int = 8,
        qkv_bias: bool = True,
        mlp_ratio: float = 2.0,
        drop_rate: float = 0.1,
        attn_drop_rate: float = 0.1,
        kernel_size: tuple[int, int] = (3, 3),
    ):
        super().__init__()
        self.use_guide = use_guide
        padding = [kernel_size[0] // 2, kernel_size[1] // 2]
        self.conv1 = ConvBNSwish(in_channels, in_channels // 8, kernel_size, padding)
        self.conv2 = ConvBNSwish(in_channels // 8, hidden_dims)
        self.svtr_block = nn.LayerList(
            [
                SVTRBlock(hidden_dims, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, epsilon=1e-5)
                for _ in range(depth)
            ]
        )
        self.norm = nn.LayerNorm(hidden_dims, epsilon=1e-6)
        self.conv3 = ConvBNSwish(hidden_dims, in_channels)
        self.conv4 = ConvBNSwish(2 * in_channels, in_channels // 8, kernel_size, padding)
        self.conv1x1 = ConvBNSwish(in_channels // 8, dims)
        self.out_channels = dims
        for layer in self.sublayers():
            if isinstance(layer, nn.Linear):
                _trunc_normal(layer.weight)
                if layer.bias is not None:
                    _zeros(layer.bias)
            elif isinstance(layer, nn.LayerNorm):
                _ones(layer.weight)
                _zeros(layer.bias)

    def forward(self, x):
        if self.use_guide:
            x = x.detach()  # gradient stops here: see the module docstring
        shortcut = x
        z = self.conv2(self.conv1(x))
        _, channels, height, _ = z.shape
        z = z.flatten(2).transpose([0, 2, 1])  # [N, H*W, hidden]
        for block in self.svtr_block:
            z = block(z)
        z = self.norm(z)
        z = z.reshape([0, height, -1, channels]).transpose([0, 3, 1, 2])
        z = self.conv3(z)
        z = paddle.concat([shortcut, z], axis=1)
        return self.conv1x1(self.conv4(z))


class SVTRSequenceEncoder(nn.Layer):
    """:class:`SVTREncoder` + ``[N, C, 1, T] -> [N, T, C]`` (upstream ``SequenceEncoder(encoder_type="svtr")``)."""

    def __init__(self, in_channels: int, **svtr_kwargs):
        super().__init__()
        self.encoder = SVTREncoder(in_channels, **svtr_kwargs)
        self.out_channels = self.encoder.out_channels

    def forward(self, x):
        x = self.encoder(x)
        return x.squeeze(2).transpose([0, 2, 1])
