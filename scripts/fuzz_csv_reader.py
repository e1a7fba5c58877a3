"""Fuzz the CSV reader: mutate valid CSV files and check that ``vigil.read`` either returns a
Dataset with one row per data line, or raises ``vigil.errors.DataError`` -- never another
exception, and never a raw pandas/numpy warning (only ``DataWarning``).

Seeds are the heads (2 to 40 lines) of the SKAB files in /work/shared/datasets/skab and of the
bundled src/vigil/data/sensors.csv. Each case applies 1 to 3 mutations: byte and bit flips,
deleted or doubled delimiters, stray or deleted quotes, other encodings (Latin-1, UTF-16, a BOM),
truncated and cut lines, duplicated, deleted and blank lines, '#' comments, a duplicated column
name, decimal commas, other delimiters and line endings, NUL and non-UTF-8 bytes, units and
thousands separators in cells, day-first dates.

    .venv/bin/python scripts/fuzz_csv_reader.py --seconds 180 --seed 1     # seeded random loop
    .venv/bin/python scripts/fuzz_csv_reader.py --seconds 180 --atheris    # coverage-guided

``--atheris`` needs ``pip install atheris`` (not a vigil dependency): it feeds the same mutations
through atheris' custom-mutator hook, so its coverage feedback picks which cases to grow. Failing
cases are written to --out (default /tmp/vigil-fuzz) as case-N.csv with case-N.txt saying what
went wrong; the exit code is 1 when there were any. A case is replayed with
``--replay /tmp/vigil-fuzz/case-3.csv``.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import random
import re
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

vigil = DataError = DataWarning = choose_delimiter = None  # imported by main(), instrumented


def _import_vigil() -> None:
    global vigil, DataError, DataWarning, choose_delimiter
    import vigil
    import vigil.io  # noqa: F401 - vigil imports its parts lazily: load them here
    from vigil.errors import DataError, DataWarning
    from vigil.readers_csv import choose_delimiter

SEED_FILES = [*sorted(Path("/work/shared/datasets/skab").glob("*.csv")),
              ROOT / "src" / "vigil" / "data" / "sensors.csv"]
_NEWLINE = re.compile(r"\r\n|\r|\n")


# ---------------------------------------------------------------- mutations (bytes -> bytes)


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _pos(rng: random.Random, data: bytes) -> int:
    return rng.randrange(len(data) + 1)


def byte_flip(rng, data):
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]


def bit_flip(rng, data):
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]


def _at_delimiter(rng, data, edit):
    spots = [m.start() for m in re.finditer(rb"[,;\t|]", data)]
    if not spots:
        return data
    i = rng.choice(spots)
    return edit(data, i)


def delete_delimiter(rng, data):
    return _at_delimiter(rng, data, lambda d, i: d[:i] + d[i + 1:])


def double_delimiter(rng, data):
    return _at_delimiter(rng, data, lambda d, i: d[:i + 1] + d[i:])


def insert_quote(rng, data):
    i = _pos(rng, data)
    return data[:i] + rng.choice([b'"', b"'", b'""']) + data[i:]


def quote_a_cell(rng, data):
    return _at_delimiter(rng, data, lambda d, i: d[:i + 1] + b'"' + d[i + 1:])


def delete_quote(rng, data):
    spots = [m.start() for m in re.finditer(rb'"', data)]
    return data if not spots else (lambda i: data[:i] + data[i + 1:])(rng.choice(spots))


def reencode(rng, data):
    text = data.decode("utf-8", errors="replace")
    kind = rng.choice(["latin1-late", "latin1-header", "utf16", "bom", "cp1252", "no-bom"])
    if kind == "latin1-late":
        lines = _lines(data)
        k = rng.randrange(len(lines))
        lines[k] = lines[k] + "caf\xe9 \xb0C".encode("latin-1")
        return b"\n".join(lines)
    if kind == "latin1-header":
        return text.replace(",", "\xb0,", 1).encode("latin-1", errors="replace")
    if kind == "utf16":
        return text.encode(rng.choice(["utf-16", "utf-16-le"]))
    if kind == "bom":
        return b"\xef\xbb\xbf" + data
    if kind == "cp1252":
        return (text + "\u20ac").encode("cp1252", errors="replace")
    return data.removeprefix(b"\xef\xbb\xbf")


def truncate(rng, data):
    return data[:_pos(rng, data)]


def cut_line(rng, data):
    lines = _lines(data)
    k = rng.randrange(len(lines))
    lines[k] = lines[k][:rng.randrange(len(lines[k]) + 1)]
    return b"\n".join(lines)


def duplicate_line(rng, data):
    lines = _lines(data)
    k = rng.randrange(len(lines))
    return b"\n".join(lines[:k + 1] + [lines[k]] + lines[k + 1:])


def delete_line(rng, data):
    lines = _lines(data)
    del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def blank_line(rng, data):
    lines = _lines(data)
    lines.insert(rng.randrange(len(lines) + 1), rng.choice([b"", b"   ", b"\t", b"\r", b",,"]))
    return b"\n".join(lines)


def comment_line(rng, data):
    lines = _lines(data)
    where = 0 if rng.random() < 0.7 else rng.randrange(len(lines) + 1)
    lines.insert(where, rng.choice([b"# exported by plant 7", b"#", b"# a,b;c", b"  # note"]))
    return b"\n".join(lines)


def duplicate_column(rng, data):
    lines = _lines(data)
    names = lines[0].split(b",")
    if len(names) > 2:
        names[rng.randrange(1, len(names))] = rng.choice(names)
    lines[0] = b",".join(names)
    return b"\n".join(lines)


def decimal_commas(rng, data):
    swapped = re.sub(rb"(\d)\.(\d)", rb"\1,\2", data.replace(b",", b";"))
    return swapped if rng.random() < 0.8 else re.sub(rb"(\d)\.(\d)", rb"\1,\2", data)


def other_delimiter(rng, data):
    return data.replace(b",", rng.choice([b";", b"\t", b"|", b" "]))


def line_endings(rng, data):
    return data.replace(b"\n", rng.choice([b"\r\n", b"\r", b"\n\n"]))


def odd_byte(rng, data):
    i = _pos(rng, data)
    return data[:i] + rng.choice([b"\x00", b"\xff", b"\xe9", b"\xc3", b"\x1a", b"\x0c"]) + data[i:]


def cell_text(rng, data):
    lines = _lines(data)
    k = rng.randrange(1, len(lines)) if len(lines) > 1 else 0
    cells = lines[k].split(b",")
    j = rng.randrange(len(cells))
    cells[j] = rng.choice([cells[j] + b" C", b'"4,899.5"', b"n/a", b"inf", b"-", b"1e400",
                           b"99999999999999999999999", b"TRUE", b"", b"2024-13-45"])
    lines[k] = b",".join(cells)
    return b"\n".join(lines)


def day_first(rng, data):
    return re.sub(rb"(\d{4})-(\d{2})-(\d{2})", rb"\3/\2/\1", data)


def json_content(rng, data):
    rows = list(csv.DictReader(data.decode("utf-8", errors="replace").splitlines()))[:5]
    return "\n".join(json.dumps(row) for row in rows).encode()


MUTATIONS = [byte_flip, bit_flip, delete_delimiter, double_delimiter, insert_quote, quote_a_cell,
             delete_quote, reencode, truncate, cut_line, duplicate_line, delete_line, blank_line,
             comment_line, duplicate_column, decimal_commas, other_delimiter, line_endings,
             odd_byte, cell_text, day_first, json_content]


def seeds() -> list[bytes]:
    found = []
    for path in SEED_FILES:
        with open(path, "rb") as handle:
            found.append(b"".join(handle.readline() for _ in range(41)))
    return found


def make_case(rng: random.Random, pool: list[bytes]) -> tuple[bytes, list[str]]:
    lines = rng.choice(pool).split(b"\n")
    data = b"\n".join(lines[:rng.randint(2, 40)]) + (b"\n" if rng.random() < 0.9 else b"")
    names = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        mutation = rng.choice(MUTATIONS)
        data, names = mutation(rng, data), names + [mutation.__name__]
    return data, names


# ---------------------------------------------------------------- the check


def expected_rows(data: bytes) -> int | None:
    """Data lines of the file, counted without vigil's reader (None: not checked)."""
    text = data.decode("utf-8-sig")
    if re.match(r"\s*[\[{]", text):
        return None  # read as JSON
    lines = [line for line in _NEWLINE.split(text) if line.strip()]
    while lines and lines[0].lstrip().startswith("#"):
        lines.pop(0)
    if '"' in text:  # quoted fields may span lines: count CSV records instead
        sep = choose_delimiter(lines[:50], ",")
        records = csv.reader(_NEWLINE.split(text.lstrip("\ufeff")), delimiter=sep)
        rows = [r for r in records if r and not (len(r) == 1 and not r[0].strip())]
        while rows and rows[0][0].lstrip().startswith("#"):
            rows.pop(0)
        return len(rows) - 1
    return len(lines) - 1


