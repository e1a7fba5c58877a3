"""The ``.vigil`` model file: a zip archive of ``manifest.json`` and the detector's fitted
arrays as ``.npy`` members, nothing else.

Loading never runs code from the file: there is no pickle anywhere (arrays are read with
``allow_pickle=False`` and must be plain numbers), every member's SHA-256 is checked against the
manifest, a member the manifest does not list is refused, and a file of a newer format version
is refused with a clear message rather than guessed at.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io as _io
import json
import os
import zipfile
from typing import Any

import numpy as np

from vigil import __version__
from vigil.errors import ModelFileError, VigilError

FORMAT = "vigil-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: numpy dtype kinds a model file may hold: bool, signed/unsigned int, float. Never object.
SAFE_KINDS = "biuf"
#: A manifest larger than this is not a vigil manifest (protects json.loads from a huge member).
MAX_MANIFEST_BYTES = 16 * 2**20


def save(model: Any, path: str | os.PathLike[str]) -> None:
    """Write a fitted :class:`vigil.Model` to ``path``."""
    model._require_fitted()
    arrays = model.detector.get_state()
    members = {f"detector/{name}.npy": _npy_bytes(value) for name, value in arrays.items()}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "vigil_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "method": model.method,
        "params": _json_safe(model.params),
        "channels": model.channels_,
        "time_column": model.time_column_,
        "series_column": model.series_column_,
        "threshold": model.threshold.to_dict(),
        "alarms": model.alarms.to_dict(),
        "training": model.training_,
        "arrays": {
            name: {"member": member, "sha256": hashlib.sha256(data).hexdigest()}
            for (name, (member, data)) in zip(arrays, members.items())
        },
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    text = json.dumps(manifest, indent=2, sort_keys=True)  # fails before any file is touched
    tmp = f"{path}.tmp"
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST, text)
            for member, data in members.items():
                archive.writestr(member, data)
        os.replace(tmp, path)  # a crash mid-write never leaves a half-written model behind
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path: str | os.PathLike[str]) -> Any:
    """Read a model file written by :func:`save`, checking it thoroughly first."""
    from vigil.alarms import OFF, Alarms
    from vigil.model import Model
    from vigil.thresholds import Threshold

    name = os.fspath(path)
    if not os.path.exists(name):
        raise ModelFileError(f"{name}: no such model file")
    if os.path.isdir(name):
        raise ModelFileError(f"{name}: is a directory, not a model file")
    try:
        with zipfile.ZipFile(name) as archive:
            manifest = _read_manifest(archive, name)
            arrays = _read_arrays(archive, manifest, name)
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{name}: not a vigil model file, or truncated ({exc})") from None
    try:
        # Files written before alarm rules existed flagged every row above the threshold.
        alarms = Alarms.from_dict(manifest["alarms"]) if "alarms" in manifest else Alarms(**OFF)
        model = Model(manifest["method"], threshold=Threshold.from_dict(manifest["threshold"]),
                      alarms=alarms, **manifest["params"])
        model.detector.set_state(arrays)
        model.channels_ = list(manifest["channels"])
        model.time_column_ = manifest["time_column"]
        model.series_column_ = manifest["series_column"]
        model.training_ = manifest["training"]
        _check_consistent(model, name)
    except VigilError as exc:
        raise ModelFileError(f"{name}: invalid model: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{name}: the manifest is damaged ({type(exc).__name__}: {exc})") \
            from None
    return model


def _json_safe(value: Any) -> Any:
    """Parameters as plain JSON types: numpy scalars (``np.int64(30)``) become Python ones."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _npy_bytes(value: np.ndarray) -> bytes:
    buffer = _io.BytesIO()
    np.save(buffer, np.asarray(value), allow_pickle=False)
    return buffer.getvalue()


def _read_manifest(archive: zipfile.ZipFile, name: str) -> dict[str, Any]:
    try:
        info = archive.getinfo(MANIFEST)
    except KeyError:
        raise ModelFileError(f"{name}: not a vigil model file (no {MANIFEST})") from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise ModelFileError(f"{name}: {MANIFEST} is too large to be a vigil manifest")
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except (ValueError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{name}: {MANIFEST} is damaged ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{name}: not a vigil model file (unknown manifest format)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{name}: model file format version {version} is newer than this vigil "
            f"{__version__} reads (up to {FORMAT_VERSION}); upgrade vigil to load it."
        )
    listed = {MANIFEST} | {a["member"] for a in manifest.get("arrays", {}).values()}
    extra = sorted(set(archive.namelist()) - listed)
    if extra:
        raise ModelFileError(
            f"{name}: unexpected member {extra[0]!r}: a vigil model file holds only its manifest "
            "and numeric arrays, never code or pickles; refusing to load it."
        )
    return manifest


def _read_arrays(archive: zipfile.ZipFile, manifest: dict, name: str) -> dict[str, np.ndarray]:
    arrays = {}
    for key, entry in manifest.get("arrays", {}).items():
        try:
            data = archive.read(entry["member"])
        except (KeyError, zipfile.BadZipFile) as exc:
            raise ModelFileError(f"{name}: member {entry.get('member')!r} unreadable ({exc})") \
                from None
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise ModelFileError(
                f"{name}: member {entry['member']!r} does not match its checksum: the file was "
                "modified or damaged after it was saved."
            )
        try:
            value = np.load(_io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            raise ModelFileError(f"{name}: member {entry['member']!r} is not a plain numeric "
                                 f"array ({exc}); refusing to load it.") from None
        if value.dtype.kind not in SAFE_KINDS:
            raise ModelFileError(f"{name}: member {entry['member']!r} has dtype {value.dtype}; "
                                 "only numeric arrays are allowed.")
        arrays[key] = value
    return arrays


def _check_consistent(model: Any, name: str) -> None:
    if len(model.channels_) != model.detector.n_channels_:
        raise ModelFileError(
            f"{name}: the manifest lists {len(model.channels_)} channels but the detector was "
            f"fitted on {model.detector.n_channels_}."
        )
