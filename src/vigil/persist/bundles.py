"""A bundle file: one model per series in one ``.vigil`` archive.

Format version 2, kind ``bundle``::

    manifest.json        {"format": "vigil-model", "format_version": 2, "kind": "bundle",
                          "method", "series_column", "unseen", "vigil_version", "created",
                          "series": [[<series id>, "models/00000.vigil"], ...],
                          "fallback": "models/00042.vigil" or null,
                          "members": [{"name", "kind": "model", "size", "sha256"}, ...],
                          "checksum": "sha256:..."}
    models/NNNNN.vigil   each a whole model file (kind "model"), loaded and checked as one

The manifest is checked as a model's is (its checksum, its members' names, sizes and digests,
nothing else in the archive); each member is read under its size and the file's budget, then
loaded by :func:`vigil.persist.load` with every check a model file gets. A bundle inside a
bundle is refused.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io as _io
import json
import os
import re
import zipfile
from typing import IO, Any

from vigil import __version__
from vigil.errors import ModelFileError
from vigil.persist import _archive
from vigil.persist._manifest import FORMAT, MANIFEST, PLAIN_VERSION, checksum

__all__ = ["save_bundle", "load_bundle", "MAX_SERIES"]

#: Most series one bundle file holds (the archive's member limit, less the manifest and the
#: fallback).
MAX_SERIES = _archive.MAX_MEMBERS - 2
_NAME = re.compile(r"^models/[0-9]{5}\.vigil$")


def save_bundle(bundle: Any, target: str | os.PathLike[str] | IO[bytes]) -> None:
    """Write a fitted :class:`vigil.ModelBundle` (a path, written whole or not at all, or a
    binary file object)."""
    from vigil.errors import ConfigError
    from vigil.persist import write_archive

    if len(bundle.models_) > MAX_SERIES:
        raise ConfigError(f"a bundle file holds at most {MAX_SERIES} series; this one has "
                          f"{len(bundle.models_)}: split the fleet over several bundles.")
    blobs: dict[str, bytes] = {}
    series = []
    for k, (name, model) in enumerate(bundle.models_.items()):
        member = f"models/{k:05d}.vigil"
        blobs[member] = _model_bytes(model)
        series.append([name, member])
    fallback = None
    if bundle.fallback_ is not None:
        fallback = f"models/{len(series):05d}.vigil"
        blobs[fallback] = _model_bytes(bundle.fallback_)
    manifest = {"format": FORMAT, "format_version": PLAIN_VERSION, "kind": "bundle",
                "vigil_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "method": bundle.method, "series_column": bundle.series_column,
                "unseen": bundle.unseen, "series": series, "fallback": fallback,
                "members": [{"name": n, "kind": "model", "size": len(b),
                             "sha256": hashlib.sha256(b).hexdigest()} for n, b in blobs.items()]}
    manifest["checksum"] = checksum(manifest)
    text = json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False)
    write_archive(target, text, blobs)


def load_bundle(archive: zipfile.ZipFile, entries: dict[str, zipfile.ZipInfo],
                manifest: dict[str, Any], budget: int) -> Any:
    """The bundle a checked manifest (checksum and version already verified) describes."""
    from vigil.bundle import UNSEEN, ModelBundle
    from vigil.model import Model
    from vigil.persist import _member_errors, load

    fields = ("method", "series_column", "unseen", "series", "fallback", "members")
    if any(f not in manifest for f in fields):
        missing = next(f for f in fields if f not in manifest)
        raise ModelFileError(f"the bundle manifest has no {missing!r}")
    members = manifest["members"]
    if not isinstance(members, list) or not members:
        raise ModelFileError("the bundle manifest's members must be a non-empty list")
    listed: dict[str, dict[str, Any]] = {}
    for entry in members:
        if (not isinstance(entry, dict) or set(entry) != {"name", "kind", "size", "sha256"}
                or not isinstance(entry["name"], str) or not _NAME.match(entry["name"])
                or entry["kind"] != "model" or not isinstance(entry["size"], int)
                or isinstance(entry["size"], bool) or entry["size"] < 0
                or not isinstance(entry["sha256"], str)
                or not re.match(r"^[0-9a-f]{64}$", entry["sha256"])):
            raise ModelFileError(f"a bundle member entry is malformed: {str(entry)[:120]}")
        if entry["name"] in listed:
            raise ModelFileError("the bundle manifest lists a member twice")
        listed[entry["name"]] = entry
    extra = sorted(set(entries) - set(listed) - {MANIFEST})
    if extra:
        raise ModelFileError(f"unexpected member {extra[0]!r}: a bundle holds only its manifest "
                             "and model files; refusing to load it.")
    if sum(e["size"] for e in listed.values()) > budget:
        raise ModelFileError("the bundle's members claim more bytes than any vigil file holds")
    series, fallback = manifest["series"], manifest["fallback"]
    if (not isinstance(series, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
            for p in series) or len({p[0] for p in series}) != len(series)):
        raise ModelFileError("the bundle manifest's series must be [series id, member] pairs, "
                             "each series once")
    used = [p[1] for p in series] + ([fallback] if fallback is not None else [])
    if sorted(used) != sorted(listed) or len(set(used)) != len(used):
        raise ModelFileError("the bundle's series and fallback must name each member once")
    if manifest["unseen"] not in UNSEEN or (manifest["unseen"] == "fallback") != (
            fallback is not None):
        raise ModelFileError(f"the bundle's unseen rule {str(manifest['unseen'])[:20]!r} does "
                             "not match its fallback")
    models: dict[str, Any] = {}
    for name, entry in listed.items():
        if name not in entries:
            raise ModelFileError(f"the manifest lists member {name!r}, which the file lacks")
        with _member_errors(name), archive.open(entries[name]) as raw:
            capped = _archive.Capped(raw, name, min(entry["size"], budget))
            data = _archive.read_all(capped)
        if capped.count != entry["size"] or capped.digest.hexdigest() != entry["sha256"]:
            raise ModelFileError(f"member {name!r} does not match its size and checksum: the "
                                 "file was modified or damaged after it was saved.")
        budget -= capped.count
        try:
            model = load(data)
        except ModelFileError as error:
            raise ModelFileError(f"member {name!r}: {str(error).partition(': ')[2]}") from None
        if not isinstance(model, Model):
            raise ModelFileError(f"member {name!r} is a bundle: bundles do not nest")
        models[name] = model
    first = models[series[0][1]] if series else None
    for name, model in models.items():
        if (model.method != manifest["method"] or first is None
                or model.channels_ != first.channels_
                or model.time_column_ != first.time_column_):
            raise ModelFileError(f"member {name!r} is not a {str(manifest['method'])[:40]} "
                                 "model of the same channels as the others")
    bundle = ModelBundle.__new__(ModelBundle)
    bundle.method, bundle.unseen, bundle.jobs = manifest["method"], manifest["unseen"], 1
    bundle.series_column = str(manifest["series_column"])
    bundle.model_kwargs = {}
    bundle.models_ = {sid: models[member] for sid, member in series}
    bundle.fallback_ = models[fallback] if fallback is not None else None
    return bundle


def _model_bytes(model: Any) -> bytes:
    buffer = _io.BytesIO()
    model.save(buffer)
    return buffer.getvalue()
