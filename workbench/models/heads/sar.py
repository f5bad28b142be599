"""SAR (Show, Attend and Read, https://arxiv.org/abs/1811.00751): the training-only second branch of the PP-OCRv3
recognisers' MultiHead (PP-OCRv4+ use NRTR there). Like NRTR it never runs in eval / export; it gives the backbone a
gradient (the CTC branch detaches its input) and is trained with teacher forcing.

* :class:`SAREncoder`: max-pool the feature map over its height -> 2-layer LSTM over the width -> the hidden state at
  the last *valid* step (``ceil(valid_ratio * T)``) -> a linear layer: the holistic feature ``[N, 512]``.
* :class:`ParallelSARDecoder` (training): the input sequence is ``[holistic, embed(<s>), embed(c1), ...]``; a 2-layer
  LSTM runs over it; each step attends over the 2-D feature map (``tanh(conv3x3(feat) + W q)`` scored by a linear
  layer, padding columns past ``valid_ratio`` masked) and predicts from ``[h, glimpse, holistic]``; outputs
  ``[N, L, classes - 1]`` (no padding class), dropout 0.1 in training.

Classes (``num_classes`` = CTC classes + 2): the dictionary (+ space), ``<UKN>``, ``<BOS/EOS>``, ``<PAD>``
(``data.charset.Charset.encode_sar``). Facts from PaddleOCR's ``ppocr/modeling/heads/rec_sar_head.py``
(``SARHead`` with ``enc_dim=512``, unidirectional LSTMs, ``d_k=512``, ``pred_concat=True``); the state-dict layout
(with Paddle's LSTM parameter aliases) equals ``../shared/fixtures/manifests/{,en_}PP-OCRv3_mobile_rec.json``.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["ParallelSARDecoder", "SAREncoder", "SARHead"]


def _valid_steps(valid_ratio, steps: int) -> paddle.Tensor:
    """Index of the last valid step per sample: ``min(T, ceil(ratio * T)) - 1``."""
    ratio = valid_ratio.astype("float32").reshape([-1])
    return paddle.clip(paddle.ceil(ratio * steps), 1, steps).astype("int64") - 1


class SAREncoder(nn.Layer):
    def __init__(self, d_model: int = 512, d_enc: int = 512, dropout: float = 0.1, mask: bool = True):
        super().__init__()
        self.mask = mask
        self.rnn_encoder = nn.LSTM(d_model, d_enc, num_layers=2, time_major=False, dropout=dropout)
        self.linear = nn.Linear(d_enc, d_enc)

    def forward(self, feat, valid_ratio=None):
        column = F.max_pool2d(feat, kernel_size=(feat.shape[2], 1), stride=1).squeeze(2).transpose([0, 2, 1])
        hidden = self.rnn_encoder(column)[0]  # [N, T, C]
        if valid_ratio is not None and self.mask:
            index = _valid_steps(valid_ratio, hidden.shape[1])
            last = paddle.take_along_axis(hidden, index.reshape([-1, 1, 1]).expand([-1, 1, hidden.shape[2]]), axis=1)
            last = last.squeeze(1)
        else:
            last = hidden[:, -1, :]
        return self.linear(last)


class ParallelSARDecoder(nn.Layer):
    def __init__(self, num_classes: int, d_model: int = 512, d_enc: int = 512, d_k: int = 512,
                 pred_dropout: float = 0.1, max_text_length: int = 25, mask: bool = True):
        super().__init__()
        self.num_classes = num_classes
        self.padding_idx = num_classes - 1
        self.max_seq_len = max_text_length
        self.mask = mask
        self.conv1x1_1 = nn.Linear(d_enc, d_k)
        self.conv3x3_1 = nn.Conv2D(d_model, d_k, kernel_size=3, stride=1, padding=1)
        self.conv1x1_2 = nn.Linear(d_k, 1)
        self.rnn_decoder = nn.LSTM(d_enc, d_enc, num_layers=2, time_major=False, dropout=0.0)
        self.embedding = nn.Embedding(num_classes, d_enc, padding_idx=self.padding_idx)
        self.pred_dropout = nn.Dropout(pred_dropout)
        self.prediction = nn.Linear(d_enc + d_model + d_enc, num_classes - 1)

    def attend(self, decoder_input, feat, holistic, valid_ratio=None):
        """``[N, T, C]`` decoder inputs -> ``[N, T, classes - 1]`` logits (2-D attention over ``feat``)."""
        y = self.rnn_decoder(decoder_input)[0]  # [N, T, C]
        query = self.conv1x1_1(y).unsqueeze([3, 4])  # [N, T, d_k, 1, 1]
        key = self.conv3x3_1(feat).unsqueeze(1)  # [N, 1, d_k, H, W]
        score = self.conv1x1_2(paddle.tanh(key + query).transpose([0, 1, 3, 4, 2])).squeeze(-1)  # [N, T, H, W]
        n, t, h, w = score.shape
        if valid_ratio is not None and self.mask:
            width = _valid_steps(valid_ratio, w) + 1  # valid columns per sample
            columns = paddle.arange(w, dtype="int64").reshape([1, 1, 1, w])
            score = paddle.where(columns < width.reshape([-1, 1, 1, 1]), score, paddle.full_like(score, float("-inf")))
        weights = F.softmax(score.reshape([n, t, h * w]), axis=-1).reshape([n, t, 1, h, w])
        glimpse = (feat.unsqueeze(1) * weights).sum(axis=[3, 4])  # [N, T, C]
        logits = self.prediction(paddle.concat([y, glimpse, holistic.unsqueeze(1).expand([n, t, holistic.shape[-1]])],
                                               axis=2))
        return self.pred_dropout(logits) if self.training else logits

    def forward(self, feat, holistic, label_sar, valid_ratio=None):
        """Teacher forcing on ``label_sar`` ``[N, L]`` (``<BOS> c1 .. <EOS> <PAD>..``): logits ``[N, L, classes-1]``
        where step ``i`` predicts ``label_sar[:, i + 1]``."""
        embedded = self.embedding(label_sar)
        decoder_input = paddle.concat([holistic.unsqueeze(1).astype(embedded.dtype), embedded], axis=1)
        return self.attend(decoder_input, feat, holistic, valid_ratio)[:, 1:, :]


class SARHead(nn.Layer):
    """``forward(feat [N, C, H, W], label_sar [N, L], valid_ratio [N])`` -> training logits (see the module doc)."""

    def __init__(self, in_channels: int, num_classes: int, enc_dim: int = 512, max_text_length: int = 25,
                 enc_dropout: float = 0.1, d_k: int = 512, pred_dropout: float = 0.1):
        super().__init__()
        self.encoder = SAREncoder(in_channels, enc_dim, enc_dropout)
        self.decoder = ParallelSARDecoder(num_classes, in_channels, enc_dim, d_k, pred_dropout, max_text_length)

    def forward(self, feat, label_sar, valid_ratio=None):
        holistic = self.encoder(feat, valid_ratio)
        return self.decoder(feat, holistic, label_sar, valid_ratio)
