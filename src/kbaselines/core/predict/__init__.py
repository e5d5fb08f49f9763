"""Using a trained baseline: ``predict.py`` (unlabelled inputs, one checkpoint or a fold ensemble)
and ``export.py`` (ONNX, TorchScript, safetensors with a model card).

- ``checkpoints``: the checkpoints of a file or a run folder, and the tasks rebuilt from them;
- ``predictor``: :class:`~kbaselines.core.predict.predictor.Predictor`, the declared seam a dataset
  family implements (reading inputs, combining the models' outputs, writing them, the export
  contract);
- ``run``: the predict loop (batched, progress bar, per-item problems, a report);
- ``export``: the export formats, the model card and the ONNX Runtime parity check.
"""
