"""Reading a model archive without trusting a byte of it: the zip's directory is sized before
``zipfile`` parses it, only stored or deflated, unencrypted members with the names vigil writes
are opened, every member is read in chunks under a limit (never trusting the sizes a header
claims), JSON is parsed with a depth limit, and ``.npy`` arrays are parsed by a strict reader
that accepts plain numbers only and checks an array's header before reading its data.

Every refusal is a :class:`ModelFileError` without the file's name (``load`` adds it).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import zipfile
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from vigil.errors import ModelFileError

#: Bytes all members of one model file may decompress to, together (and the largest file).
TOTAL_BUDGET = 2 * 2**30
#: More members than this, or a bigger zip directory, is not a vigil model file.
MAX_MEMBERS = 4096
MAX_DIRECTORY_BYTES = 4 * 2**20
MAX_MANIFEST_BYTES = 4 * 2**20
#: Nesting of a manifest: {manifest: {threshold: {state: [window]}}} is 4 deep.
MAX_JSON_DEPTH = 32
CHUNK = 2**20
COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
#: A member name vigil writes: a path of plain words, no "..", no root, no backslash.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*$")
#: The dtypes a member may hold, as np.save writes them: bool, int, uint, float16/32/64.
_DESCR = re.compile(r"^[<>|=]?(b1|i[1248]|u[1248]|f[248])$")
_HEADER = re.compile(
    r"^\{'descr': '([^']{1,8})', 'fortran_order': (True|False), 'shape': \(((?:\d{1,19}, ?)*"
    r"(?:\d{1,19})?)\), *\} *\n?$")


def open_source(source: Any) -> tuple[IO[bytes], str]:
    """A seekable binary stream of ``source`` (a path, bytes or a binary file object) and its
    name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > TOTAL_BUDGET:
            raise ModelFileError("larger than any vigil model file")
        return io.BytesIO(data), "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if not os.path.exists(name):
            raise ModelFileError("no such model file")
        if os.path.isdir(name):
            raise ModelFileError("is a directory, not a model file")
        if os.path.getsize(name) > TOTAL_BUDGET:
            raise ModelFileError("larger than any vigil model file")
        return open(name, "rb"), name  # noqa: SIM115 (closed by load)
    if hasattr(source, "read"):
        if not isinstance(source.read(0), bytes):
            raise ModelFileError("the file object must be opened in binary mode ('rb')")
        if _seekable(source):
            return source, str(getattr(source, "name", "<file>"))
        return open_source(source.read(TOTAL_BUDGET + 1))[0], str(getattr(source, "name",
                                                                          "<file>"))
    raise ModelFileError(f"cannot read a model from a {type(source).__name__}: give a path, "
                         "bytes or a binary file object")


def _seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def check_directory(stream: IO[bytes]) -> None:
    """Refuse a zip whose directory is too large to be a vigil model's, from its end record,
    before ``zipfile`` builds an object per entry."""
    size = stream.seek(0, os.SEEK_END)
    tail_start = max(0, size - (22 + 65535))
    stream.seek(tail_start)
    tail = stream.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise ModelFileError("not a vigil model file, or truncated (no zip directory)")
    entries, directory = struct.unpack("<10xHL6x", tail[at : at + 22])[0:2]
    locator = tail[at - 20 : at] if at >= 20 else b""
    if locator[:4] == b"PK\x06\x07":  # zip64: the real counts are in the zip64 end record
        (offset,) = struct.unpack("<8xQ4x", locator)
        if offset > size - 56:
            raise ModelFileError("not a vigil model file, or truncated (bad zip64 record)")
        stream.seek(offset)
        record = stream.read(56)
        if record[:4] != b"PK\x06\x06":
            raise ModelFileError("not a vigil model file, or truncated (bad zip64 record)")
        entries, directory = struct.unpack("<32xQQ8x", record)
    if entries > MAX_MEMBERS or directory > MAX_DIRECTORY_BYTES:
        raise ModelFileError(f"its zip directory lists {entries} members in {directory} bytes: "
                             "not a vigil model file")
    stream.seek(0)


