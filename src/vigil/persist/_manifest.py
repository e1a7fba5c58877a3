"""The manifest: writing it (version 2, with its checksum) and checking one read from a file
(version 1 or 2) field by field. Every refusal is a :class:`ModelFileError` without the file's
name (``load`` adds it)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil import __version__
from vigil.errors import ModelFileError

FORMAT = "vigil-model"
#: The newest format version this vigil reads and writes. A file is written in the lowest
#: version that can hold it, so older vigils keep reading what they could: 3 when it holds an
#: ONNX graph (a deep model), else 2 (:data:`PLAIN_VERSION`).
FORMAT_VERSION = 3
PLAIN_VERSION = 2
MANIFEST = "manifest.json"
#: Member kinds this vigil reads (onnx from version 3); the others are names kept for later.
KINDS = ("npy", "json", "onnx")
LATER_KINDS = ("safetensors",)
#: What a file holds: one model, or a bundle of one model per series.
FILE_KINDS = ("model", "bundle")
#: Largest magnitude of a number in the threshold and alarm rules: sums and products of two
#: such numbers stay finite (a cut-off of 1e300 is damage, not a fitted value).
MAX_MAGNITUDE = 1e150
#: Largest whole number there (a count of rows or peaks): exact as a float, fits an int64.
MAX_INT = 2**53
_KEY = re.compile(r"^(m[0-9]{1,3}\.)?[A-Za-z][A-Za-z0-9_]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Member:
    """One member the manifest lists: its zip name, kind, declared size (None in version 1),
    SHA-256 and, for a detector array, its state name."""

    name: str
    kind: str
    size: int | None
    sha256: str
    key: str | None


def build(model: Any, members: list[dict[str, Any]]) -> str:
    """The version 2 manifest of ``model`` whose ``members`` are already written, as text."""
    has_graph = any(member["kind"] == "onnx" for member in members)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION if has_graph else PLAIN_VERSION,
        "kind": "model",
        "vigil_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "method": model.method,
        "params": json_safe(model.params),
        "channels": list(model.channels_),
        "time_column": model.time_column_,
        "series_column": model.series_column_,
        "threshold": json_safe(model.threshold.to_dict()),
        "alarms": json_safe(model.alarms.to_dict()),
        "training": json_safe(model.training_),
        "members": members,
    }
    check_fields(manifest)  # what is written always loads
    manifest["checksum"] = checksum(manifest)
    return json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False)


def json_safe(value: Any) -> Any:
    """Plain JSON types: numpy scalars (``np.int64(30)``) become Python ones, tuples lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def checksum(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON without its ``checksum`` field."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def check_version(manifest: Any) -> int:
    """The format version, for a manifest of vigil's format this vigil reads; version 2's
    checksum must match."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError("not a vigil model file (unknown manifest format)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(f"the manifest's format_version {_short(version)} is not a whole "
                             "number: the file is damaged")
    if version < 1:
        raise ModelFileError(f"model file format version {version} does not exist (versions "
                             "start at 1): the file is damaged")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"model file format version {version} is newer than this vigil "
                             f"{__version__} reads (up to {FORMAT_VERSION}); upgrade vigil to "
                             "load it.")
    if version >= 2:
        if manifest.get("checksum") != checksum(manifest):
            raise ModelFileError(f"{MANIFEST} does not match its checksum: the file was "
                                 "modified or damaged after it was saved.")
        kind = manifest.get("kind")
        if kind not in FILE_KINDS:
            raise ModelFileError(f"a vigil file of kind {_short(kind)} is not one this vigil "
                                 f"{__version__} reads (it reads: {', '.join(FILE_KINDS)})")
    return version


def members(manifest: dict[str, Any], version: int) -> list[Member]:
    """The members the manifest lists, each name, kind, size and checksum well formed."""
    if version == 1:
        arrays = manifest.get("arrays", {})
        if not isinstance(arrays, dict):
            raise ModelFileError(f"the manifest's arrays must be an object; got "
                                 f"{type(arrays).__name__}")
        entries = []
        for key, entry in arrays.items():
            if not isinstance(entry, dict):
                raise ModelFileError(f"the manifest's entry for array {_short(key)} must be an "
                                     f"object; got {_short(entry)}")
            entries.append({"name": entry.get("member"), "kind": "npy", "size": None,
                            "sha256": entry.get("sha256"), "key": key})
    else:
        listed = manifest.get("members")
        if not isinstance(listed, list) or not all(isinstance(e, dict) for e in listed):
            raise ModelFileError("the manifest's members must be a list of objects")
        entries = [{**e, "key": None} for e in listed]
        for entry in entries:
            if set(entry) != {"name", "kind", "size", "sha256", "key"}:
                raise ModelFileError(f"a member entry must hold name, kind, size and sha256; "
                                     f"got {_short(sorted(set(entry) - {'key'}))}")
    out = [_member(entry, version) for entry in entries]
    names = [m.name for m in out]
    if len(set(names)) != len(names) or MANIFEST in names:
        raise ModelFileError("the manifest lists a member twice")
    return out


def _member(entry: dict[str, Any], version: int) -> Member:
    name, kind, size, digest = entry["name"], entry["kind"], entry["size"], entry["sha256"]
    if not isinstance(name, str):
        raise ModelFileError(f"a member's name must be text; got {_short(name)}")
    if kind in LATER_KINDS or (isinstance(kind, str) and kind not in KINDS):
        raise ModelFileError(f"member {name[:80]!r} is of kind {kind[:20]!r}, which this vigil "
                             f"{__version__} does not read; upgrade vigil to load it")
    if kind not in KINDS:
        raise ModelFileError(f"member {name[:80]!r} has no kind")
    if kind == "onnx" and version < 3:
        raise ModelFileError(f"member {name[:80]!r} is an ONNX graph, which format version "
                             f"{version} cannot hold; the file is damaged")
    if version >= 2 and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ModelFileError(f"member {name[:80]!r} has no valid size ({_short(size)})")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise ModelFileError(f"member {name[:80]!r} has no valid sha256 ({_short(digest)})")
    key = entry["key"]
    if kind == "npy":
        key = name[len("detector/"):-len(".npy")] if key is None else key
        if not isinstance(key, str) or not _KEY.match(key) or name != f"detector/{key}.npy":
            raise ModelFileError(f"member {name[:80]!r} is not named as vigil names a "
                                 "detector array (detector/<state name>.npy)")
    elif kind == "onnx":
        key = name[len("detector/"):-len(".onnx")]
        if not _KEY.match(key) or name != f"detector/{key}.onnx":
            raise ModelFileError(f"member {name[:80]!r} is not named as vigil names a "
                                 "detector graph (detector/<graph name>.onnx)")
    elif not name.endswith(".json"):
        raise ModelFileError(f"member {name[:80]!r} of kind json must be named *.json")
    return Member(name, kind, size, digest, key)


def check_fields(manifest: dict[str, Any]) -> None:
    """The model's fields: parameters, channels, column names, threshold, alarm rules and
    training summary of plain, finite JSON values."""
    if not isinstance(manifest.get("method"), str):
        raise ModelFileError(f"the manifest's method {_short(manifest.get('method'))} is not "
                             "a method name")
    params = manifest.get("params")
    if not isinstance(params, dict) or not all(_scalar(v) for v in params.values()):
        raise ModelFileError(f"the manifest's params must map names to plain values (numbers, "
                             f"text, true/false, null); got {_short(params)}")
    channels = manifest.get("channels")
    if (not isinstance(channels, list) or not channels
            or not all(isinstance(c, str) and c for c in channels)
            or len(set(channels)) != len(channels)):
        raise ModelFileError(f"the manifest's channels must be distinct column names; got "
                             f"{_short(channels)}")
    for key in ("time_column", "series_column"):
        if not (manifest.get(key) is None or isinstance(manifest[key], str)):
            raise ModelFileError(f"the manifest's {key} must be a column name or null")
    for key in ("threshold", "alarms"):
        if key in manifest or key == "threshold":
            if not isinstance(manifest.get(key), dict):
                raise ModelFileError(f"the manifest's {key} must be an object")
            _finite(manifest[key], key)
    training = manifest.get("training")
    if not isinstance(training, dict) or not all(_scalar(v) for v in training.values()):
        raise ModelFileError("the manifest's training summary must be an object of plain values")
    rows = training.get("rows", 0)
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise ModelFileError(f"the manifest's training rows {_short(rows)} is not a row count")


def _scalar(value: Any) -> bool:
    """A plain JSON value: text, true/false, null or a finite number."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, int, bool))


def _finite(value: Any, where: str) -> None:
    """Every number in ``value`` (nested) finite and at most MAX_MAGNITUDE in size."""
    if isinstance(value, dict):
        for k, v in value.items():
            _finite(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite(v, f"{where}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        largest = MAX_INT if isinstance(value, int) else MAX_MAGNITUDE
        if not (abs(value) <= largest):  # False for NaN too
            raise ModelFileError(f"the manifest's {where[:80]} is {_short(value)}: not a finite "
                                 f"number of at most {largest:g} in size; the file is damaged")
    elif not (value is None or isinstance(value, (str, bool))):
        raise ModelFileError(f"the manifest's {where[:80]} is not a plain JSON value")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
