"""Image classifiers: the orientation modules of the OCR pipeline (text-line and document orientation).

Contract (``docs/architecture.md``): ``forward(x [N, 3, H, W] float32)`` → eval: class probabilities ``[N, C]``
(softmax, what PaddleX's ``Topk`` post-process reads); train: logits ``[N, C]``. ``num_classes`` is fixed by the
model (2 for text lines: 0° / 180°; 4 for documents: 0° / 90° / 180° / 270°).
"""