def check_entries(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by name: safe names, no duplicates, unencrypted, and compressed
    only by a method vigil writes."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename
        if not SAFE_NAME.match(name) or ".." in name.split("/"):
            raise ModelFileError(f"unsafe member name {name[:80]!r} (a path outside the "
                                 "archive, absolute or with odd characters); refusing it")
        if name in members:
            raise ModelFileError(f"member {name!r} appears twice; refusing the file")
        if info.flag_bits & 0x41:
            raise ModelFileError(f"member {name!r} is encrypted; vigil model files never are")
        if info.compress_type not in COMPRESSION:
            raise ModelFileError(f"member {name!r} uses compression method "
                                 f"{info.compress_type}; vigil writes only stored or deflate")
        members[name] = info
    return members


class Capped:
    """A member's stream that refuses to yield more than ``limit`` bytes, hashing them."""

    def __init__(self, stream: IO[bytes], name: str, limit: int) -> None:
        self.stream, self.name, self.limit = stream, name, limit
        self.count = 0
        self.digest = hashlib.sha256()

    def read(self, n: int) -> bytes:
        data = self.stream.read(min(n, CHUNK, self.limit + 1 - self.count))
        self.count += len(data)
        if self.count > self.limit:
            raise ModelFileError(f"member {self.name!r} holds more than the {self.limit} bytes "
                                 "it is allowed; refusing it")
        self.digest.update(data)
        return data

    def exactly(self, n: int, what: str) -> bytes:
        parts, left = [], n
        while left:
            data = self.read(left)
            if not data:
                raise ModelFileError(f"member {self.name!r} ends inside its {what}: truncated")
            parts.append(data)
            left -= len(data)
        return b"".join(parts)

    def end(self) -> None:
        """Read to the end: nothing may follow what was parsed (the zip's CRC is checked)."""
        if self.read(1):
            raise ModelFileError(f"member {self.name!r} has data after its end; refusing it")


def read_all(member: Capped) -> bytes:
    parts = []
    while data := member.read(CHUNK):
        parts.append(data)
    return b"".join(parts)


def parse_json(data: bytes, name: str) -> Any:
    """JSON of at most ``MAX_JSON_DEPTH`` levels, without duplicate keys."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{name} is damaged (not UTF-8: {exc.reason})") from None
    if _depth(text) > MAX_JSON_DEPTH:
        raise ModelFileError(f"{name} nests deeper than {MAX_JSON_DEPTH} levels: not a vigil "
                             "manifest")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(f"{name} is damaged ({str(exc)[:120]})") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return out


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _depth(text: str) -> int:
    """The deepest nesting of brackets outside strings (an upper bound for damaged text)."""
    code = np.frombuffer(_STRINGS.sub('""', text).encode("utf-8", "replace"), dtype=np.uint8)
    steps = np.isin(code, (ord("["), ord("{"))).astype(np.int64)
    steps -= np.isin(code, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max()) if steps.size else 0


def read_npy(member: Capped, check: Callable[[np.dtype, tuple[int, ...]], None]) -> np.ndarray:
    """A plain numeric array from an ``.npy`` member: the header is parsed strictly (np.save's
    own layout; no pickle, no structured dtype, no ``.npz``), ``check(dtype, shape)`` and the
    member's limit judge the array before its data is read."""
    magic = member.exactly(8, "header")
    if magic[:6] != b"\x93NUMPY" or magic[6:] not in (b"\x01\x00", b"\x02\x00"):
        what = "a zip (.npz)" if magic[:2] == b"PK" else "not an .npy array"
        raise ModelFileError(f"member {member.name!r} is {what}; only plain numeric .npy arrays "
                             "are allowed")
    size_format = "<H" if magic[6] == 1 else "<I"
    (length,) = struct.unpack(size_format, member.exactly(struct.calcsize(size_format), "header"))
    if length > 4096:
        raise ModelFileError(f"member {member.name!r} has an .npy header of {length} bytes: "
                             "not a plain numeric array")
    header = _HEADER.match(member.exactly(length, "header").decode("latin-1"))
    if header is None or not _DESCR.match(header.group(1)):
        raise ModelFileError(f"member {member.name!r} is not a plain numeric array (its .npy "
                             "header is not bool, integer or float of a known shape)")
    dtype = np.dtype(header.group(1))
    shape = tuple(int(n) for n in header.group(3).replace(" ", "").split(",") if n)
    count = 1
    for n in shape:
        count *= n
    nbytes = count * dtype.itemsize
    if nbytes > member.limit - member.count:
        raise ModelFileError(f"member {member.name!r} claims an array of shape {shape}, "
                             f"{nbytes} bytes: more than its member may hold; refusing it")
    check(dtype, shape)
    data = bytearray(nbytes)
    view, done = memoryview(data), 0
    while done < nbytes:
        chunk = member.read(nbytes - done)
        if not chunk:
            raise ModelFileError(f"member {member.name!r} ends inside its data: truncated")
        view[done : done + len(chunk)] = chunk
        done += len(chunk)
    member.end()
    order = "F" if header.group(2) == "True" else "C"
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order=order)
    return array.astype(dtype.newbyteorder("="), order="C", copy=False)
