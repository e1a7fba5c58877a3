"""Fuzz the model loader: mutate valid model files and check that ``vigil.load`` either gives
a model (which then scores a few rows without an error outside vigil's own family) or refuses
the file with one line, a ``ModelFileError``. Anything else (another exception, a traceback, a
message of several lines) is a finding: the input is saved by libFuzzer as ``crash-*``.

The seeds are the golden files (format version 1, tests/fixtures/golden) and the same models
saved again (version 2). Each input picks a seed and one to three mutations of four kinds:

0. bytes: flip, set or splice bytes anywhere in the file (checksums then fail, mostly);
1. manifest: replace a value anywhere in the manifest with a hostile JSON value, re-signed;
2. array: replace a detector array (dtype, shape, values, or a hand-made ``.npy`` header),
   with the manifest's size, sha256 and checksum updated to match;
3. zip: rewrite a member's zip headers (flags, method, sizes, CRC), drop, rename or duplicate
   a member.

Run with atheris (coverage-guided; ``.venv/bin/pip install atheris``, not a vigil dependency)::

    .venv/bin/python scripts/fuzz_model_loader.py -max_total_time=300 -rss_limit_mb=4096

or, without atheris, as a plain random mutation fuzzer::

    .venv/bin/python scripts/fuzz_model_loader.py --plain --seconds 300 [--seed 0]
"""

from __future__ import annotations

import importlib
import io
import json
import random
import sys
import time
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # model_files: the tests' hostile-file helpers

try:
    import atheris
except ImportError:  # the plain fuzzer needs nothing else
    atheris = None

#: What the loader runs: instrumented for coverage (vigil imports its parts lazily, so they
#: are imported here, inside the instrumenting block), but for the numba kernels' modules
#: (numba cannot compile instrumented bytecode).
LOADER = ["vigil.model", "vigil.persist", "vigil.detectors.state", "vigil.thresholds",
          "vigil.alarms"] + [f"vigil.detectors.{name}" for name in (
              "auto", "statistical", "mahalanobis", "forecast", "subsequence_pca",
              "subsequence_kmeans", "modes", "isolation_forest", "stuck")]
NOT_INSTRUMENTED = ["vigil.detectors.matrix_profile", "vigil.detectors._forest_scoring"]

if atheris is not None and "--plain" not in sys.argv:
    for module in NOT_INSTRUMENTED:
        importlib.import_module(module)
    with atheris.instrument_imports(include=["vigil"]):
        import vigil
        from vigil.errors import ModelFileError, VigilError

        for module in LOADER:
            importlib.import_module(module)
else:
    import vigil
    from vigil.errors import ModelFileError, VigilError

import model_files as mf  # noqa: E402

GOLDEN = ROOT / "tests" / "fixtures" / "golden"
HOSTILE = [None, True, 0, -1, 1, 2, 3, 2**31, 2**63, 10**30, 0.0, -0.0, 1e300, -1e300, 1e-300,
           float("nan"), float("inf"), float("-inf"), "", "1", "auto", "../x", "\n", [], {},
           [1, 2], {"a": 1}, "detector/center_.npy"]


def seeds() -> list[bytes]:
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(GOLDEN.glob("*.vigil")):
            found.append(path.read_bytes())
            buffer = io.BytesIO()
            vigil.load(path).save(buffer)
            found.append(buffer.getvalue())
    return found


SEEDS = seeds()
ROWS = np.loadtxt(GOLDEN / "input.csv", delimiter=",", skiprows=1, usecols=(1, 2))[:150]


