"""Export of trained models into self-contained ONNX bundles."""
