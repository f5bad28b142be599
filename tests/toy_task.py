"""A tiny regression Task for testing the generic trainer without OCR models."""

from __future__ import annotations

import numpy as np
import paddle

from workbench.engine.task import EvalResult, Task, WeightsReport


class ToyDataset:
    def __init__(self, n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(n, 4)).astype("float32")
        self.w = np.array([1.0, -2.0, 0.5, 3.0], dtype="float32")
        self.y = self.x @ self.w

    def __len__(self):
        return len(self.x)

    def load(self, index, rng, epoch):
        noise = rng.normal(scale=0.01, size=4).astype("float32")  # "augmentation"
        return {"x": self.x[index] + noise, "y": np.float32(self.y[index]), "index": index}


class ToyModel(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.fc1 = paddle.nn.Linear(4, 16)
        self.drop = paddle.nn.Dropout(0.1)  # makes RNG state matter for exact resume
        self.fc2 = paddle.nn.Linear(16, 1)

    def forward(self, x):
        return self.fc2(self.drop(paddle.nn.functional.relu(self.fc1(x))))[:, 0]


class ToyTask(Task):
    name = "toy"

    def __init__(self, cfg, n_train=64, n_val=16, interrupt_at_step=None):
        super().__init__(cfg)
        self.n_train, self.n_val = n_train, n_val
        self.interrupt_at_step = interrupt_at_step
        self.calls = 0

    def build_model(self):
        return ToyModel()

    def load_initial_weights(self, model):
        return WeightsReport()

    def train_dataset(self):
        return ToyDataset(self.n_train, 0)

    def val_dataset(self):
        return ToyDataset(self.n_val, 1) if self.n_val else None

    def collate_train(self, samples):
        return {
            "x": np.stack([s["x"] for s in samples]),
            "y": np.array([s["y"] for s in samples]),
            "index": [s["index"] for s in samples],
        }

    collate_eval = collate_train

    def build_loss(self):
        return lambda pred, y: ((pred - y) ** 2).mean()

    def training_step(self, model, loss_fn, batch):
        self.calls += 1
        if self.interrupt_at_step is not None and self.calls == self.interrupt_at_step:
            raise KeyboardInterrupt
        pred = model(paddle.to_tensor(batch["x"]))
        loss = loss_fn(pred, paddle.to_tensor(batch["y"]))
        return {"loss": loss}, len(batch["x"])

    def predict(self, model, batch):
        pred = model(paddle.to_tensor(batch["x"])).numpy()
        return [{"index": i, "err": float((p - y) ** 2)} for i, p, y in zip(batch["index"], pred, batch["y"])]

    def score(self, records):
        mse = float(np.mean([r["err"] for r in records]))
        return EvalResult({"mse": mse, "neg_mse": -mse}, records)
