"""The training loop, shared by every module (rec, det): optimisation, evaluation, checkpoints, resume, tracking.

What it guarantees (each is a test):
* resume restores weights, optimizer, scheduler, global step, best metric, RNG states and the position in the
  epoch, so an interrupted-and-resumed run ends with the same weights as an uninterrupted one;
* ``best`` and ``latest`` checkpoints are written atomically; evaluation runs at least at the end of every epoch
  (or every N steps) and always at the end of training, so a best checkpoint always exists when there is val data;
* an interruption (Ctrl-C) saves ``latest`` at the exact position before exiting: no work is lost;
* tracking never blocks or stops training (see ``workbench.tracking.mlflow``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from workbench.files.atomic import write_text_atomic
from workbench.config.compose import flatten, to_plain_dict
from workbench.config.paths import cache_dir
from workbench.config.schema import TrainConfig
from workbench.engine import checkpoint as ckpt
from workbench.engine.compiled_eval import check_runtime
from workbench.engine.distributed import DistEnv, all_gather_objects, all_reduce_mean, barrier
from workbench.faults import fault_point
from workbench.engine.loader import BatchLoader, EpochSampler
from workbench.engine.schedule import build_scheduler
from workbench.errors import ConfigError
from workbench.engine.task import EvalResult, Task, WeightsReport
from workbench.reports.progress import Progress
from workbench.tracking.mlflow import RUN_DIR_TAG, Tracker

log = logging.getLogger("workbench.train")


def seed_everything(seed: int) -> None:
    import random

    import paddle

    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def cpu_threads(cfg: TrainConfig, env: DistEnv) -> int:
    """CPU math threads of this rank: ``trainer.num_threads``, else ``engine.device.default_cpu_threads``."""
    from workbench.engine.device import default_cpu_threads

    return cfg.trainer.num_threads or default_cpu_threads(env.world_size)


def set_device(cfg: TrainConfig, env: DistEnv) -> str:
    """``trainer.device`` for this process (its GPU is the launcher's local rank); ``trainer.num_threads``,
    ``trainer.keep_freed_memory`` and ``trainer.native_kernels`` on CPU."""
    from workbench.engine.device import set_device as use_device

    return use_device(cfg.trainer.device, key="trainer.device", local_rank=env.local_rank,
                      num_threads=cpu_threads(cfg, env),
                      keep_freed_memory=cfg.trainer.keep_freed_memory,
                      native_kernels=cfg.trainer.native_kernels)


def amp_plan(cfg: TrainConfig, device: str) -> dict:
    """What mixed precision will actually do on this device (CPU-testable; the GPU path uses it as is)."""
    amp = cfg.trainer.amp
    if not amp.enabled:
        return {"enabled": False}
    if device != "gpu":
        raise ConfigError("trainer.amp.enabled=true needs a GPU (Paddle's AMP is CUDA-only); turn it off on CPU")
    if amp.level not in ("O1", "O2"):
        raise ConfigError(f"trainer.amp.level={amp.level!r}: choose O1 or O2")
    if amp.dtype not in ("float16", "bfloat16"):
        raise ConfigError(f"trainer.amp.dtype={amp.dtype!r}: choose float16 or bfloat16")
    if cfg.model.recompute:  # the backward pass's second forward would run outside autocast, in another precision
        raise ConfigError("model.recompute does not combine with trainer.amp.enabled=true; turn one of them off")
    # bf16 has float32's exponent range: no loss scaling needed.
    return {"enabled": True, "level": amp.level, "dtype": amp.dtype, "use_scaler": amp.dtype == "float16"}


def inference_copy(model, weights=None):
    """A copy of ``model`` as it is deployed: eval mode, re-parameterisable layers fused (``models.rep``), with
    ``weights`` (e.g. the EMA weights) if given. Evaluation runs on it, so the training model is never touched and
    evaluation computes what the exported graph computes. Fusing PP-OCRv5_mobile_rec's rep layers makes a batch of
    32 48x320 crops 2.3x faster on CPU (6.5 s -> 2.9 s, identical outputs)."""
    import copy

    from workbench.models.rep import fuse_for_inference

    clone = copy.deepcopy(model)
    if weights is not None:
        clone.set_state_dict(weights)
    return fuse_for_inference(clone, fold_for_deployment=True)


def scaled_lr(cfg: TrainConfig, world_size: int) -> float:
    """Linear scaling rule: lr · global_batch / base_batch_size, when the recipe asks for it."""
    lr = cfg.optim.lr
    if cfg.optim.base_batch_size:
        global_batch = cfg.data.batch_size * world_size * cfg.trainer.grad_accum_steps
        lr = lr * global_batch / cfg.optim.base_batch_size
    return lr


def freeze_parameters(model, prefixes) -> int:
    """``model.freeze``: parameters under these state-dict prefixes stop training. Returns how many froze."""
    if not prefixes:
        return 0
    names = [n for n, _ in model.named_parameters()]
    unknown = [p for p in prefixes if not any(n == p or n.startswith(p + ".") for n in names)]
    if unknown:
        tops = sorted({".".join(n.split(".")[:2]) for n in names})
        raise ConfigError(f"model.freeze: {', '.join(unknown)} names no parameters of this model "
                          f"(prefixes look like: {', '.join(tops[:12])})")
    frozen = 0
    for name, param in model.named_parameters():
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            param.stop_gradient = True
            frozen += int(np.prod(param.shape))
    log.info("model.freeze: %d parameters under %s do not train", frozen, ", ".join(prefixes))
    return frozen


def build_optimizer(cfg: TrainConfig, model, scheduler):
    import paddle

    o = cfg.optim
    clip = paddle.nn.ClipGradByGlobalNorm(o.grad_clip_norm) if o.grad_clip_norm else None
    params = [p for p in model.parameters() if not p.stop_gradient]
    if o.name == "adam":
        from workbench.engine.fused_adam import FusedCPUAdam

        reg = paddle.regularizer.L2Decay(o.weight_decay) if o.weight_decay else None
        return FusedCPUAdam(
            learning_rate=scheduler, beta1=o.beta1, beta2=o.beta2, parameters=params, weight_decay=reg, grad_clip=clip
        )
    if o.name == "adamw":
        return paddle.optimizer.AdamW(
            learning_rate=scheduler,
            beta1=o.beta1,
            beta2=o.beta2,
            parameters=params,
            weight_decay=o.weight_decay,
            grad_clip=clip,
        )
    raise ConfigError(f"optim.name={o.name!r}: choose adam or adamw")


@dataclass
class FinishedTraining:
    """What an after-training hook gets: the run's best evaluation, on the main process, before the tracking run
    is closed (so the hook can log into it)."""

    run_dir: Path
    best: EvalResult
    global_step: int
    tracker: Tracker


@dataclass
class FitState:
    """What one :meth:`Trainer.fit` builds for its loop: the model (and its data-parallel wrapper), the
    optimisation, the data, the step budget, and the micro-batches whose gradients are not applied yet (an
    interruption redoes them on resume)."""

    model: Any
    train_model: Any  # ``model``, or its paddle.DataParallel wrapper
    loss_fn: Any
    loader: BatchLoader
    optimizer: Any
    scheduler: Any
    scaler: Any  # paddle.amp.GradScaler (float16 AMP) or None
    ema: Any  # ModelEMA or None
    amp: dict  # amp_plan()
    val_ds: Any  # None: no evaluation
    steps_per_epoch: int
    total_steps: int
    accum: int  # micro-batches per optimizer step
    pending_micro: int = 0


class Trainer:
    """``after_training``: callables run with a :class:`FinishedTraining` when training ends with a best
    evaluation (e.g. the baseline comparison ``workbench.api`` wires in when ``tracking.baseline_run`` is set).
    ``run_name``: the MLflow run's name when ``tracking.run_name`` gives none (the API names it from the task,
    model, data and command-line overrides)."""

    def __init__(self, cfg: TrainConfig, task: Task, run_dir: Path, env: Optional[DistEnv] = None,
                 after_training: Sequence[Callable[[FinishedTraining], None]] = (), run_name: Optional[str] = None):
        self.cfg = cfg
        self.run_name = run_name
        self.task = task
        self.run_dir = Path(run_dir)
        self.env = env or DistEnv()
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.tracker: Tracker = Tracker.disabled()
        self.state = ckpt.TrainState()
        self.weights_report = WeightsReport()
        self.step_log: list[dict] = []  # the figures of every logged step (benchmarks read them)
        self.after_training = list(after_training)
        self.best_eval: Optional[EvalResult] = None  # the evaluation that made the current best checkpoint
        self._resumed_without_checkpoint = False

    # ------------------------------------------------------------------------------------------------------
    def fit(self) -> ckpt.TrainState:
        import paddle

        cfg, env = self.cfg, self.env
        seed_everything(cfg.seed)
        device = set_device(cfg, env)
        amp = amp_plan(cfg, device)
        check_runtime(cfg.eval.runtime, device)

        resume_from = self._resolve_resume()
        model = self.task.build_model()
        if cfg.trainer.sync_bn and env.enabled:
            model = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if resume_from is None:
            self.weights_report = self.task.load_initial_weights(model)
        freeze_parameters(model, cfg.model.freeze)
        if cfg.model.recompute:
            from workbench.models.recompute import recompute_sublayers

            recompute_sublayers(model, cfg.model.recompute)
        loss_fn = self.task.build_loss()

        train_ds = self.task.train_dataset()
        val_ds = self.task.val_dataset()
        sampler = EpochSampler(
            train_ds,
            cfg.data.batch_size,
            shuffle=True,
            drop_last=True,
            seed=cfg.seed,
            rank=env.rank,
            world_size=env.world_size,
            sort_keys=self.task.batch_sort_keys(train_ds),
        )
        loader = BatchLoader(train_ds, sampler, self.task.collate_train, num_workers=cfg.data.num_workers,
                             worker_type=cfg.data.worker_type, batch_meta=self.task.batch_meta)
        batches_per_epoch = sampler.num_batches(0)
        if batches_per_epoch == 0:
            raise ConfigError(
                f"the training set yields no full batch: {len(train_ds)} samples < data.batch_size="
                f"{cfg.data.batch_size} x {env.world_size} devices; lower data.batch_size"
            )
        accum = max(cfg.trainer.grad_accum_steps, 1)
        steps_per_epoch = max(batches_per_epoch // accum, 1)
        total_steps = cfg.trainer.max_steps or cfg.trainer.epochs * steps_per_epoch
        warmup = cfg.optim.warmup_steps
        if warmup is None:
            warmup = int(round(cfg.optim.warmup_epochs * steps_per_epoch))
        scheduler = build_scheduler(
            cfg.optim.scheduler, scaled_lr(cfg, env.world_size), total_steps, min(warmup, total_steps), cfg.optim.min_lr
        )
        optimizer = build_optimizer(cfg, model, scheduler)
        scaler = None
        if amp["enabled"]:
            if amp["level"] == "O2":
                model, optimizer = paddle.amp.decorate(models=model, optimizers=optimizer, level="O2", dtype=amp["dtype"])
            if amp["use_scaler"]:
                scaler = paddle.amp.GradScaler(init_loss_scaling=2.0**15)
        ema = None
        if cfg.trainer.ema.enabled:
            from workbench.engine.ema import ModelEMA

            # frozen BatchNorms' statistics never move: not averaged
            ema = ModelEMA(model, cfg.trainer.ema.decay, buffers_move=not self.batch_norms_frozen)

        if resume_from is not None:
            self._restore(resume_from, model, optimizer, ema, scaler)
        # find_unused_parameters: some official graphs hold parameters no forward uses (server backbone
        # last_conv/fc), and the NRTR branch is skipped when a batch has no NRTR labels.
        train_model = paddle.DataParallel(model, find_unused_parameters=True) if env.enabled else model
        fit = FitState(model, train_model, loss_fn, loader, optimizer, scheduler, scaler, ema, amp, val_ds,
                       steps_per_epoch, total_steps, accum)
        self.state.world_size, self.state.batch_size, self.state.grad_accum_steps = (
            env.world_size, cfg.data.batch_size, accum)

        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self._start_tracking(resume_from, train_ds, val_ds, total_steps, steps_per_epoch)
        if resume_from is None and val_ds is not None and cfg.model.pretrained and cfg.trainer.eval_start:
            self._evaluate_starting_weights(model, val_ds)
        max_epochs = cfg.trainer.epochs if not cfg.trainer.max_steps else math.ceil(total_steps / steps_per_epoch)
        log.info(
            "training %s: %d samples, %d steps/epoch, %d steps, device %s x%d%s",
            cfg.model.name, len(train_ds), steps_per_epoch, total_steps, device, env.world_size,
            f", {cpu_threads(cfg, env)} CPU threads each" if device == "cpu" else "",
        )
        if self.batch_norms_frozen:
            log.info("BatchNorms frozen: they normalise with the starting weights' running statistics "
                     "(model.freeze_bn=false for upstream's batch statistics)")

        st = self.state
        stop = False
        try:
            # (a run resumed from its last step's checkpoint has no step left: it must not start another epoch)
            while st.epoch < max_epochs and not stop and st.global_step < total_steps:
                stop = self._train_epoch(fit)
                if stop:
                    break
                st.epoch += 1
                st.batch_in_epoch = 0
                due = cfg.trainer.eval_every_epochs and st.epoch % cfg.trainer.eval_every_epochs == 0
                if val_ds is not None and due:
                    stop = self._evaluate_and_checkpoint(fit)
                else:
                    self._save("latest", fit)
            # Always finish with an evaluation of the final weights unless one just happened.
            if val_ds is not None and st.last_metrics.get("_step") != st.global_step:
                self._evaluate_and_checkpoint(fit)
            st.finished = True
            self._save("latest", fit)
        except KeyboardInterrupt:
            # Gradients of an unfinished accumulation are lost with the process: resume before those batches.
            st.batch_in_epoch -= fit.pending_micro
            log.warning("interrupted: saving 'latest' at step %d (resume with trainer.resume=%s)", st.global_step, self.run_dir)
            self._save("latest", fit)
            self.tracker.set_tags({"wb.interrupted": "true"})
            self.tracker.finish("KILLED")
            loader.close()
            raise
        except Exception:
            self.tracker.finish("FAILED")
            loader.close()
            raise
        loader.close()
        self._finish_tracking()
        return st

    # ------------------------------------------------------------------------------------------------------
    @property
    def batch_norms_frozen(self) -> bool:
        m = self.cfg.model
        return bool(m.pretrained) if m.freeze_bn is None else bool(m.freeze_bn)

    def _train_mode(self, model) -> None:
        """``model.train()``; with frozen BatchNorms (``model.freeze_bn``, see ``ModelConfig``) every BatchNorm stays
        in eval mode: it normalises with its running statistics and does not update them (scale and shift train)."""
        model.train()
        if self.batch_norms_frozen:
            import paddle.nn as nn

            for layer in model.sublayers():
                if isinstance(layer, (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.SyncBatchNorm)):
                    layer.eval()

    def _train_epoch(self, fit: FitState) -> bool:
        """Run (the rest of) one epoch. Returns True when training should stop (max_steps / early stop)."""
        import paddle

        cfg, st, env = self.cfg, self.state, self.env
        train_model, model, optimizer, scaler, amp = fit.train_model, fit.model, fit.optimizer, fit.scaler, fit.amp
        steps_per_epoch, total_steps, accum = fit.steps_per_epoch, fit.total_steps, fit.accum
        self._train_mode(train_model)
        bar = None
        if env.is_main and cfg.trainer.progress_bar:
            from tqdm import tqdm

            bar = tqdm(
                total=steps_per_epoch * accum, initial=st.batch_in_epoch, desc=f"epoch {st.epoch + 1}",
                dynamic_ncols=True, leave=False,
            )
        window_t0, window_samples = time.perf_counter(), 0
        micro, step_samples = 0, 0
        sums: dict[str, float] = {}
        # Only whole optimizer steps per epoch: a partial gradient accumulation would leak into the next epoch.
        batches_this_epoch = steps_per_epoch * accum
        fit.pending_micro = 0
        for batch in fit.loader.iter_epoch(st.epoch, start_batch=st.batch_in_epoch):
            if st.batch_in_epoch >= batches_this_epoch:
                break
            if batch is None:  # every sample of this batch was skipped by the data policy
                st.batch_in_epoch += 1
                continue
            # Gradients are all-reduced only on the micro-batch that completes an accumulation.
            sync = not env.enabled or (micro + 1) % accum == 0
            with contextlib.nullcontext() if sync else train_model.no_sync():
                with paddle.amp.auto_cast(
                    enable=amp["enabled"], level=amp.get("level", "O1"), dtype=amp.get("dtype", "float16")
                ):
                    losses, n = self.task.training_step(train_model, fit.loss_fn, batch)
                loss = losses["loss"] / accum
                if scaler is not None:
                    scaler.scale(loss).backward()
                else:
                    loss.backward()
            fault_point("train_step")
            # Counted only once its gradients exist: an interrupted batch is redone on resume.
            st.batch_in_epoch += 1
            micro += 1
            fit.pending_micro += 1
            window_samples += n
            step_samples += n
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            if micro % accum:
                continue
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.clear_grad()
            fit.pending_micro = 0
            fit.scheduler.step()
            if fit.ema is not None:
                fit.ema.update(model)
            st.global_step += 1
            st.samples_seen += step_samples * env.world_size
            step_samples = 0
            if bar is not None:
                bar.update(accum)
            if st.global_step % cfg.trainer.log_every_steps == 0 or st.global_step == 1:
                dt = time.perf_counter() - window_t0
                avg = {k: v / micro for k, v in sums.items()}
                avg = all_reduce_mean(env, avg)
                sps = window_samples * env.world_size / max(dt, 1e-9)
                metrics = {f"train/{k}": v for k, v in avg.items()}
                metrics["train/lr"] = optimizer.get_lr()
                metrics["train/samples_per_sec"] = sps
                row = {"step": st.global_step, "time": time.time(), **metrics}
                self.step_log.append(row)
                if env.is_main:
                    self.tracker.log_metrics(metrics, step=st.global_step)
                    with open(self.run_dir / "train_log.jsonl", "a") as f:  # the same figures, without MLflow
                        f.write(json.dumps(row) + "\n")
                    if bar is not None:
                        bar.set_postfix(loss=f"{avg['loss']:.4f}", lr=f"{optimizer.get_lr():.2e}", sps=f"{sps:.1f}")
                    else:  # no bar (CI, log files): the same figures as a log line
                        log.info("step %d/%d epoch %d: %s lr=%.2e samples/s=%.1f", st.global_step, total_steps,
                                 st.epoch + 1, " ".join(f"{k}={v:.4f}" for k, v in sorted(avg.items())),
                                 optimizer.get_lr(), sps)
                window_t0, window_samples, micro, sums = time.perf_counter(), 0, 0, {}
            due = cfg.trainer.eval_every_steps and st.global_step % cfg.trainer.eval_every_steps == 0
            if due and fit.val_ds is not None:
                if self._evaluate_and_checkpoint(fit):
                    return True
                self._train_mode(train_model)
            if st.global_step >= total_steps:
                if bar is not None:
                    bar.close()
                return True
        if bar is not None:
            bar.close()
        return False

    # ------------------------------------------------------------------------------------------------------
    def evaluate(self, model, val_ds, weights=None) -> EvalResult:
        """Predict on this rank's shard, gather the records, score once (identical to single-device)."""
        import paddle

        cfg, env = self.cfg, self.env
        sampler = EpochSampler(
            val_ds, cfg.data.eval_batch_size, shuffle=False, drop_last=False, seed=cfg.seed,
            rank=env.rank, world_size=env.world_size, pad=False, sort_keys=self.task.batch_sort_keys(val_ds),
        )
        loader = BatchLoader(val_ds, sampler, self.task.collate_eval, num_workers=0)
        eval_model = self._eval_runner(inference_copy(model, weights))
        records: list[dict] = []
        shown = env.is_main and cfg.trainer.progress_bar
        try:
            with paddle.no_grad(), Progress(len(sampler.plan(0).batches), "evaluate", "batch", log,
                                            enabled=shown) as bar:
                for batch in loader.iter_epoch(0):
                    if batch is not None:
                        records.extend(self.task.predict(eval_model, batch))
                    fault_point("eval_batch")
                    bar.update()
        finally:  # a compiled graph's temporary folder goes, whatever stopped the evaluation
            if hasattr(eval_model, "close"):
                eval_model.close()
            del eval_model
        if env.enabled:
            shards = all_gather_objects(env, records)
            records = [r for shard in shards for r in shard]
        records.sort(key=lambda r: r["index"])  # batches may be grouped by input width
        return self.task.score(records)

    def _eval_runner(self, eval_model):
        """``eval.runtime`` (see ``engine.compiled_eval``): the eager copy, or its graph in Paddle Inference."""
        import paddle

        from workbench.engine.compiled_eval import eval_runner

        device = "cpu" if paddle.device.get_device().startswith("cpu") else "gpu"
        # evaluation loads in this process (no loader workers): it may use this rank's share of the cores
        threads = cpu_threads(self.cfg, self.env)
        return eval_runner(eval_model, runtime=self.cfg.eval.runtime, input_spec=self.task.eval_input_spec,
                           device=device, threads=threads)

    def _evaluate_and_checkpoint(self, fit: FitState) -> bool:
        """Evaluate, save latest (+ best when improved), log; returns True when early stopping fires."""
        cfg, st = self.cfg, self.state
        result = self.evaluate(fit.model, fit.val_ds, weights=fit.ema.weights() if fit.ema is not None else None)
        name = cfg.eval.select_metric
        if name not in result.metrics:
            raise ConfigError(f"eval.select_metric={name!r} is not computed; available: {sorted(result.metrics)}")
        value = result.metrics[name]
        better = st.best_metric is None or (
            value > st.best_metric + cfg.trainer.early_stopping.min_delta
            if cfg.eval.select_mode == "max"
            else value < st.best_metric - cfg.trainer.early_stopping.min_delta
        )
        if better:
            st.best_metric, st.best_step, st.evals_without_improvement = value, st.global_step, 0
        else:
            st.evals_without_improvement += 1
        # the epoch the step belongs to: one that max_steps ended (even on its last batch) is not yet in st.epoch
        epoch = st.epoch + (1 if st.batch_in_epoch else 0)
        st.last_metrics = {**result.metrics, "_step": st.global_step, "_epoch": epoch}
        self._save("latest", fit, eval_result=result)
        if better and self.env.is_main:
            ckpt.copy_checkpoint(self.ckpt_dir / "latest", self.ckpt_dir / "best")
        if self.env.is_main:
            self.tracker.log_metrics({f"eval/{k}": v for k, v in result.metrics.items()}, step=st.global_step)
            self.tracker.log_metrics({f"best/{name}": st.best_metric}, step=st.global_step)
            log.info(
                "eval @ step %d (epoch %d): %s | best %s=%.4f @ %s",
                st.global_step, epoch,
                ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.metrics.items())),
                name, st.best_metric, st.best_step,
            )
            if better:
                self.best_eval = result
        patience = cfg.trainer.early_stopping.patience
        if patience is not None and st.evals_without_improvement >= patience:
            log.info("early stopping: %s did not improve for %d evaluations", name, patience)
            self.tracker.set_tags({"wb.early_stopped": "true"})
            return True
        return False

    # ------------------------------------------------------------------------------------------------------
    def _save(self, name: str, fit: FitState, eval_result: Optional[EvalResult] = None) -> None:
        st = self.state
        model, ema, scaler = fit.model, fit.ema, fit.scaler
        if not self.env.is_main:
            barrier(self.env)
            return
        st.rng = ckpt.capture_rng()
        meta = {
            **self.task.checkpoint_meta(),
            "trained_steps": st.global_step,
            "weights": asdict(self.weights_report),
            "weights_complete": self.weights_report.complete,
            "run_dir": str(self.run_dir.resolve()),
            "mlflow_run_id": self.tracker.run_id,
            "select_metric": self.cfg.eval.select_metric,
            "metric_value": st.last_metrics.get(self.cfg.eval.select_metric),
            "start_metric": st.start_metrics.get(self.cfg.eval.select_metric),
            "select_mode": self.cfg.eval.select_mode,
        }
        opt_state = ckpt.optimizer_state(fit.optimizer, model)
        if scaler is not None:
            opt_state = {**opt_state, "__grad_scaler__": scaler.state_dict()}
        from omegaconf import OmegaConf

        ckpt.save_checkpoint(
            self.ckpt_dir / name,
            model_state=model.state_dict(),
            train_state=st,
            meta=meta,
            optimizer_state=opt_state,
            ema_state=ema.state_dict() if ema is not None else None,
            config_yaml=OmegaConf.to_yaml(to_plain_dict(self.cfg)),
            dictionary_lines=self.task.dictionary_lines(),
            eval_result=eval_result,
        )
        barrier(self.env)

    def _resolve_resume(self) -> Optional[ckpt.Checkpoint]:
        ref = self.cfg.trainer.resume
        self._resumed_without_checkpoint = False
        if not ref:
            return None
        from workbench.engine.runs import resolve_checkpoint
        from workbench.errors import WorkbenchError

        try:
            path = resolve_checkpoint(ref, prefer="latest", tracking_uri=self.cfg.tracking.tracking_uri)
        except WorkbenchError:
            if not self._started_here(Path(ref)):
                raise
            # Killed before its first checkpoint: start again from the beginning, but as the same run (its run dir,
            # train_log and MLflow run continue; steps already logged are not logged twice).
            log.warning("%s has no checkpoint yet (stopped before its first save): training starts again from the "
                        "beginning in the same run", ref)
            self._resumed_without_checkpoint = True
            self._forget_steps_after(0)
            return None
        return ckpt.load_resumable(path)

    def _started_here(self, ref: Path) -> bool:
        """``ref`` is this run's own directory and a training started there (a log, a journal or checkpoints)."""
        return ref.is_dir() and ref.resolve() == self.run_dir.resolve() and any(
            (ref / name).exists() for name in ("train_log.jsonl", "tracking_journal.jsonl", "checkpoints"))

    def _restore(self, c: ckpt.Checkpoint, model, optimizer, ema, scaler) -> None:
        from workbench.files.safe_load import load, load_state_dict

        model.set_state_dict(load_state_dict(c.model_file))
        if c.optimizer_file is not None:
            opt_state = load(c.optimizer_file)
            scaler_state = opt_state.pop("__grad_scaler__", None)
            ckpt.load_optimizer_state(optimizer, model, opt_state)
            if scaler is not None and scaler_state is not None:
                scaler.load_state_dict(scaler_state)
        if ema is not None and c.ema_file is not None:
            ema.set_state_dict(load(c.ema_file))
        self.state = c.state
        self.state.finished = False
        self._convert_position(optimizer)
        w = c.meta.get("weights") or {}
        self.weights_report = WeightsReport(**w) if w else WeightsReport()
        ckpt.restore_rng(c.state.rng)
        self._forget_steps_after(c.state.global_step)
        log.info("resumed from %s at step %d (epoch %d, batch %d)", c.path, c.state.global_step, c.state.epoch,
                 c.state.batch_in_epoch)

    def _forget_steps_after(self, step: int) -> None:
        """The steps after the checkpoint are trained again: drop their rows from ``train_log.jsonl`` so that the
        resumed run's log equals an uninterrupted run's (rows of a killed process's last steps would repeat)."""
        f = self.run_dir / "train_log.jsonl"
        if not (self.env.is_main and f.is_file()):
            return
        kept = []
        for line in f.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except ValueError:  # the last line of a killed write
                continue
        write_text_atomic(f, "".join(row + "\n" for row in kept))

    def _convert_position(self, optimizer) -> None:
        """Resume on another device count / batch size: keep the position in the data (samples consumed in the
        epoch) and the learning-rate schedule's progress (samples seen); the step counter follows the new
        global batch. Not bit-exact (the batches differ), but nothing is seen twice or skipped."""
        st, env = self.state, self.env
        accum = max(self.cfg.trainer.grad_accum_steps, 1)
        old = (st.world_size, st.batch_size, st.grad_accum_steps)
        new = (env.world_size, self.cfg.data.batch_size, accum)
        if not st.batch_size or old == new:
            return
        consumed_in_epoch = st.batch_in_epoch * st.batch_size * st.world_size
        st.batch_in_epoch = consumed_in_epoch // (new[1] * new[0])
        st.batch_in_epoch -= st.batch_in_epoch % accum  # a whole number of optimizer steps
        global_batch = new[0] * new[1] * accum
        st.global_step = st.samples_seen // global_batch
        sched = optimizer._learning_rate
        sched.last_epoch = st.global_step
        sched.last_lr = sched.get_lr()
        log.warning("resuming with %d device(s) x batch %d x accum %d (checkpoint: %d x %d x %d): continuing at "
                    "sample %d of epoch %d, step %d", *new, *old, st.batch_in_epoch * new[0] * new[1], st.epoch,
                    st.global_step)

    # ------------------------------------------------------------------------------------------------------
    def _start_tracking(self, resume_from, train_ds, val_ds, total_steps, steps_per_epoch) -> None:
        cfg, env = self.cfg, self.env
        if not (cfg.tracking.enabled and env.is_main):
            return
        run_id = resume_from.meta.get("mlflow_run_id") if resume_from is not None else None
        tags = {
            RUN_DIR_TAG: str(self.run_dir.resolve()),
            "wb.task": self.task.name,
            "wb.model": cfg.model.name,
            **_git_tags(),
            **{str(k): str(v) for k, v in cfg.tracking.tags.items()},
        }
        parent = os.environ.get("WB_PARENT_RUN_ID")
        # The run dir holds the tracking journal (what is logged is kept there until MLflow has it) and
        # mlflow_run.json (lets sweeps and tools find the run from its directory).
        self.tracker = Tracker(
            cfg.tracking.tracking_uri, cfg.tracking.experiment, run_name=cfg.tracking.run_name or self.run_name,
            run_id=run_id, parent_run_id=parent, tags=tags, backlog_dir=self.run_dir,
            resume=resume_from is not None or self._resumed_without_checkpoint,
            system_metrics=cfg.tracking.system_metrics,
        )
        if resume_from is None and not self._resumed_without_checkpoint:  # (a restart logged them already)
            params = flatten(to_plain_dict(cfg))
            params.update({"derived.total_steps": total_steps, "derived.steps_per_epoch": steps_per_epoch,
                           "derived.world_size": env.world_size, "derived.lr": scaled_lr(cfg, env.world_size)})
            summary = self.task.data_summary()
            params.update({f"data_summary.{k}": v for k, v in flatten(summary).items()})
            self.tracker.log_params(params)
            self.tracker.set_tags({f"wb.data.{k}": v for k, v in summary.get("fingerprints", {}).items()})
            self.tracker.log_dict(to_plain_dict(cfg), "config/config.json")
            self.tracker.log_dict(summary, "data/summary.json")
            self.tracker.log_dict(asdict(self.weights_report), "weights/initial_weights.json")
            self.tracker.log_inputs([d.to_dict() for d in self.task.datasets()])
            if cfg.tracking.baseline_run and self.tracker.enabled:
                from workbench.tracking.conventions import baseline_tags

                self.tracker.set_tags(baseline_tags(cfg.tracking.baseline_run, self.tracker.uri,
                                                    cfg.tracking.experiment))
        else:
            self.tracker.set_tags({"wb.resumed_at_step": self.state.global_step})

    def _finish_tracking(self) -> None:
        """Report of the best evaluation, the after-training hooks, checkpoints: into the run dir + MLflow."""
        if not self.env.is_main:
            return
        st = self.state
        best = self.ckpt_dir / "best"
        result = self.best_eval
        if result is None and ckpt.is_checkpoint_dir(best):
            # A resumed run found its best before the interruption: the evaluation saved with that checkpoint
            # gives the same metrics.json and report an uninterrupted run writes.
            result = ckpt.read_checkpoint(best).load_eval_result()
        info = {"model": self.cfg.model.name, "run_dir": str(self.run_dir), "best_step": st.best_step,
                "mlflow_run": self.tracker.run_id}
        if result is not None:
            write_text_atomic(self.run_dir / "metrics.json", json.dumps(result.metrics, indent=1))
            self.tracker.log_artifact(self.run_dir / "metrics.json")
            if self.cfg.eval.report:
                for f in self.task.write_report(result, self.run_dir / "report", info=info):
                    self.tracker.log_artifact(f, "report")
            finished = FinishedTraining(self.run_dir, result, st.global_step, self.tracker)
            for hook in self.after_training:
                hook(finished)
        if self.cfg.tracking.log_checkpoints:
            if best.is_dir():
                self.tracker.log_artifact(best.resolve(), "checkpoints/best")
            self.tracker.log_artifact((self.ckpt_dir / "latest").resolve(), "checkpoints/latest")
        self._report_start_vs_tuned()
        self.tracker.log_metrics({"final/global_step": st.global_step}, step=st.global_step)
        self.tracker.finish("FINISHED")

    # ------------------------------------------------------------------------------------------------------
    def _evaluate_starting_weights(self, model, val_ds) -> None:
        """Fine-tuning begins by scoring the starting weights on the val set, so the run can end with "stock X ->
        tuned Y" and a regression is never silent. The result is cached under the weights cache (key: the weights'
        values, the val set's fingerprint, the evaluation settings), so a sweep or a rerun pays for it once.
        Computed or cached, it leaves the random streams as it found them: a computed evaluation draws from them (its
        inference copy of the model is built, and initialised, first), so a rerun that found the result cached
        trained on other dropout masks from step 1 (measured: step-1 loss 11.94 vs 12.56, same seed and data)."""
        rng = ckpt.capture_rng()
        try:
            self._score_starting_weights(model, val_ds)
        finally:
            ckpt.restore_rng(rng)

    def _score_starting_weights(self, model, val_ds) -> None:
        cfg, st = self.cfg, self.state
        key = _start_eval_key(model, val_ds, self.task.checkpoint_meta(), to_plain_dict(cfg.eval))
        cache = cache_dir() / "start_evals" / f"{key}.json"
        if cache.is_file():
            st.start_metrics = json.loads(cache.read_text())
            log.info("starting weights on val (cached %s): %s", cache.name, _fmt_metric(cfg, st.start_metrics))
        else:
            t0 = time.perf_counter()
            st.start_metrics = dict(self.evaluate(model, val_ds).metrics)
            log.info("starting weights on val (%.0f s): %s", time.perf_counter() - t0,
                     _fmt_metric(cfg, st.start_metrics))
            if self.env.is_main:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(".tmp")
                tmp.write_text(json.dumps(st.start_metrics))
                os.replace(tmp, cache)
        if self.env.is_main:
            self.tracker.log_metrics({f"start/{k}": v for k, v in st.start_metrics.items()}, step=0)

    def start_vs_tuned(self) -> Optional[dict]:
        """``{"metric", "start", "tuned", "delta", "regression"}`` when the run started from evaluated weights."""
        st, name = self.state, self.cfg.eval.select_metric
        if name not in st.start_metrics or st.best_metric is None:
            return None
        start, tuned = st.start_metrics[name], st.best_metric
        worse = tuned < start if self.cfg.eval.select_mode == "max" else tuned > start
        return {"metric": name, "start": start, "tuned": tuned, "delta": tuned - start, "regression": worse}

    def _report_start_vs_tuned(self) -> None:
        result = self.start_vs_tuned()
        if result is None:
            return
        line = (f"{self.cfg.model.name} on val: start {result['metric']} {result['start']:.4f} -> tuned "
                f"{result['tuned']:.4f} ({result['delta']:+.4f}, best at step {self.state.best_step})")
        self.tracker.set_tags({"wb.start_metric": f"{result['start']:.6g}", "wb.tuned_metric": f"{result['tuned']:.6g}",
                               "wb.regression": str(result["regression"]).lower()})
        (self.run_dir / "start_vs_tuned.json").write_text(json.dumps(result, indent=1))
        if result["regression"]:
            log.warning("REGRESSION: %s. The fine-tuned model is worse than its starting weights; wb export refuses "
                        "it unless allow_regression=true.", line)
        else:
            log.info("%s", line)


def _fmt_metric(cfg: TrainConfig, metrics: dict) -> str:
    name = cfg.eval.select_metric
    return f"{name}={metrics[name]:.4f}" if name in metrics else ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())


def _start_eval_key(model, val_ds, model_meta: dict, eval_cfg: dict) -> str:
    """What decides the starting weights' evaluation: their values, the val samples, the model's input/decoding
    settings and the evaluation settings."""
    import hashlib

    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(np.ascontiguousarray(v.numpy()).tobytes())
    fingerprint = val_ds.fingerprint() if hasattr(val_ds, "fingerprint") else str(len(val_ds))
    h.update(json.dumps([fingerprint, model_meta, eval_cfg], sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def _git_tags() -> dict:
    """The workbench's own git commit (which code trained this model)."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
    except Exception:
        return {}
    if not commit:
        return {}
    return {"mlflow.source.git.commit": commit, "wb.git_dirty": str(bool(dirty)).lower()}
