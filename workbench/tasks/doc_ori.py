"""Document orientation as a trainer Task: is a page upright, or turned by 90°, 180° or 270°?

PaddleX's OCR pipeline runs this module first (``SubPipelines.DocPreprocessor.SubModules.DocOrientationClassify``,
``use_doc_orientation_classify``) and turns the whole page back before detection (PP-LCNet_x1_0_doc_ori, 224×224
from a short side of 256). Any det label file is training data for it: each page with text boxes is taken as
upright and turned through all four angles (``workbench.data.orientation``).

UVDoc, the pipeline's other document-preprocessing model (unwarping), has no public training code upstream: it is
not a task here.
"""

from __future__ import annotations

from workbench.data.check.orientation import DocOriLabelCheck
from workbench.data.orientation import DOC_CLASSES
from workbench.tasks.entry import TaskEntry
from workbench.tasks.orientation import OrientationTask
from workbench.tasks.orientation_export import OrientationExportWriter


class DocOriTask(OrientationTask):
    name = "doc_ori"
    classes = DOC_CLASSES
    derive = ("det",)
    label_check_class = DocOriLabelCheck
    sample_unit = "samples"

    @staticmethod
    def make_demo(demo):
        """The det demo generator's pages (each also turned by 90°, 180° and 270° by the dataset)."""
        from workbench.data import synth

        return synth.generate_det_demo(demo.dir, demo.n_train, demo.n_val, demo.seed)


ENTRY = TaskEntry(
    name="doc_ori", title="document orientation", task=DocOriTask,
    export_writer=OrientationExportWriter("doc_ori"), label_check=DocOriLabelCheck,
    pipeline_module="DocOrientationClassify", stock_model="PP-LCNet_x1_0_doc_ori", select_metric="acc",
    recipe="doc_ori_finetune",
    # one official document-orientation model (the same for every ocr_version): `stock` is the only shortcut
)
