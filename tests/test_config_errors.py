"""A typo anywhere on the command line is one line with the closest valid names and exit status 2, never a
traceback: recipes, config group options, keys, values, commands, sub-commands and flags, in every command
(including the trainer.devices>1 launcher path)."""

from __future__ import annotations

import pytest

from workbench import cli
from workbench.errors import ConfigError


def _one_line(capsys, argv, code=2) -> str:
    assert cli.main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    errors = [x for x in err if " error: " in x or x.startswith("wb: ")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


@pytest.mark.parametrize("argv,expected", [
    (["train", "recipe=rec_finetun"], "wb train: error: recipe=rec_finetun: no such recipe; did you mean rec_finetune"),
    (["train", "recipe=rec_finetune", "optim.lrr=1e-3"], "optim.lrr: no such key; did you mean optim.lr"),
    (["train", "recipe=rec_finetune", "model=PP-OCRv5_mobile_recc"], "no such model; did you mean PP-OCRv5_mobile_rec"),
    (["train", "recipe=rec_finetune", "trainer=defualt"], "trainer=defualt: no such trainer; did you mean default"),
    (["train", "recipe=rec_finetune", "trainer.epochs=ten"], "trainer.epochs=ten: Value 'ten'"),
    (["train", "recipe=rec_finetune", "trainer.devices=2", "data.batchsize=8"],
     "data.batchsize: no such key; did you mean data.batch_size"),
    (["train", "-m", "recipe=rec_finetune", "optim.lr=1e-4,2e-4", "optim.nme=adam"], "optim.nme: no such key"),
    (["train", "-m", "recipe=rec_finetune,det_finetun"], "recipe=det_finetun: no such recipe; did you mean det_finetune"),
    (["train", "recipe=rec_finetune", "+data.augment.rotate=5", "data.augment.flip=1"],
     "data.augment.flip: the recipe does not set this key; add it with +data.augment.flip=<value>"),
    (["train", "recipe=det_finetune", "per_model=null"], "per_model=null: write ~per_model to leave out"),
    (["train"], "wb train needs a recipe: recipe=<det_finetune | doc_ori_finetune | rec_finetune | textline_ori_finetune>"),
    (["train", "recipe=rec_finetune", "optim.lr"], "cannot read the argument 'optim.lr'"),
    (["train", "recipe=rec_finetune", "trainer.keep_checkpoints=[best]"], "trainer.keep_checkpoints: no such key"),
    (["eval", "recipe=det_finetune", "checkpiont=run"], "wb eval: error: checkpiont: no such key; did you mean checkpoint"),
    (["data", "check", "recipe=rec_finetune", "data.trian=x.txt"], "data.trian: no such key; did you mean data.train"),
    (["data", "chek", "rec", "x.txt"], "unknown action 'chek'; did you mean check"),
    (["data", "check", "rec", "x.txt", "--dictt", "d.txt"], "unrecognized arguments: --dictt d.txt; did you mean --dict"),
    (["data", "check", "recc", "x.txt"], "invalid choice 'recc'; did you mean rec"),
    (["analyze", "pipelin", "data=x"], "unknown analysis; did you mean pipeline"),
    (["analyze", "pipeline", "data=x", "dett=stock"], "dett: no such key; did you mean det"),
    (["export", "det=run", "box_tresh=0.5"], "box_tresh: no such key; did you mean box_thresh"),
    (["compare", "a", "b", "--metrc", "acc"], "did you mean --metric"),
    (["weights", "fecth", "PP-OCRv5_mobile_det"], "invalid choice 'fecth'; did you mean fetch"),
    (["tracking", "replya", "run"], "invalid choice 'replya'; did you mean replay"),
    (["trian", "recipe=rec_finetune"], "wb: unknown command 'trian'; did you mean train"),
    (["eval", "-m", "recipe=rec_finetune", "--cfg", "job"], "-m and --cfg: give one of -m (sweep), --cfg"),
])
def test_a_typo_is_one_line_naming_the_closest_valid_names(capsys, argv, expected):
    assert expected in _one_line(capsys, argv)


def test_the_multi_device_launcher_checks_before_launching():
    from workbench.engine.launch import _compose

    with pytest.raises(ConfigError, match=r"^optim\.lrr: no such key; did you mean optim\.lr"):
        _compose(["recipe=rec_finetune", "trainer.devices=2", "optim.lrr=1e-3"])


def test_the_python_api_gives_the_same_one_line_errors():
    """``workbench.compose`` (and what uses it: ``workbench.check_data``) answers a typo like the command line; a
    sweep, which would silently become its first value, is refused there."""
    import workbench

    with pytest.raises(ConfigError, match=r"^recipe=rec_finetun: no such recipe; did you mean rec_finetune"):
        workbench.compose(["recipe=rec_finetun"])
    with pytest.raises(ConfigError, match=r"^optim\.lrr: no such key; did you mean optim\.lr"):
        workbench.compose(["recipe=rec_finetune", "optim.lrr=1e-3"])
    with pytest.raises(ConfigError, match=r"^optim\.lr=1e-4,2e-4: a sweep gives several configs"):
        workbench.compose(["recipe=rec_finetune", "optim.lr=1e-4,2e-4"])
    assert workbench.compose(["recipe=rec_finetune", "optim.lr=3e-4"]).optim.lr == 3e-4


@pytest.mark.parametrize("argv", [["eval", "--help"], ["train", "-h"], ["eval", "checkpoint=run", "--help"]])
def test_help_without_a_recipe_prints_the_usage_and_the_recipes(capsys, argv):
    # Hydra's own help composes the config first, which needs a recipe: `wb eval --help` was a traceback
    assert cli.main(argv) == 0
    out = capsys.readouterr()
    assert f"wb {argv[0]} recipe=" in out.out and "recipes: det_finetune | " in out.out
    assert "Traceback" not in out.err


@pytest.mark.parametrize("argv", [["recipe=rec_finetune", "--cfg", "job"], ["--cfg", "job", "recipe=rec_finetune"]])
def test_eval_takes_hydra_flags_before_and_after_the_overrides(capsys, argv):
    # wb eval adds a default run dir among the overrides: argparse refuses one after a flag or before -m
    assert cli.main(["eval", *argv]) == 0
    assert "task: rec" in capsys.readouterr().out


def test_eval_sweeps_reach_the_evaluation(capsys, tmp_path):
    # -m then the overrides (the default run dir once sat after them: "unrecognized arguments")
    code = cli.main(["eval", "-m", "recipe=det_finetune", f"checkpoint={tmp_path / 'none'}", "tracking=off",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    err = capsys.readouterr().err
    assert code == 2 and "wb eval: error: checkpoint=" in err and "is neither an existing path" in err
    assert "unrecognized arguments" not in err


def test_data_help_prints_the_actions(capsys):
    assert cli.main(["data", "--help"]) == 0
    out = capsys.readouterr().out
    assert "wb data check" in out and "wb data split" in out and "wb data crops" in out
