"""NRTR transformer decoder: the attention ("GTC") branch of the PP-OCRv4/v5 recognisers' MultiHead.

Decoder-only (no encoder, so the visual sequence gets no positional encoding): token embedding x sqrt(d) +
sinusoidal positions -> ``num_layers`` x [causal self-attention, cross-attention to the visual sequence, ReLU
FFN], each post-norm with residual dropout -> bias-free projection to the vocabulary.

Vocabulary (``vocab_size`` = CTC classes + 4): 0 pad/blank, 1 ``<unk>``, 2 ``<s>``, 3 ``</s>``, 4.. the
dictionary, then space, then one extra row that is never a target (upstream sizes it ``out_channels + 1``).

Training uses teacher forcing: with ``M = max(length)`` in the batch, the decoder reads ``label_gtc[:, :M+1]``
(starting with ``<s>``) and its logits ``[N, M+1, vocab]`` are scored against ``label_gtc[:, 1:M+2]``.

Initialisation: every Linear is Xavier-normal with zero bias, the embedding is N(0, d^-0.5). Upstream draws the
embedding (and a projection init that its own Xavier pass then overwrites) from **numpy's** global RNG; we
draw everything from Paddle's RNG only, so ``paddle.seed`` (set by the trainer) alone makes runs reproducible.
"""

from __future__ import annotations

import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Constant, Normal, XavierNormal

__all__ = ["MultiheadAttention", "DecoderLayer", "PositionalEncoding", "TokenEmbedding", "NRTRDecoder"]


