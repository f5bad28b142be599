"""``recipes/per_model/<recipe>_<model>.yaml``: a recipe's settings measured for one model merge over the recipe's
own when both are chosen (Hydra's specialising pattern, ``optional per_model: ${recipe}_${model}``); the command
line still wins, ``~per_model`` leaves them out, and every file names a recipe and a model that exist."""

from __future__ import annotations

import pytest

from workbench.config.compose import compose_train_config, group_options


def test_a_models_settings_apply_only_with_that_model_and_yield_to_the_command_line():
    v5 = compose_train_config(["recipe=det_finetune"])
    v6 = compose_train_config(["recipe=det_finetune", "model=PP-OCRv6_small_det"])
    assert v6.model.name == "PP-OCRv6_small_det" and v5.model.name == "PP-OCRv5_mobile_det"
    assert v6.optim.lr < v5.optim.lr  # the gentler fine-tuning rate measured for PPLCNetV4 detectors
    assert compose_train_config(["recipe=det_finetune", "model=PP-OCRv6_small_det", "optim.lr=3e-3"]).optim.lr == 3e-3
    assert compose_train_config(["recipe=det_finetune", "model=PP-OCRv6_small_det", "~per_model"]).optim.lr \
        == v5.optim.lr
    # another recipe with the same model does not take the det recipe's settings
    assert compose_train_config(["recipe=det_finetune", "model=PP-OCRv6_tiny_det"]).optim.lr == v5.optim.lr


@pytest.mark.parametrize("name", group_options("per_model"))
def test_every_per_model_file_names_a_recipe_and_a_model_and_composes(name):
    pairs = [(r, name[len(r) + 1:]) for r in group_options("recipe") if name.startswith(r + "_")]
    assert pairs and pairs[0][1] in group_options("model"), f"{name}: not <recipe>_<model> of existing configs"
    recipe, model = pairs[0]
    with_it = compose_train_config([f"recipe={recipe}", f"model={model}"])
    without = compose_train_config([f"recipe={recipe}", f"model={model}", "~per_model"])
    assert with_it != without, f"{name} changes nothing"


def test_model_name_alone_warns_that_the_models_settings_do_not_apply(caplog):
    from workbench.config import compose

    compose._warn_once.cache_clear()
    with caplog.at_level("WARNING", logger="workbench.config"):
        cfg = compose_train_config(["recipe=det_finetune", "model.name=PP-OCRv6_small_det"])
        compose_train_config(["recipe=det_finetune", "model=PP-OCRv6_small_det"])
    assert cfg.optim.lr == compose_train_config(["recipe=det_finetune"]).optim.lr
    (record,) = caplog.records
    assert "det_finetune_PP-OCRv6_small_det.yaml does not apply; write model=PP-OCRv6_small_det" in record.message
