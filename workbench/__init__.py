"""OCR Workbench: fine-tune PaddleOCR's general OCR pipeline on private data and ship the result."""

__version__ = "0.1.0"
