"""The typed configuration: one dataclass per concern, mirroring the config groups under ``recipes/``.

The composed Hydra config is merged into these dataclasses once, at the edge (``workbench.config.compose``), so a
typo on the command line (``optim.lrr=1``) is an error naming the key, and the rest of the code reads attributes,
never raw dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class ModelConfig:
    """``recipes/model/*.yaml``: which architecture, which starting weights."""

    name: str = "???"  # official name in workbench.models.zoo (e.g. PP-OCRv5_mobile_rec) or a test config
    # Starting weights: a local .pdparams / checkpoint dir / official model name (fetched into the cache) / null.
    pretrained: Optional[str] = None
    # Rec only: dictionary file. null = the zoo's dictionary for `name` (fetched and checked by sha256).
    character_dict: Optional[str] = None
    use_space_char: bool = True
    # Longest label (characters) the model trains on; longer labels are data findings (label_too_long).
    # null = the longest label of the training data (at least 25): CTC reads any length the input width allows, so receipt lines
    # of 40+ characters are learned instead of dropped (upstream's 25 skips 1 in 8 SROIE lines).
    max_text_length: Optional[int] = 25
    # Re-initialise dictionary-sized head tensors when the pretrained head does not fit the dictionary.
    # Off by default: a mismatch is an error, because a silently re-initialised head is upstream's "acc stuck at 0".
    reinit_head_on_dict_change: bool = False
    # Rec only: what an *untrained* NRTR branch may do to the backbone. Upstream's CTC branch detaches its input
    # (use_guide), so only NRTR's gradient trains the backbone; starting weights without a trained NRTR branch
    # (ONNX / inference-model imports) would then have pretrained features reshaped by a random decoder.
    #   auto:    protect when the starting weights carry no trained NRTR branch (their import record says so)
    #   protect: always -- the CTC loss trains the backbone, NRTR learns on detached features
    #   skip:    the CTC loss trains the backbone and NRTR is not computed at all (it is never exported, and a
    #            detached NRTR cannot help the CTC branch)
    #   upstream: upstream's wiring, whatever the weights
    # auto = skip for such weights, upstream otherwise.
    untrained_nrtr: str = "auto"
    # BatchNorms normalise with their running statistics during training and do not update them (scale and shift
    # still train): batch statistics of a few augmented crops are noisy and unlike the pretrained model's.
    # null = on when starting from model.pretrained (fine-tuning), off from scratch; false = upstream's behaviour.
    # Measured (benchmarks/finetune_from_stock.py): det 60 steps x 4, hmean 0.400 -> 0.225 with free BatchNorms,
    # 0.398 frozen; rec 120 steps x 16, acc 0.681 -> 0.643 free, 0.673 frozen.
    freeze_bn: Optional[bool] = None
    # Parameters that do not train: state-dict prefixes (e.g. [backbone.conv1, backbone.blocks2]). Early stages of a
    # pretrained backbone hold generic strokes and edges; freezing them also skips their backward pass.
    freeze: list = field(default_factory=list)
    # Sublayers (names, `*` patterns spanning dots, e.g. backbone.blocks2.*) that keep only their input for the
    # backward pass and run their forward again there (workbench/models/recompute.py). PP-OCRv5_mobile_det, batch
    # 4, 640^2, [backbone.blocks*.*, neck.ins_conv.*, neck.inp_conv.*]: peak RSS 2.50-2.70 -> 1.94-2.02 GB for
    # 1.28-1.30 -> 1.03-1.04 samples/s, 0.8x (README "How fast"). A layer's named part counts too: head.*.tail (the DB
    # branches' last BN + ReLU + conv, 78 MB at no measured cost). Empty: every intermediate tensor is kept, as upstream.
    recompute: list = field(default_factory=list)
    # Free-form architecture overrides passed to the zoo builder (used by the tiny test configs).
    arch: dict = field(default_factory=dict)


@dataclass
class DemoConfig:
    """Built-in synthetic data used when ``data.train`` is not given.

    The demo *trains from scratch* when it runs on this data with no ``model.pretrained``: then ``model`` /
    ``arch`` replace the recipe's model and ``overrides`` replace recipe values (see
    ``workbench.tasks.common.apply_demo_settings``). With your own data none of this applies.
    """

    dir: str = "datasets/demo"
    n_train: int = 1000
    n_val: int = 100
    seed: int = 0
    # Rec only: how the synthetic crops look (workbench.data.synth.REC_STYLES: "simple" | "realistic").
    style: str = "realistic"
    # The demo trains this small model from scratch (the recipe's official model needs real data and its
    # pretrained weights to learn anything in minutes). null = keep the recipe's model.
    model: Optional[str] = None
    arch: dict = field(default_factory=dict)
    # Recipe values for the from-scratch demo, as a nested mapping under data / optim / trainer / eval, e.g.
    # {optim: {lr: 2e-3}, trainer: {epochs: 6}}. A key also given on the command line keeps the command line's value.
    overrides: dict = field(default_factory=dict)


@dataclass
class DataConfig:
    """``recipes/data/*.yaml``: label files, policy for bad samples, loading and augmentation."""

    # One label file, a list of them, or null (= built-in demo data).
    train: Any = None
    # Per-file sampling ratios (upstream ratio_list), one per train file; null = 1.0 each.
    train_ratios: Optional[list] = None
    val: Any = None
    # Image paths in label files are relative to this folder (null = the label file's folder).
    root: Optional[str] = None
    # strict: any bad line/image/label fails the run with file:line. skip: excluded, counted, logged.
    policy: str = "strict"
    # Run `wb data check` on the data before training.
    check: bool = True
    demo: DemoConfig = field(default_factory=DemoConfig)
    batch_size: int = 32
    eval_batch_size: int = 32
    num_workers: int = 2
    # How loader workers run: process (own memory, no GIL contention with the trainer) or thread (inside the
    # trainer: no second copy of numpy / OpenCV, ~0.15 GB each; fine where decoding and augmentation release the
    # GIL, as OpenCV's do -- measured in recipes/data/det.yaml).
    worker_type: str = "process"
    # Limit the number of samples per split (quick experiments / tests); null = all.
    max_train_samples: Optional[int] = None
    max_val_samples: Optional[int] = None
    # Rec: training input [C, H, W] and the optional multi-scale heights (upstream MultiScaleSampler).
    image_shape: list = field(default_factory=lambda: [3, 48, 320])
    multi_scale: Optional[list] = None
    # Rec: how training crops are sized. fixed: upstream's image_shape (48x320; longer crops are squeezed into it).
    # keep_ratio: height image_shape[1], each crop at its own width (at least min_width, default image_shape[2]; at
    # most max_width), as the deployed pipeline resizes them; batches group similar widths (little padding) and the
    # backbone pools to W/8 time steps as at inference.
    width_mode: str = "fixed"
    max_width: int = 1280
    # keep_ratio: the narrowest training width; null = image_shape[2], the pipeline's canvas (a short word is padded
    # to 320 px as at inference). Narrower trains on less padding: benchmarks/bench_width_buckets.py measures it.
    # Evaluation and export keep image_shape.
    min_width: Optional[int] = None
    # Orientation tasks: how label files are read. auto decides per file: a class list (image<TAB>class), a rec
    # file (every crop upright, turned into every class) or a det file (every page upright); or say class|rec|det.
    label_format: str = "auto"
    # Task-specific augmentation / target settings (validated by the task).
    augment: dict = field(default_factory=dict)
    targets: dict = field(default_factory=dict)


@dataclass
class OptimConfig:
    """``recipes/optim/*.yaml``."""

    name: str = "adam"  # adam | adamw
    lr: float = 5e-4
    beta1: float = 0.9
    beta2: float = 0.999
    # adam: L2 regularisation added to the gradient (upstream's L2Decay); adamw: decoupled decay.
    weight_decay: float = 3e-5
    scheduler: str = "cosine"  # cosine | constant
    warmup_epochs: float = 0.0
    warmup_steps: Optional[int] = None  # overrides warmup_epochs when set
    min_lr: float = 0.0
    grad_clip_norm: Optional[float] = None
    # Linear LR scaling with the global batch: lr * global_batch / base_batch (null = no scaling).
    base_batch_size: Optional[int] = None


@dataclass
class EarlyStoppingConfig:
    patience: Optional[int] = None  # number of evaluations without improvement; null = off
    min_delta: float = 0.0


@dataclass
class AmpConfig:
    enabled: bool = False
    level: str = "O1"  # O1 | O2
    dtype: str = "float16"  # float16 | bfloat16


@dataclass
class EmaConfig:
    enabled: bool = False
    decay: float = 0.999


@dataclass
class TrainerConfig:
    """``recipes/trainer/*.yaml``: the loop, checkpoints, devices."""

    epochs: int = 10
    max_steps: Optional[int] = None  # stop after this many optimizer steps (benchmarks, tests)
    eval_every_epochs: Optional[int] = 1
    eval_every_steps: Optional[int] = None
    log_every_steps: int = 10
    grad_accum_steps: int = 1
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    amp: AmpConfig = field(default_factory=AmpConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    # Resume from a run directory, a checkpoint directory or an MLflow run id.
    resume: Optional[str] = None
    # Run outputs (checkpoints, reports) go here; null = Hydra's run directory.
    output_dir: Optional[str] = None
    device: str = "auto"  # auto | cpu | gpu
    devices: int = 1
    nodes: int = 1
    master: Optional[str] = None
    node_rank: int = 0
    sync_bn: bool = False
    # CPU math threads of Paddle and wb's kernels (null = this rank's share of the cores, or OMP_NUM_THREADS above 1:
    # engine.device.default_cpu_threads; Paddle alone would use 1). wb train rec fine-tune at 48x320 on 2 cores:
    # 9.7-9.9 -> 13.1-15.8 samples/s; resume stays bit-exact with MKL's reproducible mode (README "How fast").
    num_threads: Optional[int] = None
    # CPU: keep freed tensor memory in the process instead of returning it to the kernel (and paying its page
    # faults) every step -- rec batch 16 at 48x800: 8.7-12 s a step instead of 15.7-25 s, peak RSS +11 %
    # (workbench/engine/host_memory.py). false: the C library's defaults (memory goes back as soon as freed).
    keep_freed_memory: bool = True
    # CPU: wb's own kernels where Paddle's are the bottleneck (workbench/kernels: depthwise convolutions, the
    # BatchNorms + sum of stacked re-param branches; built once per machine, ~15 s). false: Paddle's kernels only.
    native_kernels: bool = True
    progress_bar: bool = True
    # Fine-tuning (model.pretrained and a val set): score the starting weights on val before the first step
    # (cached), so the run ends with "start X -> tuned Y" and a regression is flagged (and refused by wb export).
    eval_start: bool = True


@dataclass
class TrackingConfig:
    """``recipes/tracking/*.yaml``: MLflow."""

    enabled: bool = True
    tracking_uri: Optional[str] = None  # null = $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    experiment: str = "ocr-workbench"
    run_name: Optional[str] = None
    log_checkpoints: bool = True
    # A baseline run (e.g. stock weights evaluated by `wb eval`) this run is compared against.
    baseline_run: Optional[str] = None
    tags: dict = field(default_factory=dict)
    # CPU / memory / disk / network (GPU with nvidia-ml-py) as system/* metrics, sampled by MLflow's monitor
    # every $MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL s (default 10); needs psutil
    system_metrics: bool = True


@dataclass
class DetEvalConfig:
    """How detection is evaluated. Default resizing is the pipeline's (what PaddleX will do when deployed)."""

    resize_mode: str = "pipeline"  # pipeline | upstream (short side >= 736, as upstream's training-time eval)
    also_upstream_mode: bool = True  # log the other resize mode's hmean too
    limit_type: str = "min"
    limit_side_len: int = 64
    max_side_limit: int = 4000
    # DB post-processing; null = the model's own default (models.zoo.det_postprocess: PP-OCRv6 0.2 / 0.45 / 1.4 /
    # 3000 candidates, PP-OCRv3-v5 0.3 / 0.6 / 1.5 / 1000)
    thresh: Optional[float] = None
    box_thresh: Optional[float] = None
    unclip_ratio: Optional[float] = None
    max_candidates: Optional[int] = None
    score_mode: str = "fast"
    box_type: str = "quad"
    iou_thresh: float = 0.5
    matching: str = "upstream"  # upstream (greedy, as DetMetric) | optimal


@dataclass
class RecEvalConfig:
    resize_mode: str = "fixed"  # fixed (48x320 as upstream eval) | pipeline (height 48, keep ratio)
    case_insensitive: bool = False
    score_thresh: float = 0.0


@dataclass
class EvalConfig:
    det: DetEvalConfig = field(default_factory=DetEvalConfig)
    rec: RecEvalConfig = field(default_factory=RecEvalConfig)
    # Metric that selects the best checkpoint, and whether higher is better.
    select_metric: str = "acc"
    select_mode: str = "max"
    # Write per-sample reports (table + HTML) at each evaluation of `wb eval` / the final evaluation of training.
    report: bool = True
    # auto: on CPU, evaluate the exported graph in Paddle Inference with oneDNN (rec 6.5x, det 4.8x faster than
    # eager; 1.37x / 1.4-1.6x onnxruntime's time; engine/compiled_eval.py), eager on GPU. eager | inference: force one.
    runtime: str = "auto"


@dataclass
class TrainConfig:
    """The whole composed config of `wb train` / `wb eval`."""

    task: str = "???"  # a registered task: det | rec | textline_ori | doc_ori
    seed: int = 42
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # `wb eval`: the weights to evaluate (run id, run dir, checkpoint dir, .pdparams, or an official name).
    checkpoint: Optional[str] = None
