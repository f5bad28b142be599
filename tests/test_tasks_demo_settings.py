"""The from-scratch demo settings (data.demo.model / arch / overrides) apply to the built-in demo set only."""

from __future__ import annotations

import pytest

from workbench.config.schema import DemoConfig, TrainConfig
from workbench.errors import ConfigError
from workbench.tasks.common import command_line_keys, drop_demo_overrides


def _rec_cfg(tmp_path, **data) -> TrainConfig:
    cfg = TrainConfig(task="rec")
    cfg.model.name = "PP-OCRv5_mobile_rec"
    cfg.optim.lr = 5e-4
    cfg.trainer.epochs = 20
    cfg.data.batch_size = 32
    cfg.data.augment = {"concat_p": 0.5, "tia_p": 0.4}
    cfg.data.demo = DemoConfig(
        dir=str(tmp_path / "demo_rec"), n_train=6, n_val=2, style="simple", model="rec_tiny",
        arch={"use_guide": False},
        overrides={"optim": {"lr": 7e-3}, "trainer": {"epochs": 3},
                   "data": {"batch_size": 4, "augment": {"tia_p": 0.0}}},
    )
    for key, value in data.items():
        setattr(cfg.data, key, value)
    return cfg


def _recipe_values(cfg: TrainConfig):
    return (cfg.model.name, dict(cfg.model.arch), cfg.optim.lr, cfg.trainer.epochs, cfg.data.batch_size,
            dict(cfg.data.augment))


def test_demo_settings_apply_on_the_demo_set(tmp_path):
    from workbench.tasks.rec import RecTask

    cfg = _rec_cfg(tmp_path)
    task = RecTask(cfg)
    assert task.files.demo
    assert _recipe_values(cfg) == ("rec_tiny", {"use_guide": False}, 7e-3, 3, 4, {"concat_p": 0.5, "tia_p": 0.0})
    assert task.spec.name == "rec_tiny"


def test_demo_settings_never_touch_real_data_or_pretrained_runs(tmp_path):
    from workbench.tasks.rec import RecTask

    demo = RecTask(_rec_cfg(tmp_path)).files  # generate the set, then use it as if it were the user's data
    dictionary = str(demo.demo_dict)

    real = _rec_cfg(tmp_path, train=str(demo.train[0][0]), val=str(demo.val[0][0]))
    real.model.character_dict = dictionary
    before = _recipe_values(real)
    assert not RecTask(real).files.demo
    assert _recipe_values(real) == before

    pretrained = _rec_cfg(tmp_path)
    pretrained.model.character_dict = dictionary
    pretrained.model.pretrained = "some_weights.pdparams"  # fine-tuning on the demo set: the recipe as written
    before = _recipe_values(pretrained)
    assert RecTask(pretrained).files.demo
    assert _recipe_values(pretrained) == before


def test_bad_demo_override_keys_are_errors(tmp_path):
    from workbench.tasks.rec import RecTask

    cfg = _rec_cfg(tmp_path)
    cfg.data.demo.overrides = {"optim": {"lrr": 1.0}}
    with pytest.raises(ConfigError, match="lrr"):
        RecTask(cfg)
    cfg = _rec_cfg(tmp_path)
    cfg.data.demo.overrides = {"tracking": {"enabled": False}}
    with pytest.raises(ConfigError, match="tracking"):
        RecTask(cfg)


def test_command_line_values_win_over_demo_overrides(tmp_path):
    assert command_line_keys(["trainer.epochs=3", "+data.augment.tia_p=0", "optim=det_adam_cosine", "~x.y"]) == [
        "trainer.epochs", "data.augment.tia_p", "optim", "x.y"]
    cfg = _rec_cfg(tmp_path)
    cfg.data.demo.overrides["optim"]["warmup_epochs"] = 0.5
    dropped = drop_demo_overrides(cfg, ["trainer.epochs", "data.augment.tia_p", "optim", "model.name"])
    assert sorted(dropped) == ["data.augment.tia_p", "optim.lr", "optim.warmup_epochs", "trainer.epochs"]
    assert cfg.data.demo.overrides == {"data": {"batch_size": 4}}
    # a whole section given on the command line (data.augment={...}) covers every override inside it
    cfg = _rec_cfg(tmp_path)
    assert drop_demo_overrides(cfg, ["data.augment"]) == ["data.augment.tia_p"]


def test_only_a_demo_run_reports_command_line_values_beating_demo_overrides(tmp_path, monkeypatch, caplog):
    """A real-data or pretrained run never applies data.demo.overrides, so it says nothing about them."""
    from hydra.core.hydra_config import HydraConfig

    from workbench.api import training

    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(
        lambda: type("H", (), {"overrides": type("O", (), {"task": ["trainer.epochs=3"]})()})()))
    runs = {"demo": _rec_cfg(tmp_path), "real data": _rec_cfg(tmp_path, train="train.txt"),
            "pretrained": _rec_cfg(tmp_path)}
    runs["pretrained"].model.pretrained = "stock.pdparams"
    said = {}
    for name, cfg in runs.items():
        caplog.clear()
        with caplog.at_level("INFO", logger=training.log.name):
            training._command_line_beats_demo_overrides(cfg)
        said[name] = "command line sets trainer.epochs" in caplog.text
    assert said == {"demo": True, "real data": False, "pretrained": False}


@pytest.mark.parametrize("recipe", ["rec_finetune", "det_finetune"])
def test_shipped_demo_overrides_fit_the_schema(recipe, tmp_path):
    """The recipes' demo sections name real keys with valid values (merged exactly as a demo run merges them)."""
    from hydra import compose, initialize_config_dir

    from workbench.config.compose import recipes_dir, register_schema, to_typed
    from workbench.tasks.common import _merge_overrides

    register_schema()
    with initialize_config_dir(config_dir=str(recipes_dir()), version_base="1.3"):
        cfg = to_typed(compose(config_name="train", overrides=[f"recipe={recipe}"]))
    assert cfg.data.train is None and cfg.data.demo.model and cfg.data.demo.overrides
    before = _recipe_values(cfg)
    _merge_overrides(cfg, cfg.data.demo.overrides)
    assert _recipe_values(cfg) != before