class Plain:
    """atheris.FuzzedDataProvider's calls used here, from a random.Random."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def ConsumeIntInRange(self, low: int, high: int) -> int:  # noqa: N802 (atheris' names)
        return self.rng.randint(low, high)

    def ConsumeBytes(self, n: int) -> bytes:  # noqa: N802
        return self.rng.randbytes(self.rng.randint(0, n))

    def ConsumeRegularFloat(self) -> float:  # noqa: N802
        return self.rng.choice([self.rng.uniform(-1e6, 1e6), 10 ** self.rng.uniform(-300, 300)])


def pick(fdp, options):
    return options[fdp.ConsumeIntInRange(0, len(options) - 1)]


def mutate_bytes(fdp, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        at = fdp.ConsumeIntInRange(0, max(0, len(out) - 1))
        how = fdp.ConsumeIntInRange(0, 2)
        if how == 0 and out:
            out[at] ^= 1 << fdp.ConsumeIntInRange(0, 7)
        elif how == 1 and out:
            out[at] = fdp.ConsumeIntInRange(0, 255)
        else:
            out[at:at + fdp.ConsumeIntInRange(0, 16)] = fdp.ConsumeBytes(16)
    return bytes(out)


def hostile_value(fdp):
    if fdp.ConsumeIntInRange(0, 3) == 0:
        return fdp.ConsumeRegularFloat()
    value = pick(fdp, HOSTILE)
    return json.loads(json.dumps(value)) if not isinstance(value, float) else value


def mutate_manifest(fdp, data: bytes) -> bytes:
    def change(manifest):
        node = manifest
        for _ in range(fdp.ConsumeIntInRange(0, 4)):
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = pick(fdp, keys)
            if not isinstance(node[key], (dict, list)) or fdp.ConsumeIntInRange(0, 2) == 0:
                node[key] = hostile_value(fdp)
                return
            node = node[key]
        if isinstance(node, dict):
            node[pick(fdp, ["method", "params", "x", "format_version", "kind"])] = hostile_value(fdp)
        elif isinstance(node, list):
            node.append(hostile_value(fdp))
    return mf.with_manifest(data, change, resign=fdp.ConsumeIntInRange(0, 7) > 0)


def mutate_array(fdp, data: bytes) -> bytes:
    names = sorted(n for n in mf.members(data) if n.endswith(".npy"))
    name = pick(fdp, names)
    value = np.load(io.BytesIO(mf.members(data)[name]))
    how = fdp.ConsumeIntInRange(0, 5)
    if how == 0:  # another dtype
        value = value.astype(pick(fdp, ["f4", "f8", "i1", "i8", "u8", "?", "f2", ">f8"]))
    elif how == 1:  # another shape
        size = fdp.ConsumeIntInRange(0, 64)
        shape = pick(fdp, [(), (size,), (size, 2), (2, size), (1, size, 3), (value.size,)])
        value = np.resize(value, shape) if value.size else np.zeros(shape)
    elif how == 2 and value.size:  # hostile values
        flat = value.astype("f8").ravel()
        flat[fdp.ConsumeIntInRange(0, flat.size - 1)] = pick(
            fdp, [np.nan, np.inf, -np.inf, 0.0, -1.0, 1e300, -1e300, 2.0**63, 1e-300])
        value = flat.reshape(value.shape).astype(value.dtype) if value.dtype.kind == "f" else flat
    elif how == 3:  # a hand-made header claiming anything
        blob = mf.npy_header(pick(fdp, ["<f8", "|O", "<i8", "<c16", "V8", "<f8"]),
                             pick(fdp, [(), (2,), (10**12,), (2**62, 4), (0,)]),
                             fortran=bool(fdp.ConsumeIntInRange(0, 1))) + fdp.ConsumeBytes(64)
        return mf.with_member(data, name, blob)
    elif how == 4:  # a new array under any name
        return mf.with_member(data, pick(fdp, ["detector/_score.npy", "detector/m9.x_.npy",
                                               "detector/m1.center_.npy", "detector/fit.npy",
                                               "detector/window_.npy", "detector/use_.npy"]),
                              mf.npy(value))
    else:  # dropped
        return mf.with_member(data, name, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mf.with_member(data, name, mf.npy(value))


def mutate_zip(fdp, data: bytes) -> bytes:
    parts = mf.members(data)
    name = pick(fdp, sorted(parts))
    how = fdp.ConsumeIntInRange(0, 4)
    if how == 0:
        return mf.patch_entry(data, name, flag_bits=pick(fdp, [1, 8, 0x40, 0x800, 0]),
                              method=pick(fdp, [0, 8, 12, 14, 99, None]))
    if how == 1:
        size = pick(fdp, [0, 1, 2**31 - 1, 2**32 - 1, fdp.ConsumeIntInRange(0, 10**6)])
        return mf.patch_entry(data, name, file_size=size,
                              crc=pick(fdp, [None, 0, fdp.ConsumeIntInRange(0, 2**32 - 1)]))
    if how == 2:
        parts[pick(fdp, ["../" + name, "/" + name, name + "/", name.upper(), "x"])] = \
            parts.pop(name)
    elif how == 3:
        del parts[name]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            buffer = io.BytesIO(data)
            with zipfile.ZipFile(buffer, "a") as archive:
                archive.writestr(name, parts[name][: fdp.ConsumeIntInRange(0, 200)])
            return buffer.getvalue()
    return mf.pack(parts, pick(fdp, [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED]))


MUTATIONS = (mutate_bytes, mutate_manifest, mutate_array, mutate_zip)


OUTCOMES: Counter = Counter()


def check(data: bytes) -> None:
    """The property: load gives a model that scores, or refuses with one line."""
    try:
        model = vigil.load(data)
    except ModelFileError as exc:
        assert "\n" not in str(exc), f"a refusal of several lines: {exc}"
        OUTCOMES["refused: " + _gist(str(exc))] += 1
        return
    try:
        model.score(ROWS)
        OUTCOMES["loaded and scored"] += 1
    except VigilError as exc:
        OUTCOMES["loaded, scoring refused: " + _gist(str(exc))] += 1


def _gist(message: str) -> str:
    """A refusal's kind: its words without names and numbers."""
    words = message.split(": ", 1)[-1].split()
    return " ".join(w for w in words[:7] if not any(c.isdigit() or c in "'<" for c in w))


def one_input(fdp) -> None:
    data = pick(fdp, SEEDS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(fdp.ConsumeIntInRange(1, 3)):  # mutations in a row reach deeper
            try:
                data = MUTATIONS[fdp.ConsumeIntInRange(0, len(MUTATIONS) - 1)](fdp, data)
            except Exception:  # noqa: BLE001 (the helpers are not the code under test)
                break  # the mutation did not apply (e.g. the data is no longer a zip)
        check(data)


def test_one_input(data: bytes) -> None:
    one_input(atheris.FuzzedDataProvider(data))


def plain(seconds: float, seed: int) -> None:
    rng, tried, start = random.Random(seed), 0, time.monotonic()
    while time.monotonic() - start < seconds:
        state = rng.getstate()
        try:
            one_input(Plain(rng))
        except Exception:
            print(f"finding after {tried} inputs (random state saved to fuzz-crash.json)")
            Path("fuzz-crash.json").write_text(json.dumps(state))
            raise
        tried += 1
    print(f"{tried} inputs in {seconds:.0f} s, no finding; outcomes:")
    for outcome, count in OUTCOMES.most_common():
        print(f"{count:8d}  {outcome}")


if __name__ == "__main__":
    if atheris is None or "--plain" in sys.argv:
        args = sys.argv[1:]
        get = lambda flag, default: type(default)(args[args.index(flag) + 1]) if flag in args \
            else default  # noqa: E731
        plain(get("--seconds", 60.0), get("--seed", 0))
    else:
        atheris.Setup(sys.argv, test_one_input)
        atheris.Fuzz()
