"""Text-line orientation as a trainer Task: is a crop upright (0°) or upside down (180°)?

PaddleX's OCR pipeline runs this module (``SubModules.TextLineOrientation``, ``use_textline_orientation``) on every
crop before recognition and turns the crops it classifies as 180° (PP-LCNet_x0_25 / x1_0_textline_ori, 80×160).
Any rec label file is training data for it: each crop is taken as upright and also turned by 180°
(``workbench.data.orientation``); class lists (``crop.png<TAB>180_degree``) can label real upside-down crops.
"""

from __future__ import annotations

from workbench.data.check.orientation import TextlineOriLabelCheck
from workbench.data.orientation import TEXTLINE_CLASSES
from workbench.tasks.entry import TaskEntry
from workbench.tasks.orientation import OrientationTask
from workbench.tasks.orientation_export import OrientationExportWriter


class TextlineOriTask(OrientationTask):
    name = "textline_ori"
    classes = TEXTLINE_CLASSES
    derive = ("rec",)
    label_check_class = TextlineOriLabelCheck

    @staticmethod
    def make_demo(demo):
        """The rec demo generator's crops (each also turned by 180° by the dataset)."""
        from workbench.data import synth

        return synth.generate_rec_demo(demo.dir, demo.n_train, demo.n_val, demo.seed, style=demo.style)


ENTRY = TaskEntry(
    name="textline_ori", title="text-line orientation", task=TextlineOriTask,
    export_writer=OrientationExportWriter("textline_ori", pipeline_keys=("batch_size",)),
    label_check=TextlineOriLabelCheck, pipeline_module="TextLineOrientation",
    stock_model="PP-LCNet_x1_0_textline_ori", select_metric="acc", recipe="textline_ori_finetune",
    # `stock` = PaddleX's OCR pipeline default (x1.0, whatever ocr_version: PP-OCRv6 has no orientation model of
    # its own, so there is no stock-v6 here); paddleocr's stand-alone TextLineOrientationClassification runs x0.25
    stock_variants={"stock-x1_0": "PP-LCNet_x1_0_textline_ori", "stock-x0_25": "PP-LCNet_x0_25_textline_ori"},
)
