"""Deep detectors: PyTorch networks trained on sliding windows of every channel together,
served through ONNX.

``autoencoder``, ``vae``, ``transformer`` and ``gan`` share :class:`base.DeepDetector`: the
window, the scaling fitted on the training rows, the training loop (:mod:`.training`: fixed
seeds, a validation split, early stopping, a clear error when the loss diverges) and the
export of the trained network to an ONNX graph (:mod:`.graph`) that onnxruntime scores. Fitting
needs the ``deep`` extra (torch); scoring a saved model needs only onnxruntime and onnx (the
``onnx`` extra), so a Spark executor or a stream worker never installs torch. Importing this
package imports neither.
"""
