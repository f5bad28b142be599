"""Attribution on hand-built images whose right outcome is known: one GT text or box at a time."""

from __future__ import annotations

import pytest

from workbench.analysis.attribution import (
    BELOW_THRESHOLD, CORRECT, DETECTION, FALSE_POSITIVE, MERGED, MISREAD_CROP, MISREAD_REC, MISSED, ORIENTATION,
    ORIENTATION_MODULE, RECOGNITION, SPLIT, THRESHOLD, ImageInput, MatchRules, TextCompare, attribute_image,
    boxes_to_turn, verdict,
)


def box(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


# Two words on a line and a third one below (ICDAR-like word boxes).
HELLO, WORLD, BELOW = box(10, 10, 110, 40), box(130, 10, 230, 40), box(10, 80, 110, 110)
TEXTS = ["HELLO", "WORLD", "BELOW"]


def image(preds, texts, scores=None, perfect=None, rotated=None, vertical=None, gt=(HELLO, WORLD, BELOW),
          gt_texts=TEXTS, ignore=None, thresh=0.5):
    n = len(gt)
    return ImageInput(
        gt_polys=list(gt), gt_texts=list(gt_texts), gt_ignore=ignore or [False] * n, pred_polys=list(preds),
        pred_texts=list(texts), pred_scores=list(scores or [0.9] * len(preds)), score_thresh=thresh,
        perfect=perfect if perfect is not None else [(t, 0.95) for t in gt_texts],
        rotated=rotated, vertical=vertical,
    )


def outcomes(att):
    return [g.outcome for g in att.gts]


def test_all_read_right_is_correct_and_nothing_to_fine_tune():
    att = attribute_image(image([HELLO, WORLD, BELOW], TEXTS))
    assert outcomes(att) == [CORRECT] * 3
    assert att.pred_status == ["matched"] * 3 and att.pred_gt == [0, 1, 2]
    v = verdict([{**g.to_dict(), "id": str(g.index)} for g in att.gts])
    assert v.first is None and v.correct == 3 and "nothing to fine-tune" in v.headline


def test_missed_box_is_a_detection_error():
    att = attribute_image(image([HELLO, BELOW], ["HELLO", "BELOW"]))
    assert outcomes(att) == [CORRECT, MISSED, CORRECT]
    world = att.gts[1]
    assert world.module == DETECTION and world.pred is None and world.coverage == 0.0
    assert world.detail == "no box overlaps it"
    assert world.perfect_correct is True  # a perfect detector would have recovered it


def test_partly_detected_box_is_missed_with_its_coverage():
    att = attribute_image(image([HELLO, box(130, 10, 160, 40), BELOW], ["HELLO", "WO", "BELOW"]))
    world = att.gts[1]
    assert world.outcome == MISSED and world.coverage == pytest.approx(0.3)
    assert "partly detected (30% covered" in world.detail
    assert att.pred_status[1] == FALSE_POSITIVE  # the fragment matches nothing and its reading was output


def test_misread_word_whose_gt_crop_reads_right_is_a_crop_quality_error():
    att = attribute_image(image([HELLO, WORLD, BELOW], ["HELLO", "W0RLD", "BELOW"]))
    world = att.gts[1]
    assert world.outcome == MISREAD_CROP and world.module == DETECTION
    assert world.pred == 1 and world.pred_text == "W0RLD" and world.perfect_text == "WORLD"


def test_misread_word_whose_gt_crop_is_misread_too_is_a_recognition_error():
    perfect = [("HELLO", 0.9), ("W0RLD", 0.8), ("BELOW", 0.9)]
    rotated = [None, ("PJЯOW", 0.3), None]
    att = attribute_image(image([HELLO, WORLD, BELOW], ["HELLO", "W0RLD", "BELOW"], perfect=perfect,
                                rotated=rotated))
    world = att.gts[1]
    assert world.outcome == MISREAD_REC and world.module == RECOGNITION
    assert world.perfect_correct is False and world.rotated_correct is False
    v = verdict([{**g.to_dict(), "id": f"img#{g.index}"} for g in att.gts])
    assert v.first == RECOGNITION and v.modules[0].errors == 1 and v.modules[0].examples == ["img#1"]


def test_merged_box_over_two_words_is_a_detection_error_for_both():
    line = box(8, 8, 232, 42)
    att = attribute_image(image([line, BELOW], ["HELLO WORLD", "BELOW"]))
    assert outcomes(att) == [MERGED, MERGED, CORRECT]
    hello, world = att.gts[0], att.gts[1]
    assert hello.pred == world.pred == 0 and hello.merged_with == [1] and world.merged_with == [0]
    assert hello.text_in_pred and world.text_in_pred
    assert att.pred_status == ["merged", "matched"]
    v = verdict([{**g.to_dict(), "id": str(g.index)} for g in att.gts])
    assert v.first == DETECTION and v.modules[0].outcomes == {MERGED: 2}
    assert v.notes == ["2 of the 2 merged texts are read right inside the box that joins them: the detector finds "
                       "whole lines where the labels mark words. Fine-tune the detector on your granularity, or if "
                       "lines are what you need, label lines"]


def test_split_box_is_a_detection_error_with_pieces_in_reading_order():
    halves = [box(62, 10, 110, 40), box(10, 10, 58, 40)]  # right half first: the order must not matter
    att = attribute_image(image(halves + [WORLD, BELOW], ["LO", "HEL", "WORLD", "BELOW"]))
    hello = att.gts[0]
    assert outcomes(att) == [SPLIT, CORRECT, CORRECT]
    assert hello.split_parts == [1, 0] and hello.pred_text == "HEL LO" and hello.text_in_pred
    assert att.pred_status[:2] == ["split_part", "split_part"]


def test_right_reading_below_the_threshold_is_a_threshold_error():
    att = attribute_image(image([HELLO, WORLD, BELOW], TEXTS, scores=[0.9, 0.4, 0.9], thresh=0.5))
    world = att.gts[1]
    assert world.outcome == BELOW_THRESHOLD and world.module == THRESHOLD and world.kept is False
    assert "0.400 < threshold 0.5" in world.detail
    v = verdict([{**g.to_dict(), "id": str(g.index)} for g in att.gts], score_thresh=0.5)
    assert v.first == THRESHOLD and v.headline.startswith("Adjust the score threshold first")


def test_wrong_reading_below_the_threshold_stays_a_misread():
    att = attribute_image(image([HELLO, WORLD, BELOW], ["HELLO", "W0RLD", "BELOW"], scores=[0.9, 0.2, 0.9]))
    assert att.gts[1].outcome == MISREAD_CROP and att.gts[1].kept is False


def test_upside_down_text_read_right_when_turned_is_an_orientation_error():
    perfect = [("HELLO", 0.9), ("Ↄ⅂ЯOM", 0.3), ("BELOW", 0.9)]
    rotated = [None, ("WORLD", 0.9), None]
    att = attribute_image(image([HELLO, WORLD, BELOW], ["HELLO", "Ↄ⅂ЯOM", "BELOW"], perfect=perfect,
                                rotated=rotated))
    world = att.gts[1]
    assert world.outcome == ORIENTATION and world.module == ORIENTATION_MODULE and world.rotated_correct
    assert world.detail.startswith("read right when turned 180°")


def test_upside_down_crop_of_a_detected_box_is_an_orientation_error():
    inp = image([HELLO, WORLD, BELOW], ["HELLO", "ᗡ˥ᴚOM", "BELOW"])
    att = attribute_image(inp)
    assert att.gts[1].outcome == MISREAD_CROP and boxes_to_turn(att) == [1]
    inp.pred_rotated = [None, ("WORLD", 0.9), None]
    att = attribute_image(inp)
    world = att.gts[1]
    assert world.outcome == ORIENTATION and world.pred_rotated_correct and world.pred_rotated_text == "WORLD"
    # the pipeline had no text-line orientation model (no angle per box): the detail says so
    assert world.detail == "the detected box's crop is upside down: read right when turned 180° (no orientation model)"
    assert boxes_to_turn(att) == [1]
    # with an orientation model, what it decided for this box: kept the upside-down crop (0) / turned it (1)
    inp.pred_angles = [0, 0, 0]
    assert attribute_image(inp).gts[1].detail == ("the crop is upside down and the orientation model kept it: "
                                                   "read right when turned 180°")
    inp.pred_angles = [0, 1, 0]
    world = attribute_image(inp).gts[1]
    assert world.outcome == ORIENTATION and world.detail.startswith("the orientation model turned an upright crop")


def test_vertical_text_misread_is_an_orientation_error():
    column = box(300, 10, 320, 120)
    att = attribute_image(image([column], ["T0WER"], gt=[column], gt_texts=["TOWER"], perfect=[("T0WER", 0.3)],
                                vertical=[True]))
    assert att.gts[0].outcome == ORIENTATION and "taller than wide" in att.gts[0].detail


def test_dont_care_regions_and_false_positives():
    noise = box(400, 300, 480, 330)
    dropped = box(400, 400, 480, 430)
    empty = box(400, 500, 480, 530)
    inside_dont_care = box(12, 82, 100, 108)
    att = attribute_image(image([HELLO, WORLD, inside_dont_care, noise, dropped, empty],
                                ["HELLO", "WORLD", "xx", "NOISE", "??", ""], scores=[0.9, 0.9, 0.9, 0.8, 0.1, 0.0],
                                ignore=[False, False, True], gt_texts=["HELLO", "WORLD", "###"], thresh=0.0))
    assert outcomes(att) == [CORRECT, CORRECT]  # the don't-care GT gets no outcome
    assert att.dont_care == [2]
    assert att.pred_status == ["matched", "matched", "dont_care", FALSE_POSITIVE, FALSE_POSITIVE, "empty"]
    att = attribute_image(image([HELLO, WORLD, inside_dont_care, noise, dropped, empty],
                                ["HELLO", "WORLD", "xx", "NOISE", "??", ""], scores=[0.9, 0.9, 0.9, 0.8, 0.1, 0.0],
                                ignore=[False, False, True], gt_texts=["HELLO", "WORLD", "###"], thresh=0.5))
    assert att.pred_status == ["matched", "matched", "dont_care", FALSE_POSITIVE, "dropped", "dropped"]
    assert att.false_positives == [3]
    v = verdict([{**g.to_dict(), "id": str(g.index)} for g in att.gts], false_positives=["img:box3"])
    assert v.first == DETECTION and v.modules[0].outcomes == {FALSE_POSITIVE: 1}
    assert v.modules[0].examples == ["img:box3"]


def test_empty_transcription_is_not_judged():
    att = attribute_image(image([HELLO], ["HELLO"], gt=[HELLO, WORLD], gt_texts=["HELLO", " "]))
    assert outcomes(att) == [CORRECT] and att.dont_care == [1]


def test_text_comparison_options():
    strict, loose = TextCompare(), TextCompare(case_insensitive=True, ignore_space=True)
    assert not strict.equal("Hello World", "HELLO WORLD") and loose.equal("Hello World", "HELLOWORLD")
    assert not strict.equal("HELLO  WORLD", "HELLO WORLD") and loose.equal(" HELLO WORLD", "HELLO WORLD")
    assert strict.equal("e\u0301", "\u00e9")  # NFC on both sides
    att = attribute_image(image([HELLO, WORLD, BELOW], ["hello", "WORLD", "BELOW"]), compare=loose)
    assert outcomes(att) == [CORRECT] * 3


def test_one_box_is_matched_to_one_gt_only():
    # two identical GT boxes (a duplicated annotation) and one box: the second GT cannot reuse it
    att = attribute_image(image([HELLO], ["HELLO"], gt=[HELLO, HELLO], gt_texts=["HELLO", "HELLO"],
                                perfect=[("HELLO", 0.9)] * 2),
                          rules=MatchRules(merge_cover=1.01))  # (otherwise the box "merges" both)
    assert outcomes(att) == [CORRECT, MISSED]
    assert att.gts[1].detail == "the box covering 100% of it (IoU 1.00) went to GT 0"


def test_loose_box_around_a_small_text_is_matched_and_its_reading_decides():
    digit = box(300, 10, 310, 30)  # a single character: DB's unclip margin makes its box much larger
    loose = box(294, 4, 316, 36)  # IoU 0.28
    att = attribute_image(image([loose], ["7"], gt=[digit], gt_texts=["7"], perfect=[("7", 0.9)]))
    assert outcomes(att) == [CORRECT] and att.gts[0].detail == "loose box (IoU 0.28)"
    assert att.pred_status == ["matched"]
    wide = box(300, 10, 400, 30)  # reaches into unlabeled text: misread from the box, right from the GT box
    att = attribute_image(image([wide], ["7 DAYS"], gt=[digit], gt_texts=["7"], perfect=[("7", 0.9)]))
    assert outcomes(att) == [MISREAD_CROP]
    assert att.gts[0].detail == "loose box (IoU 0.10); the GT box's crop is read right"
    half = box(10, 10, 40, 40)  # covers 30% of HELLO: too little to be its box
    att = attribute_image(image([half], ["HE"], gt=[HELLO], gt_texts=["HELLO"], perfect=[("HELLO", 0.9)]))
    assert outcomes(att) == [MISSED] and att.gts[0].detail.startswith("partly detected (30% covered")


def test_verdict_ranks_modules_and_lists_the_worst_examples_first():
    rows = [
        {"id": "a#0", "outcome": MISSED, "text": "X", "perfect_correct": True},
        {"id": "a#1", "outcome": MISSED, "text": "Y", "perfect_correct": False},
        {"id": "b#0", "outcome": MISREAD_REC, "text": "ABCDEF", "pred_text": "ABCDEX"},
        {"id": "b#1", "outcome": MISREAD_REC, "text": "ABCDEF", "pred_text": "ZZZZZZ"},
        {"id": "b#2", "outcome": MISREAD_REC, "text": "ABCDEF", "pred_text": "ABZZEF"},
        {"id": "c#0", "outcome": CORRECT, "text": "OK"},
    ]
    v = verdict(rows)
    assert [m.module for m in v.modules] == [RECOGNITION, DETECTION]
    rec, det = v.modules
    assert rec.errors == 3 and rec.examples == ["b#1", "b#2", "b#0"] and rec.recoverable == 3
    assert det.errors == 2 and det.recoverable == 1  # only one lost text is read right from its GT box
    assert v.total == 6 and v.correct == 1 and v.by_outcome[MISSED] == 2
    assert v.headline == ("Fine-tune the text recognition first: it causes 3 of the 5 errors (3 misread rec), and 3 "
                          "would be gone if it were perfect (text detection: 1). 1/6 texts read correctly.")


def test_the_module_whose_perfection_removes_most_errors_comes_first():
    # detection causes more errors, but most of its lost texts are misread from their GT box too
    rows = [{"id": f"d{i}", "outcome": MISSED, "text": "X", "perfect_correct": i == 0} for i in range(4)]
    rows += [{"id": f"r{i}", "outcome": MISREAD_REC, "text": "ABC", "pred_text": "ABD"} for i in range(3)]
    v = verdict(rows)
    assert [(m.module, m.errors, m.fixable) for m in v.modules] == [(RECOGNITION, 3, 3), (DETECTION, 4, 1)]
    with_noise = verdict(rows, false_positives=["img:box1", "img:box2", "img:box3"])
    assert [(m.module, m.errors, m.fixable) for m in with_noise.modules] == [(DETECTION, 7, 4), (RECOGNITION, 3, 3)]


def test_misreads_differing_only_in_case_or_spaces_are_pointed_out():
    rows = [
        {"id": "a", "outcome": MISREAD_REC, "text": "TAX INVOICE", "pred_text": "Tax Invoice"},
        {"id": "b", "outcome": MISREAD_REC, "text": "TAX INVOICE", "pred_text": "TAXINVOICE"},
        {"id": "c", "outcome": MISREAD_CROP, "text": "TAX INVOICE", "pred_text": "TaxInvoice"},
        {"id": "d", "outcome": MISREAD_REC, "text": "TOTAL", "pred_text": "T0TAL"},
    ]
    notes = verdict(rows).notes
    assert len(notes) == 3
    assert notes[0].startswith("1 of the 4 misreads differ from the GT only in letter case:")
    assert notes[1].startswith("1 of the 4 misreads differ from the GT only in spaces:")
    assert "letter case and spaces" in notes[2] and notes[2].endswith("case_insensitive=true ignore_space=true")
    assert verdict(rows, compare=TextCompare(case_insensitive=True, ignore_space=True)).notes == []
    spaces_ignored = [r for r in rows if r["id"] != "b"]  # "b" would have been correct with ignore_space
    only_case = verdict(spaces_ignored, compare=TextCompare(ignore_space=True)).notes
    assert only_case == ["2 of the 3 misreads differ from the GT only in letter case: if that does not matter for "
                         "you, analyse with case_insensitive=true"]


def test_images_without_gt_or_without_boxes():
    nothing = attribute_image(image([], [], gt=[], gt_texts=[], perfect=[]))
    assert nothing.gts == [] and nothing.pred_status == []
    only_noise = attribute_image(image([HELLO], ["HELLO"], gt=[], gt_texts=[], perfect=[]))
    assert only_noise.gts == [] and only_noise.false_positives == [0]
    blind = attribute_image(image([], []))
    assert outcomes(blind) == [MISSED] * 3 and all(g.iou == 0.0 and g.coverage == 0.0 for g in blind.gts)
    assert verdict([{**g.to_dict(), "id": str(g.index)} for g in blind.gts]).modules[0].recoverable == 3
