"""Serving: the Triton model repository writer and checker, local ONNX Runtime serving, Triton control."""
