"""The bridge: a trained torch model -> ONNX (float, quantized) -> C model data."""
