"""Hydra composition helpers: where the recipes live, and the one place raw configs become typed objects."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from workbench.config.schema import TrainConfig
from workbench.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def recipes_dir() -> Path:
    """The Hydra config tree: $WB_RECIPES_DIR, else ``recipes/`` of the source checkout (editable install)."""
    env = os.environ.get("WB_RECIPES_DIR")
    path = Path(env) if env else PROJECT_ROOT / "recipes"
    if not (path / "train.yaml").is_file():
        raise ConfigError(
            f"recipes not found at {path}. Install the workbench from its source checkout (`pip install -e .`) "
            "or set WB_RECIPES_DIR to the folder holding train.yaml."
        )
    return path


def to_typed(cfg: DictConfig) -> TrainConfig:
    """Validate a composed config against the schema and return the typed object.

    Unknown keys and wrong types become a ConfigError naming the key (Hydra alone would accept a typo).
    """
    raw = OmegaConf.to_container(cfg, resolve=True)
    raw.pop("hydra", None)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), raw)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:  # e.g. ConfigKeyError / ValidationError
        raise ConfigError(f"invalid config: {exc}".strip()) from None


def compose_train_config(overrides: list[str]) -> TrainConfig:
    """The typed config of ``wb train`` / ``wb eval`` for Hydra ``overrides`` (``recipe=rec_finetune``, ...),
    composed outside a Hydra app (the data check, the multi-device launcher, the Python API)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    register_schema()
    with initialize_config_dir(config_dir=str(recipes_dir()), version_base="1.3"):
        try:
            composed = compose(config_name="train", overrides=list(overrides))
        except HydraException as exc:  # a misspelt key or group: one line naming it
            raise ConfigError(" ".join(str(exc).split("\n")[:1])) from None
        return to_typed(composed)


def to_plain_dict(cfg: TrainConfig) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"optim": {"lr": 1}}`` → ``{"optim.lr": 1}`` (MLflow params)."""
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


SCHEMA_NAME = "wb_schema"


def register_schema() -> None:
    """Make the typed schema the base of the primary config (``recipes/train.yaml`` lists it first), so Hydra
    knows every key — ``data.max_train_samples=64`` works without the YAML listing it — and rejects unknown or
    ill-typed ones while composing."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name=SCHEMA_NAME, node=TrainConfig)
    _register_optuna_schema(cs)


def _register_optuna_schema(cs) -> None:
    """``hydra/sweeper=optuna`` should maximise the recipe's metric over a declared search space out of the box.
    ``recipes/hydra/sweeper/optuna.yaml`` says so on top of the plugin's structured config, which we re-register
    as ``optuna_schema``: Hydra no longer allows a YAML file and a structured config of the same name to merge
    implicitly (automatic schema matching), so the plugin's own entry is taken out of the store."""
    try:
        from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
    except ImportError:  # the [sweep] extra is not installed: hydra/sweeper=optuna will say so
        return
    from hydra.core.plugins import Plugins

    Plugins.instance()  # Hydra's one plugin scan (re-)registers the plugin's configs: let it happen first
    cs.store(group="hydra/sweeper", name="optuna_schema", node=OptunaSweeperConf, provider="workbench")
    cs.repo.get("hydra", {}).get("sweeper", {}).pop("optuna.yaml", None)


def parse_key_values(schema: type, argv: list[str], command: str, example: str, required: dict | None = None):
    """``key=value`` command-line arguments (OmegaConf dotlist) typed by the dataclass ``schema``: a word without
    ``=``, an unknown key or a badly typed value is a ConfigError naming the key and listing the known ones.
    ``required``: key -> how to write it (``{"data": "data=<det label file>"}``) for keys marked ``???``.
    Returns the ``schema`` instance."""
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise ConfigError(f"{command} takes key=value arguments, got {' '.join(bad)}; e.g. {example}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(argv))
        for key in merged:
            if OmegaConf.is_missing(merged, key):
                raise ConfigError(f"{(required or {}).get(key, key + '=<...>')} is required; e.g. {example}")
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        msg = str(exc).splitlines()[0]
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
        known = ", ".join(schema.__dataclass_fields__)
        raise ConfigError(f"{command}: {key}: {msg}\n  known keys: {known}") from None
