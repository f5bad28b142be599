"""Hydra composition helpers: where the recipes live, and the one place raw configs become typed objects."""

from __future__ import annotations

import functools
import typing

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict
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
    except OmegaConfBaseException as exc:  # e.g. ConfigKeyError / ValidationError: one line naming the key
        key = getattr(exc, "full_key", None)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        if key and "not in" in detail:
            raise _bad_key(str(key), "train") from None
        raise ConfigError(f"invalid config: {key + ': ' if key else ''}{detail}") from None


def compose_train_config(overrides: list[str], command: str = "train") -> TrainConfig:
    """The typed config of ``wb train`` / ``wb eval`` for Hydra ``overrides`` (``recipe=rec_finetune``, ...),
    composed outside a Hydra app (the data check, the Python API). A mistyped recipe, option or key is the same
    one-line ConfigError with the closest valid names as on the command line (:func:`check_overrides`)."""
    return to_typed(check_overrides(list(overrides), command, sweeps=False))


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
        given = OmegaConf.from_dotlist(argv)
        # YAML reads off / on / yes / no as booleans: a text-typed key keeps the word typed (tracking=off)
        texts = {name for name, hint in typing.get_type_hints(schema).items() if hint in (str, typing.Optional[str])}
        for arg in argv:
            key, value = arg.split("=", 1)
            if key in texts and isinstance(given.get(key), bool):
                given[key] = value
        merged = OmegaConf.merge(OmegaConf.structured(schema), given)
        for key in merged:
            if OmegaConf.is_missing(merged, key):
                raise ConfigError(f"{(required or {}).get(key, key + '=<...>')} is required; e.g. {example}")
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        from workbench.config.suggest import did_you_mean

        msg = str(exc).splitlines()[0]
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
        if "not in" in msg:
            raise ConfigError(f"{command}: {key}: no such key{did_you_mean(str(key), schema_keys(schema) + list(schema.__dataclass_fields__), 'keys')}") from None
        raise ConfigError(f"{command}: {key}: {msg}") from None


# --- mistyped recipes, group options and keys: one line with the closest valid names ----------------------------
CONFIG_GROUPS = ("recipe", "model", "data", "optim", "trainer", "tracking", "per_model")


def schema_keys(schema: type = TrainConfig) -> list[str]:
    """Every dotted key of the typed config (``optim.lr``, ``trainer.ema.decay``, ...)."""
    return sorted(flatten(OmegaConf.to_container(OmegaConf.structured(schema), resolve=False)))


def group_options(group: str) -> list[str]:
    """The options of a config group: the YAML files of ``recipes/<group>/``."""
    folder = recipes_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _free_form_key(key: str) -> bool:
    """Keys under mapping-typed fields (``data.augment.*``, ``model.arch.*``, ``tracking.tags.*`` ...) are free."""
    parts = key.split(".")
    node = OmegaConf.structured(TrainConfig)
    for i, part in enumerate(parts):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        child = node._get_node(part)
        if OmegaConf.is_dict(child) and getattr(child._metadata, "object_type", None) in (dict, None) \
                and i < len(parts) - 1:
            return True
        node = node[part]
    return False


def _bad_key(key: str, command: str) -> ConfigError:
    from workbench.config.suggest import did_you_mean

    key = key.lstrip("+~")
    if _free_form_key(key):
        return ConfigError(f"{key}: the recipe does not set this key; add it with +{key}=<value>")
    if "." in key:
        choices = schema_keys()
    else:
        choices = [k for k in OmegaConf.structured(TrainConfig)] + list(CONFIG_GROUPS)
    return ConfigError(f"{key}: no such key{did_you_mean(key, choices, 'keys')}")


# Hydra's flags that take the next word as their value; the help flags and another primary config skip the check.
_HYDRA_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--experimental-rerun"}
_HYDRA_OWN_FLAGS = {"-h", "--help", "--hydra-help", "--info", "-i", "--config-name", "-cn", "--config-path", "-cp",
                    "--config-dir", "-cd", "--shell-completion", "-sc", "--resolve"}
# Hydra's run modes: it runs one of them at a time.
_HYDRA_MODE_FLAGS = {"-m", "--multirun", "-r", "--run", "-c", "--cfg", "-i", "--info", "-sc", "--shell-completion"}
HYDRA_COMMANDS = ("train", "eval")


def check_command_line(command: str, argv: list[str]) -> None:
    """The check of :func:`check_overrides` for the Hydra commands of ``wb`` (``wb train``, ``wb eval``,
    ``wb data check recipe=...``), run by the CLI before Hydra starts, so a typo is one line, not a traceback."""
    if command == "data":
        if not (argv[:1] == ["check"] and any(a.startswith("recipe=") for a in argv[1:])):
            return
        argv = argv[1:]
    elif command not in HYDRA_COMMANDS:
        return
    modes = [a for a in argv if a.split("=")[0] in _HYDRA_MODE_FLAGS]
    if len(modes) > 1:  # Hydra's own refusal is a ValueError traceback
        raise ConfigError(f"{' and '.join(modes)}: give one of -m (sweep), --cfg, --info, --run at a time")
    if any(a.split("=")[0] in _HYDRA_OWN_FLAGS for a in argv):
        return
    check_overrides(argv, command)


