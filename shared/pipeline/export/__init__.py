"""Export stage: ONNX export and parity checks, ONNX Runtime variants, TensorRT engines."""