def _linear(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    return nn.Linear(
        in_features,
        out_features,
        weight_attr=ParamAttr(initializer=XavierNormal()),
        bias_attr=ParamAttr(initializer=Constant(0.0)) if bias else False,
    )


def _dropout(x, layer: nn.Dropout):
    return layer(x) if layer.p > 0 else x


class MultiheadAttention(nn.Layer):
    """Self-attention (fused ``qkv``) or cross-attention (``q`` from the query, fused ``kv`` from the memory)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, self_attn: bool = False):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} not divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = self.head_dim**-0.5
        self.self_attn = self_attn
        if self_attn:
            self.qkv = _linear(embed_dim, embed_dim * 3)
        else:
            self.q = _linear(embed_dim, embed_dim)
            self.kv = _linear(embed_dim, embed_dim * 2)
        self.attn_drop = nn.Dropout(dropout)
        self.out_proj = _linear(embed_dim, embed_dim)

    def forward(self, query, memory=None, attn_mask=None):
        heads, head_dim = self.num_heads, self.head_dim
        if self.self_attn:
            qkv = self.qkv(query).reshape([0, 0, 3, heads, head_dim]).transpose([2, 0, 3, 1, 4])
            q, k, v = paddle.unbind(qkv, axis=0)  # one stack as gradient, not three zero-filled slice gradients
        else:
            q = self.q(query).reshape([0, 0, heads, head_dim]).transpose([0, 2, 1, 3])
            kv = self.kv(memory).reshape([0, 0, 2, heads, head_dim]).transpose([2, 0, 3, 1, 4])
            k, v = paddle.unbind(kv, axis=0)
        # explicit transpose (not transpose_y): same GEMM path as upstream -> bit-identical logits
        attn = q.matmul(k.transpose([0, 1, 3, 2])) * self.scale
        if attn_mask is not None:
            attn = attn + attn_mask
        attn = _dropout(F.softmax(attn, axis=-1), self.attn_drop)
        out = attn.matmul(v).transpose([0, 2, 1, 3]).reshape([0, 0, self.embed_dim])
        return self.out_proj(out)


class FeedForward(nn.Layer):
    """fc1 -> ReLU -> dropout -> fc2 -> dropout (state-dict names ``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1 = _linear(dim, hidden)
        self.fc2 = _linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        x = _dropout(F.relu(self.fc1(x)), self.drop)
        return _dropout(self.fc2(x), self.drop)


class DecoderLayer(nn.Layer):
    """Post-norm decoder layer: self-attn -> norm1, cross-attn -> norm2, FFN -> norm3 (each with residual)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, attention_dropout: float = 0.0,
                 residual_dropout: float = 0.1, epsilon: float = 1e-5):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, attention_dropout, self_attn=True)
        self.norm1 = nn.LayerNorm(d_model, epsilon=epsilon)
        self.dropout1 = nn.Dropout(residual_dropout)
        self.cross_attn = MultiheadAttention(d_model, nhead, attention_dropout)
        self.norm2 = nn.LayerNorm(d_model, epsilon=epsilon)
        self.dropout2 = nn.Dropout(residual_dropout)
        self.mlp = FeedForward(d_model, dim_feedforward, residual_dropout)
        self.norm3 = nn.LayerNorm(d_model, epsilon=epsilon)
        self.dropout3 = nn.Dropout(residual_dropout)

    def forward(self, tgt, memory, self_mask=None):
        tgt = self.norm1(tgt + _dropout(self.self_attn(tgt, attn_mask=self_mask), self.dropout1))
        tgt = self.norm2(tgt + _dropout(self.cross_attn(tgt, memory), self.dropout2))
        return self.norm3(tgt + _dropout(self.mlp(tgt), self.dropout3))


def sinusoidal_table(max_len: int, dim: int) -> paddle.Tensor:
    """``[max_len, 1, dim]`` sin/cos table, computed with float32 Paddle ops exactly like upstream's buffer."""
    position = paddle.arange(0, max_len, dtype="float32").unsqueeze(1)
    div_term = paddle.exp(paddle.arange(0, dim, 2).astype("float32") * (-math.log(10000.0) / dim))
    angles = position * div_term  # [max_len, dim/2]
    # interleave: even columns sin, odd columns cos
    table = paddle.stack([paddle.sin(angles), paddle.cos(angles)], axis=-1).reshape([max_len, dim])
    return table.unsqueeze(1)


class PositionalEncoding(nn.Layer):
    """Adds ``pe[:L]`` to a batch-first sequence, then dropout. ``pe`` is a persistable buffer [5000, 1, dim]."""

    def __init__(self, dim: int, dropout: float = 0.1, max_len: int = 5000):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        table = sinusoidal_table(max_len, dim).astype(paddle.get_default_dtype())
        self.register_buffer("pe", table, persistable=True)

    def forward(self, x):
        x = x + self.pe[: x.shape[1]].transpose([1, 0, 2])
        return _dropout(x, self.dropout)


class TokenEmbedding(nn.Layer):
    """Token embedding scaled by sqrt(d_model); the pad index 0 embeds to zeros (Paddle ``padding_idx``)."""

    def __init__(self, vocab_size: int, d_model: int, padding_idx: int = 0):
        super().__init__()
        self.embedding = nn.Embedding(
            vocab_size, d_model, padding_idx=padding_idx,
            weight_attr=ParamAttr(initializer=Normal(0.0, d_model**-0.5)),
        )
        self.scale = math.sqrt(d_model)

    def forward(self, tokens):
        return self.embedding(tokens) * self.scale


class NRTRDecoder(nn.Layer):
    """``forward(memory [N, S, d], label_gtc [N, Lmax] int64, length [N] int64) -> logits [N, M+1, vocab]``."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 384,
        nhead: int | None = None,
        num_layers: int = 4,
        dim_feedforward: int | None = None,
        max_text_length: int = 25,
        attention_dropout: float = 0.0,
        residual_dropout: float = 0.1,
    ):
        super().__init__()
        nhead = nhead or d_model // 32
        dim_feedforward = dim_feedforward or 4 * d_model
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.max_text_length = max_text_length
        self.embedding = TokenEmbedding(vocab_size, d_model)
        self.positional_encoding = PositionalEncoding(d_model, residual_dropout)
        self.decoder = nn.LayerList(
            [
                DecoderLayer(d_model, nhead, dim_feedforward, attention_dropout, residual_dropout)
                for _ in range(num_layers)
            ]
        )
        self.tgt_word_prj = _linear(d_model, vocab_size, bias=False)

    @staticmethod
    def causal_mask(length: int, dtype="float32") -> paddle.Tensor:
        """``[1, 1, L, L]`` additive mask: 0 on and below the diagonal, -inf above."""
        return paddle.triu(paddle.full([length, length], float("-inf"), dtype=dtype), diagonal=1).unsqueeze([0, 1])

    def hidden(self, tokens, memory):
        """Decoder output before the vocabulary projection, ``[N, L, d]``, for input ``tokens`` [N, L] attending to
        ``memory`` [N, S, d]."""
        x = self.positional_encoding(self.embedding(tokens))
        mask = self.causal_mask(tokens.shape[1], x.dtype)
        for layer in self.decoder:
            x = layer(x, memory, mask)
        return x

    def decode(self, tokens, memory):
        """Decoder output logits ``[N, L, vocab]`` for input ``tokens`` [N, L] attending to ``memory`` [N, S, d]."""
        return self.tgt_word_prj(self.hidden(tokens, memory))

    def forward(self, memory, label_gtc, length):
        """Training (teacher forcing on ``label_gtc``): ``(logits [R, vocab], targets [R])`` for the R target
        positions that are not padding -- row-major over (sample, position) of ``label_gtc[:, 1:S+1]``, ``S =
        max(length) + 1``. Upstream projects every position, padding included, onto the vocabulary (18k classes for
        PP-OCRv5) and then masks those out of the loss: work nobody uses."""
        steps = int(length.max()) + 1  # <s> + the longest text; its </s> is the last target
        x = self.hidden(label_gtc[:, :steps], memory)
        targets = label_gtc[:, 1 : steps + 1].reshape([-1])
        keep = paddle.nonzero(targets != 0).squeeze(-1)
        return self.tgt_word_prj(paddle.gather(x.reshape([-1, x.shape[-1]]), keep)), paddle.gather(targets, keep)
