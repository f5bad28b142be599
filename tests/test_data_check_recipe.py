"""`wb data check recipe=...`: the recipe's own data and dictionary, the same check `wb train` runs first."""

from __future__ import annotations

from workbench.cli import main


def test_recipe_form_checks_the_recipes_data(shared_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    en_dict = shared_dir / "fixtures" / "parity" / "ppocrv5_en_dict.txt"
    icdar = shared_dir / "data" / "icdar2015_rec" / "label.txt"
    code = main(["data", "check", "recipe=rec_finetune", "model=rec_tiny", f"model.character_dict={en_dict}",
                 f"data.train={icdar}", f"data.val={icdar}"])
    out = capsys.readouterr().out
    assert code == 0 and "4,468 samples" in out and "ppocrv5_en_dict.txt" in out
    # SROIE receipt lines: with upstream's max_text_length 25, 221 labels are longer than the NRTR branch allows,
    # so strict fails; the recipe's default (null: the longest training label) trains on all of them
    sroie = shared_dir / "data" / "sroie_rec" / "label.txt"
    code = main(["data", "check", "recipe=rec_finetune", "model=rec_tiny", f"model.character_dict={en_dict}",
                 f"data.train={sroie}", "model.max_text_length=25"])
    out = capsys.readouterr().out
    assert code == 1 and "label_too_long" in out and "221" in out
    main(["data", "check", "recipe=rec_finetune", "model=rec_tiny", f"model.character_dict={en_dict}",
          f"data.train={sroie}"])
    assert "label_too_long" not in capsys.readouterr().out
    code = main(["data", "check", "recipe=det_finetune", f"data.train={shared_dir}/data/icdar2015_det/label.txt"])
    assert code == 0 and "400 samples" in capsys.readouterr().out
