"""Deploying a trained run: ``reid export`` writes its inference embedding as ONNX
(:mod:`reidcore.export.onnx_export`), checked against PyTorch on the run's own test images
(:mod:`reidcore.export.parity`); :mod:`reidcore.export.runtime` embeds with the exported file
through onnxruntime, so ``reid eval`` and ``reid extract`` score a deployed model with the
same code as a run. ``onnx``/``onnxruntime`` are the optional extra ``reidcore[export]``."""
