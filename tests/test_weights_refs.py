"""The weights resolver's ``stock`` shortcuts: ``stock-v6`` & co. are answered by the one resolver
(``workbench.weights.refs``) from the task's registry entry, so every command (`wb analyze det=stock-v6`,
`wb eval checkpoint=stock-v6-small`, ...) means the same official model."""

from __future__ import annotations

import pytest

from workbench.errors import ConfigError, WeightsError
from workbench.models import zoo
from workbench.tasks import registry
from workbench.weights import refs


@pytest.mark.parametrize("task", registry.names())
def test_every_stock_shortcut_names_an_official_model_of_its_task(task):
    shortcuts = registry.get(task).stock_models
    assert shortcuts["stock"] == registry.get(task).stock_model
    # the PP-OCRv6 shortcuts exactly where the zoo has PP-OCRv6 models of the task (det, rec; the orientation
    # modules have none: a stock-v6 there would name a model that does not exist)
    has_v6 = any(zoo.get_spec(n).family.startswith("PP-OCRv6") for n in zoo.list_models(task))
    assert has_v6 is ({"stock-v6", "stock-v6-small", "stock-v6-tiny"} <= set(shortcuts))
    assert has_v6 or not any(s.startswith("stock-v6") for s in shortcuts)
    for shortcut, name in shortcuts.items():
        spec = zoo.get_spec(name)
        assert spec.task == task and spec.paddlex_name == name, (shortcut, name)  # an official model
        w = refs.resolve(shortcut, stock=shortcuts, fetch=False)
        assert (w.kind, w.model_name, w.task, w.weights_file) == (refs.RefKind.STOCK, name, task, None)


def test_stock_v6_means_paddleocr_default_medium_models():
    for task in ("det", "rec"):
        w = refs.resolve("stock-v6", stock=registry.get(task).stock_models, fetch=False)
        assert w.model_name == f"PP-OCRv6_medium_{task}"


def test_unknown_shortcut_is_one_line_listing_the_choices():
    with pytest.raises(WeightsError) as err:
        refs.resolve("stock-v9", stock=registry.get("rec").stock_models, fetch=False, what="rec")
    message = str(err.value)
    assert "\n" not in message and "rec='stock-v9'" in message and "stock-v6-small" in message


def test_an_existing_path_that_starts_with_stock_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stock-run").mkdir()
    assert refs.classify("stock-run") is refs.RefKind.RUN_DIR
    assert refs.classify("stock-v6") is refs.RefKind.STOCK


def test_analyze_refuses_an_official_model_of_the_other_task():
    from workbench.analysis.pipeline import load_model

    with pytest.raises(ConfigError, match="det=PP-OCRv6_small_rec is a rec model"):
        load_model("PP-OCRv6_small_rec", "det")
