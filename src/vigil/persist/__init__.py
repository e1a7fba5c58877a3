"""The ``.vigil`` model file: a zip archive of ``manifest.json`` and the detector's fitted
arrays as ``.npy`` members, nothing else; no pickle anywhere.

Format versions 2 and 3 (written now)::

    manifest.json                {"format": "vigil-model", "format_version": 2, "kind": "model",
                                  "method", "params" (plain JSON values), "channels",
                                  "time_column", "series_column", "threshold", "alarms",
                                  "training", "vigil_version", "created",
                                  "members": [{"name": "detector/center_.npy", "kind": "npy",
                                               "size": 144, "sha256": "..."}, ...],
                                  "checksum": "sha256:<hex of the canonical JSON without it>"}
    detector/<state name>.npy    one per declared state array (``Detector.state_spec``)

Member kinds are ``npy``, ``json`` and, from version 3, ``onnx``: ``detector/<graph>.onnx``, a
deep model's network as an ONNX graph, scored by onnxruntime (no torch needed) after its check
(:mod:`vigil.detectors.deep.graph`: standard operator domains only, no external data).
``safetensors`` is a name kept for later (refused with "upgrade vigil" today). A file is written
in the lowest version that holds it: 3 with a graph, else 2. A file of ``kind`` "bundle" holds a model per series
(:mod:`vigil.persist.bundles`).
Version 1 (no ``kind``, no checksum; ``"arrays": {name: {"member", "sha256"}}``) still loads.

Loading trusts nothing in the file: the zip directory is sized first; only the members vigil
writes, by name, unencrypted, stored or deflated, are read, each in chunks under a limit (its
declared size, and 2 GiB for all together); JSON is parsed with a depth limit; every array is
checked against the detector's declared state (names, dtype, shape for the channel count and
parameters, finite and positive values where the maths needs them) before it is set. Every
failure is one :class:`~vigil.errors.ModelFileError` line naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import io as _io
import os
import struct
import zipfile
import zlib
from contextlib import contextmanager
from typing import IO, Any

import numpy as np

from vigil.errors import ConfigError, ModelFileError, VigilError
from vigil.persist import _archive, _manifest
from vigil.persist._archive import TOTAL_BUDGET
from vigil.persist._manifest import FORMAT, FORMAT_VERSION, MANIFEST

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "TOTAL_BUDGET", "load", "save"]

_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
               struct.error, NotImplementedError, RuntimeError, OverflowError)


def save(model: Any, target: str | os.PathLike[str] | IO[bytes]) -> None:
    """Write a fitted :class:`vigil.Model` to ``target``: a path (written whole or not at
    all) or a binary file object (``io.BytesIO()``: the bytes ``vigil.load`` takes back)."""
    model._require_fitted()
    blobs = {f"detector/{key}.npy": _npy_bytes(value)
             for key, value in model.detector.get_state().items()}
    blobs.update({f"detector/{key}.onnx": bytes(graph)
                  for key, graph in model.detector.get_graphs().items()})
    members = [{"name": name, "kind": name.rpartition(".")[2], "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest()} for name, data in blobs.items()]
    try:
        text = _manifest.build(model, members)  # fails before any file is touched
    except ModelFileError as exc:
        raise ConfigError(f"cannot save the model: {exc}") from None
    write_archive(target, text, blobs)


def write_archive(target: str | os.PathLike[str] | IO[bytes], text: str,
                  blobs: dict[str, bytes]) -> None:
    """The manifest ``text`` and members ``blobs`` as a zip to ``target``: a binary file
    object, or a path written whole or not at all."""
    if not isinstance(target, (str, os.PathLike)):
        buffer = _io.BytesIO()
        _write(buffer, text, blobs)
        target.write(buffer.getvalue())
        return
    path = os.fspath(target)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    try:
        _write(tmp, text, blobs)
        os.replace(tmp, path)  # a crash mid-write never leaves a half-written model behind
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write(target: Any, text: str, blobs: dict[str, bytes]) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, text)
        for name, data in blobs.items():
            archive.writestr(name, data)


def _npy_bytes(value: np.ndarray) -> bytes:
    buffer = _io.BytesIO()
    np.save(buffer, np.asarray(value), allow_pickle=False)
    return buffer.getvalue()


def load(source: str | os.PathLike[str] | bytes | IO[bytes]) -> Any:
    """Read a model written by :func:`save` from a path, bytes or a binary file object,
    checking it thoroughly first (see the module docstring)."""
    where = _where(source)
    stream = None
    try:
        stream, _ = _archive.open_source(source)
        return _load(stream)
    except VigilError as exc:
        raise ModelFileError(f"{where}: {_one_line(exc)}") from None
    finally:
        if stream is not None and isinstance(source, (str, os.PathLike)):
            stream.close()


def _where(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<model bytes>"
    return str(getattr(source, "name", "<model file object>"))


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 400 else text[:397] + "..."


def _load(stream: IO[bytes]) -> Any:
    _archive.check_directory(stream)
    try:
        archive = zipfile.ZipFile(stream)
    except _ZIP_ERRORS + (ValueError,) as exc:
        raise ModelFileError(f"not a vigil model file, or truncated ({exc})") from None
    with archive:
        entries = _archive.check_entries(archive)
        if MANIFEST not in entries:
            raise ModelFileError(f"not a vigil model file (no {MANIFEST})")
        with _member_errors(MANIFEST):
            with archive.open(entries[MANIFEST]) as raw:
                text = _archive.read_all(_archive.Capped(raw, MANIFEST,
                                                         _archive.MAX_MANIFEST_BYTES))
        manifest = _archive.parse_json(text, MANIFEST)
        version = _manifest.check_version(manifest)
        if manifest.get("kind") == "bundle":
            from vigil.persist.bundles import load_bundle

            return load_bundle(archive, entries, manifest, TOTAL_BUDGET - len(text))
        listed = _manifest.members(manifest, version)
        _check_listed(entries, listed, version)
        _manifest.check_fields(manifest)
        model = _skeleton(manifest)
        budget = TOTAL_BUDGET - len(text)
        arrays, graphs = {}, {}
        for member in listed:
            value, used = _read_member(archive, entries[member.name], member, model,
                                       len(manifest["channels"]), budget)
            budget -= used
            if member.kind == "onnx":
                graphs[member.key] = value
            elif member.key is not None:
                arrays[member.key] = value
            else:  # no model part reads a json member yet
                raise ModelFileError(f"member {member.name!r} is not used by a vigil model")
    model.detector.set_graphs(graphs)
    model.detector.set_state(arrays)
    model.channels_ = list(manifest["channels"])
    model.time_column_ = manifest["time_column"]
    model.series_column_ = manifest["series_column"]
    model.training_ = manifest["training"]
    if "rows" in model.training_:
        model.detector.check_training_rows(model.training_["rows"])
    if len(model.channels_) != model.detector.n_channels_:
        raise ModelFileError(f"the manifest lists {len(model.channels_)} channels but the "
                             f"detector was fitted on {model.detector.n_channels_}.")
    return model


def _check_listed(entries: dict[str, zipfile.ZipInfo], listed: list, version: int) -> None:
    names = {m.name for m in listed}
    extra = sorted(set(entries) - names - {MANIFEST})
    if extra:
        raise ModelFileError(
            f"unexpected member {extra[0]!r}: a vigil model file holds only its manifest "
            "and numeric arrays, never code or pickles; refusing to load it.")
    missing = sorted(names - set(entries))
    if missing:
        raise ModelFileError(f"the manifest lists member {missing[0]!r}, which the file lacks")
    claimed = sum(m.size if version >= 2 else entries[m.name].file_size for m in listed)
    if claimed > TOTAL_BUDGET:
        raise ModelFileError(f"its members claim {claimed} bytes, more than any vigil model "
                             f"holds ({TOTAL_BUDGET}); refusing it")


def _skeleton(manifest: dict[str, Any]) -> Any:
    """The model the manifest describes, before its detector's state is set."""
    from vigil.alarms import OFF, Alarms
    from vigil.detectors import get_class
    from vigil.model import Model
    from vigil.thresholds import Threshold

    cls = get_class(manifest["method"])
    unknown = sorted(set(manifest["params"]) - set(cls.params))
    if unknown:
        raise ModelFileError(f"{cls.name} has no parameter {unknown[0][:60]!r}; the file is "
                             "damaged")
    try:
        # Files written before alarm rules existed flagged every row above the threshold.
        alarms = Alarms.from_dict(manifest["alarms"]) if "alarms" in manifest else Alarms(**OFF)
    except (TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise ModelFileError(f"the manifest's alarms are damaged ({exc})") from None
    try:
        threshold = Threshold.from_dict(manifest["threshold"])
    except (TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise ModelFileError(f"the manifest's threshold is damaged ({exc})") from None
    model = Model(manifest["method"], threshold=threshold, alarms=alarms, **manifest["params"])
    model.detector._validate_params()  # before its declaration sizes what is read
    return model


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, member: Any, model: Any,
                 n_channels: int, budget: int) -> tuple[Any, int]:
    """One member's value (an array or a JSON document), read under its limit and checked
    against its checksum, and the bytes read."""
    if member.size is not None and info.file_size != member.size:
        raise ModelFileError(f"member {member.name!r}: the zip says {info.file_size} bytes, the "
                             f"manifest {member.size}; the file is damaged")
    limit = min(member.size if member.size is not None else info.file_size, budget)
    if member.kind == "npy":
        found = model.detector.declared(member.key)
        if found is None:
            raise ModelFileError(f"{model.detector.name} has no fitted state named "
                                 f"{member.key!r}: the file is not a {model.method} model")
        owner, spec = found
    with _member_errors(member.name), archive.open(info) as raw:
        capped = _archive.Capped(raw, member.name, limit)
        if member.kind == "npy":
            from vigil.detectors.state import check_header

            value = _archive.read_npy(capped, lambda dtype, shape: check_header(
                owner, member.key.rpartition(".")[2], spec, dtype, shape, n_channels))
        elif member.kind == "onnx":  # checked by the detector before any runtime sees it
            value = _archive.read_all(capped)
        else:
            value = _archive.parse_json(_archive.read_all(capped), member.name)
    if member.size is not None and capped.count != member.size:
        raise ModelFileError(f"member {member.name!r} holds {capped.count} bytes, not the "
                             f"{member.size} its manifest says: truncated or damaged")
    if capped.digest.hexdigest() != member.sha256:
        raise ModelFileError(f"member {member.name!r} does not match its checksum: the file was "
                             "modified or damaged after it was saved.")
    return value, capped.count


@contextmanager
def _member_errors(name: str):
    """zip and zlib failures while reading member ``name`` as one-line refusals."""
    try:
        yield
    except ModelFileError:
        raise
    except _ZIP_ERRORS + (ValueError,) as exc:  # ValueError: zipfile's "negative seek value"
        raise ModelFileError(f"member {name!r} unreadable ({exc}); the file is damaged or "
                             "truncated") from None
