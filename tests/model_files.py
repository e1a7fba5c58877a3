"""Making damaged and hostile ``.vigil`` files, as bytes, for the persistence tests (and the
fuzzer in ``scripts/fuzz_model_loader.py``)."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from collections.abc import Callable

import numpy as np

from vigil.persist._manifest import checksum

MANIFEST = "manifest.json"


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def pack(parts: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, blob in parts.items():
            archive.writestr(name, blob)
    return buffer.getvalue()


def manifest_of(data: bytes) -> dict:
    return json.loads(members(data)[MANIFEST])


def sign(manifest: dict) -> dict:
    """The manifest with its checksum recomputed (version 2), as an editor would."""
    if manifest.get("format_version") in (2, 3):
        manifest["checksum"] = checksum(manifest)
    return manifest


def with_manifest(data: bytes, change: Callable[[dict], object], resign: bool = True) -> bytes:
    """``data`` with ``change(manifest)`` applied (in place), re-signed unless ``resign`` is
    False (then a version 2 file no longer matches its checksum)."""
    parts = members(data)
    manifest = json.loads(parts[MANIFEST])
    change(manifest)
    parts[MANIFEST] = json.dumps(sign(manifest) if resign else manifest).encode()
    return pack(parts)


def with_text_manifest(data: bytes, text: str | bytes) -> bytes:
    parts = members(data)
    parts[MANIFEST] = text.encode() if isinstance(text, str) else text
    return pack(parts)


def entry(manifest: dict, name: str) -> dict | None:
    if manifest.get("format_version") in (2, 3):
        return next((m for m in manifest["members"] if m["name"] == name), None)
    return next((m for m in manifest.get("arrays", {}).values() if m["member"] == name), None)


def with_member(data: bytes, name: str, blob: bytes | None, key: str | None = None) -> bytes:
    """``data`` with member ``name`` replaced by ``blob`` (added if new, removed if None) and
    the manifest updated to match (checksums, sizes, signature): damage a loader must find
    by looking at the content itself."""
    parts = members(data)
    manifest = json.loads(parts[MANIFEST])
    old = entry(manifest, name)
    if blob is None:
        parts.pop(name, None)
        if manifest.get("format_version") in (2, 3):
            manifest["members"].remove(old)
        else:
            manifest["arrays"] = {k: v for k, v in manifest["arrays"].items() if v is not old}
    else:
        parts[name] = blob
        digest = hashlib.sha256(blob).hexdigest()
        if manifest.get("format_version") in (2, 3):
            if old is None:
                old = {"name": name, "kind": "npy"}
                manifest["members"].append(old)
            old.update(size=len(blob), sha256=digest)
        else:
            key = key or name.removeprefix("detector/").removesuffix(".npy")
            manifest["arrays"].setdefault(key, {"member": name})["sha256"] = digest
    parts[MANIFEST] = json.dumps(sign(manifest)).encode()
    return pack(parts)


def with_array(data: bytes, key: str, value) -> bytes:
    return with_member(data, f"detector/{key}.npy", npy(value), key)


def npy(value) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(value), allow_pickle=False)
    return buffer.getvalue()


def npy_header(descr: str, shape: tuple, fortran: bool = False) -> bytes:
    """An .npy header alone (no data), claiming any dtype and shape."""
    text = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    text += " " * (63 - (len(text) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin-1")


def patch_entry(data: bytes, name: str, *, flag_bits: int | None = None,
                method: int | None = None, file_size: int | None = None,
                crc: int | None = None) -> bytes:
    """``data`` with the zip headers of member ``name`` (local and central) rewritten: the
    sizes and flags a hostile tool can claim without changing the member's bytes."""
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(name)
    central = _central_offset(out, name)
    for base, local in ((info.header_offset, True), (central, False)):
        shift = 0 if local else 2  # the central record has "version made by" first
        if flag_bits is not None:
            struct.pack_into("<H", out, base + 6 + shift, flag_bits)
        if method is not None:
            struct.pack_into("<H", out, base + 8 + shift, method)
        if crc is not None:
            struct.pack_into("<L", out, base + 14 + shift, crc)
        if file_size is not None:
            struct.pack_into("<L", out, base + 22 + shift, file_size)
    return bytes(out)


def _central_offset(data: bytearray, name: str) -> int:
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + length].decode("utf-8", "replace") == name:
            return at
        at = data.find(b"PK\x01\x02", at + 4)
    raise KeyError(name)


def with_bomb(data: bytes, name: str, prefix: bytes, zeros: int) -> bytes:
    """``data`` with member ``name`` replaced by ``prefix`` and then ``zeros`` zero bytes,
    deflated (a few MB for a GB), the manifest left as it was."""
    parts = members(data)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=1) as archive:
        for member, blob in parts.items():
            if member != name:
                archive.writestr(member, blob)
        with archive.open(name, "w", force_zip64=zeros > 2**31) as out:
            out.write(prefix)
            chunk = bytes(2**24)
            for start in range(0, zeros, len(chunk)):
                out.write(chunk[: min(len(chunk), zeros - start)])
    return buffer.getvalue()