OUTCOMES: collections.Counter = collections.Counter()  # "read", or the kind of refusal
EXAMPLES: dict[str, str] = {}  # the first message of each kind of outcome


def _kind(message: str, work: Path | str = "") -> str:
    message = message.replace(str(work), "") if work else message
    return re.sub(r"\d+", "N", re.sub(r"'[^']*'|\"[^\"]*\"", "'...'", message))[:150]


def roles(rng: random.Random, data: bytes) -> dict[str, str]:
    """Sometimes a --time-column or --label-column, as a user might give them."""
    names = re.split(r"[,;\t|]", data.split(b"\n", 1)[0].decode("utf-8", "replace"))
    chosen = {}
    if rng.random() < 0.15:
        chosen["time_column"] = rng.choice(names).strip('"')
    if rng.random() < 0.15:
        chosen["label_column"] = "label"
    return chosen


def check(data: bytes, path: Path, given: dict[str, str] | None = None) -> str | None:
    """None when vigil behaved, else what went wrong."""
    path.write_bytes(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = vigil.read(path, **(given or {}))
            dataset.values(), dataset.missing_mask(), dataset.labels()
        except DataError as error:
            message = str(error)
            if "\n" in message or not message.startswith(str(path)):
                return f"DataError not one line naming the file: {message!r}"
            OUTCOMES[_kind(message, path)] += 1
            EXAMPLES.setdefault(_kind(message, path), message.replace(str(path), "case.csv"))
            dataset = None
        except Exception:  # noqa: BLE001 - that is the finding
            return f"raised (roles {given}) " + traceback.format_exc(limit=-3)
    leaked = [w for w in caught if not issubclass(w.category, DataWarning)]
    if leaked:
        return f"raw warning {leaked[0].category.__name__}: {leaked[0].message}"
    if dataset is not None:
        try:
            wanted = expected_rows(data)
        except (UnicodeDecodeError, csv.Error):
            wanted = None
        if wanted is not None and len(dataset.frame) != wanted:
            return f"{len(dataset.frame)} rows for {wanted} data lines"
        kind = "read: " + ", ".join(sorted({_kind(str(w.message), path).split(": ")[1][:40]
                                            for w in caught}))
        OUTCOMES[kind] += 1
        EXAMPLES.setdefault(kind, " | ".join(str(w.message).replace(str(path), "case.csv")
                                             for w in caught))
    return None


class Findings:
    def __init__(self, out: Path, work: Path) -> None:
        self.out, self.work, self.kinds, self.cases = out, work, collections.Counter(), 0
        self.verbose = False
        out.mkdir(parents=True, exist_ok=True)

    def add(self, data: bytes, names: list[str], problem: str) -> None:
        kind = _kind(problem.strip().splitlines()[-1], self.work)
        self.kinds[kind] += 1
        if self.kinds[kind] <= 3:  # a few examples of each kind
            n = sum(self.kinds.values())
            (self.out / f"case-{n}.csv").write_bytes(data)
            (self.out / f"case-{n}.txt").write_text(f"mutations: {names}\n{problem}\n")

    def report(self, elapsed: float) -> int:
        print(f"{self.cases} cases in {elapsed:.0f} s; outcomes (most common first):")
        for kind, count in OUTCOMES.most_common(60 if self.verbose else 12):
            print(f"  {count:6d}  {EXAMPLES[kind] if self.verbose else kind}")
        print(f"{sum(self.kinds.values())} findings")
        for kind, count in self.kinds.most_common():
            print(f"  {count:6d}  {kind}")
        return 1 if self.kinds else 0


def run_random(seconds: float, seed: int, findings: Findings, work: Path) -> None:
    rng, pool = random.Random(seed), seeds()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        data, names = make_case(rng, pool)
        findings.cases += 1
        problem = check(data, work / "case.csv", roles(rng, data))
        if problem:
            findings.add(data, names, problem)


def run_atheris(seconds: float, seed: int, findings: Findings, work: Path) -> None:
    import atheris

    pool, end = seeds(), time.monotonic() + seconds

    def mutator(data: bytes, max_size: int, mutation_seed: int) -> bytes:
        rng = random.Random(mutation_seed)
        if not data or rng.random() < 0.2:
            return make_case(rng, pool)[0][:max_size]
        if rng.random() < 0.3:
            return atheris.Mutate(data, max_size)
        return rng.choice(MUTATIONS)(rng, data)[:max_size]

    def target(data: bytes) -> None:
        if time.monotonic() > end:
            sys.stdout.flush()
            os._exit(findings.report(seconds))
        findings.cases += 1
        problem = check(data, work / "case.csv")
        if problem:
            findings.add(data, ["atheris"], problem)

    atheris.Setup([sys.argv[0], f"-seed={seed}", "-max_len=8192"], target,
                  custom_mutator=mutator)
    atheris.Fuzz()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--atheris", action="store_true", help="coverage-guided (pip install "
                        "atheris)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "vigil-fuzz")
    parser.add_argument("--verbose", action="store_true", help="list more kinds of outcome")
    parser.add_argument("--replay", type=Path, help="check one saved case and print the result")
    args = parser.parse_args()
    if args.atheris:
        import atheris

        with atheris.instrument_imports(include=["vigil"]):  # coverage of vigil's code only
            _import_vigil()
    else:
        _import_vigil()
    with tempfile.TemporaryDirectory() as folder:
        if args.replay:
            print(check(args.replay.read_bytes(), Path(folder) / "case.csv") or "ok")
            return 0
        findings, start = Findings(args.out, Path(folder)), time.monotonic()
        findings.verbose = args.verbose
        (run_atheris if args.atheris else run_random)(args.seconds, args.seed, findings,
                                                      Path(folder))
        return findings.report(time.monotonic() - start)


if __name__ == "__main__":
    raise SystemExit(main())