def check_overrides(argv: list[str], command: str = "train", config_name: str = "train", *,
                    sweeps: bool = True) -> DictConfig:
    """Compose ``config_name`` with the command line's overrides and return it; any mistake — an unknown recipe or
    group option, an unknown key, a value of the wrong type, an unreadable argument — is a one-line ConfigError
    naming it and the closest valid names. Sweep values (``optim.lr=1e-4,2e-4``, ``interval(...)``) are checked
    option by option where they can be listed (the config returned then holds the first); ``sweeps=False``: a
    sweep is an error (one config is wanted). Flags (``-m``) and ``hydra.*`` keys are Hydra's and left to it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException

    from workbench.config.suggest import did_you_mean

    register_schema()
    words, skip_next = [], False
    for a in argv:
        if skip_next:
            skip_next = False
        elif a in _HYDRA_VALUE_FLAGS:
            skip_next = True
        elif not a.startswith(("-", "hydra.", "hydra/", "+hydra")):
            words.append(a)
    parser = OverridesParser.create()
    single: list[str] = []
    checked_later: list[str] = []
    for word in words:
        try:
            (ov,) = parser.parse_overrides([word])
        except OverrideParseException:
            raise ConfigError(f"cannot read the argument {word!r}: write key=value (e.g. optim.lr=2e-4 or "
                              "recipe=rec_finetune)") from None
        key = ov.key_or_group
        if ov.is_sweep_override() and not sweeps:
            raise ConfigError(f"{word}: a sweep gives several configs; one is wanted here (sweeps: wb train -m)")
        if key in CONFIG_GROUPS or key.split("/")[0] in CONFIG_GROUPS and "/" in key:
            values = list(ov.sweep_string_iterator()) if ov.is_sweep_override() else [ov.value()]
            options = group_options(key)
            if key == "per_model" and None in values and not ov.is_delete():  # Hydra: a traceback
                raise ConfigError(f"{word}: write ~per_model to leave out the recipe's settings for the model")
            for v in values:
                if v is not None and str(v) not in options:
                    raise ConfigError(f"{key}={v}: no such {key}{did_you_mean(str(v), options, key + ' options')}")
            single.append(f"{key}={values[0]}" if ov.is_sweep_override() else word)
        elif ov.is_sweep_override():
            try:
                first = next(iter(ov.sweep_string_iterator()))
                single.append(f"{ov.get_key_element()}={first}")
            except Exception:  # interval / glob sweeps: only the key can be checked
                checked_later.append(key)
        else:
            single.append(word)
    with initialize_config_dir(config_dir=str(recipes_dir()), version_base="1.3"):
        try:
            cfg = compose(config_name=config_name, overrides=single, return_hydra_config=True)
        except MissingConfigException as exc:
            import re

            msg = str(exc)
            m = re.search(r"Could not find '([^'/]+)/([^']+)'", msg)
            if m:
                group, name = m.groups()
                raise ConfigError(f"{group}={name}: no such {group}"
                                  f"{did_you_mean(name, group_options(group), group + ' options')}") from None
            raise ConfigError(msg.splitlines()[0]) from None
        except HydraException as exc:
            raise _composition_error(exc, single, command) from None
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    for key in checked_later:
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__" and not _free_form_key(key):
            raise _bad_key(key, command)
    typed = to_typed(cfg)  # keys added with +key=..., values checked against the schema
    _warn_model_name_without_its_config(typed, choices)
    return cfg


def _warn_model_name_without_its_config(cfg: TrainConfig, choices: dict) -> None:
    """``model.name=X`` builds X with another model's config file, so the recipe's settings measured for X
    (``recipes/per_model/<recipe>_X.yaml``) do not apply: say so, naming the override that applies them."""
    recipe, model = choices.get("recipe"), choices.get("model")
    wanted = f"{recipe}_{cfg.model.name}"
    if model != cfg.model.name and wanted in group_options("per_model"):
        _warn_once(f"model.name={cfg.model.name} keeps model={model}'s config: recipes/per_model/{wanted}.yaml "
                   f"does not apply; write model={cfg.model.name}")


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    """A command composes its config more than once (the launcher's check, then the run): one warning each."""
    import logging

    logging.getLogger("workbench.config").warning(message)


def _composition_error(exc: Exception, overrides: list[str], command: str) -> ConfigError:
    import re

    msg = str(exc)
    if "You must specify 'recipe'" in msg:
        return ConfigError(f"wb {command} needs a recipe: recipe=<{' | '.join(group_options('recipe'))}>")
    m = re.match(r"Could not (?:override|append to|delete from config) '?([^'.\s]+(?:\.[^'\s]+)*)'?", msg)
    if m:
        return _bad_key(m.group(1).rstrip("."), command)
    m = re.match(r"Error merging override (\S+)", msg)
    if m:
        cause = str(exc.__cause__ or "").strip().splitlines()
        detail = cause[0] if cause else "invalid value"
        return ConfigError(f"{m.group(1)}: {detail}")
    return ConfigError(msg.strip().splitlines()[0] if msg.strip() else exc.__class__.__name__)
