"""``segohem-export``: the run and its parity check (run.py), ONNX / torch.export / TorchScript
(formats.py)."""
