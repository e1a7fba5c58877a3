"""Training a deep detector's network (needs torch): seeded, with a validation split and early
stopping, then exported to ONNX and checked against torch.

Repeatable bit for bit on a CPU: the seed fixes the initial weights, the batch order and the
VAE's noise, and torch's deterministic algorithms are switched on while training.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from vigil._optional import require
from vigil.errors import ConfigError

#: Torch and ONNX errors of the same windows may differ by float32 rounding; more is a bug.
AGREEMENT = 1e-5


def fit_network(net: Any, windows: np.ndarray, *, epochs: int, batch_size: int,
                learning_rate: float, validation: float, patience: int, max_windows: int,
                seed: int, name: str, progress: Callable[[int, int, str], None] | None = None
                ) -> tuple[Any, int, float]:
    """Train ``net`` on ``windows`` (a float32 view, windows x window x channels, in time
    order); returns the best network (lowest validation loss), the epochs run and that loss.

    The last ``validation`` share of the windows (after a gap of one window, so no row is in
    both) is held out for early stopping: training stops after ``patience`` epochs without
    improvement. Each epoch sees at most ``max_windows`` training windows (a seeded sample).
    """
    torch = require("torch", "deep", f"fitting {name}")
    from vigil.detectors.deep.networks import optimisers, train_step

    window = windows.shape[1]
    train, held_out = _split(len(windows), validation, window)
    generator = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(np.ascontiguousarray(windows))
    # a GPU when there is one (never needed); the CPU's runs are the bit-for-bit repeatable ones
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net.to(device)
    steps = optimisers(net, learning_rate)
    best, best_loss, since, done = copy.deepcopy(net.state_dict()), math.inf, 0, 0
    with _deterministic(torch, strict=device.type == "cpu"):
        for epoch in range(1, epochs + 1):
            net.train()
            order = train[torch.randperm(len(train), generator=generator)[:max_windows]]
            for start in range(0, len(order), batch_size):
                batch = data[order[start:start + batch_size]].to(device)
                loss = train_step(net, steps, batch)
                if not torch.isfinite(loss):
                    raise ConfigError(
                        f"{name} training diverged (the loss became {float(loss)} in epoch "
                        f"{epoch}): lower learning_rate (now {learning_rate:g}), or look for "
                        "huge values in the training rows.")
            held = _mean_loss(torch, net, data[held_out], batch_size, device)
            done = epoch
            if held < best_loss and not best_loss - held <= 1e-7 * held:  # a real gain
                best, best_loss, since = copy.deepcopy(net.state_dict()), held, 0
            else:
                since += 1
            if progress is not None:
                progress(epoch, epochs, f"validation loss {held:.4g}")
            if since >= patience:
                break
    net.load_state_dict(best)
    net.cpu().eval()  # exported and checked on the CPU, where it is served
    return net, done, float(best_loss)


def _split(n: int, validation: float, window: int) -> tuple[Any, Any]:
    """Indices of the training and the held-out windows: the last ``validation`` share is
    held out, a window's width apart from the training ones (all windows serve both when there
    are too few to split)."""
    import torch

    held = int(round(n * validation))
    first_held = n - held
    last_train = first_held - window  # windows overlapping a held-out one are left out
    if held < 8 or last_train < 16:
        everything = torch.arange(n)
        return everything, everything
    return torch.arange(last_train), torch.arange(first_held, n)


def _mean_loss(torch: Any, net: Any, windows: Any, batch_size: int, device: Any) -> float:
    net.eval()
    total, count = 0.0, 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)  # the VAE's loss samples: the same draw every epoch
        with torch.no_grad():
            for start in range(0, len(windows), 4 * batch_size):
                batch = windows[start:start + 4 * batch_size].to(device)
                total += float(net.loss(batch)) * len(batch)
                count += len(batch)
    if not math.isfinite(total):
        raise ConfigError("the validation loss is not finite: the training diverged; lower "
                       "learning_rate.")
    return total / max(count, 1)


@contextlib.contextmanager
def _deterministic(torch: Any, strict: bool) -> Iterator[None]:
    """Torch's deterministic algorithms; on a GPU only where they exist (warn, not fail)."""
    previous = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=not strict)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_only)


def export(net: Any, window: int, channels: int, sample: np.ndarray, name: str) -> bytes:
    """The network as ONNX bytes (input ``windows``, output ``error``, any batch size),
    checked to give torch's errors on ``sample`` windows to ``AGREEMENT`` (relative)."""
    torch = require("torch", "deep", f"fitting {name}")
    from vigil.detectors.deep.graph import INPUT, OUTPUT, run, session

    example = torch.zeros(2, window, channels)
    buffer = io.BytesIO()
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its notes on torchvision ops it skips
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        try:
            # The TorchScript exporter: 20-50x faster to export than the torch.export one
            # (0.05 s against 0.8-2.6 s for these networks, measured with torch 2.13; a
            # bundle exports one network per series), and onnxruntime runs both graphs
            # equally fast. Deprecated by torch, so the torch.export one takes over where
            # it is gone.
            torch.onnx.export(net, (example,), buffer, input_names=[INPUT],
                              output_names=[OUTPUT], dynamo=False, opset_version=18,
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
        except (TypeError, AttributeError, NotImplementedError, RuntimeError):
            buffer = io.BytesIO()
            torch.onnx.export(net, (example,), buffer, input_names=[INPUT],
                              output_names=[OUTPUT], dynamo=True, external_data=False,
                              dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False,
                              optimize=True)
    quiet.setLevel(level)
    data = buffer.getvalue()
    with torch.no_grad():
        expected = net(torch.from_numpy(np.ascontiguousarray(sample))).numpy()
    got = run(session(data), sample)
    scale = max(float(np.abs(expected).max()), 1e-12)
    if not np.allclose(got, expected, rtol=AGREEMENT, atol=AGREEMENT * scale):
        worst = float(np.abs(got - expected).max()) / scale
        raise RuntimeError(f"{name}: the exported ONNX graph disagrees with torch by {worst:.2g} "
                       "(relative); please report this with the data's shape.")
    return data
