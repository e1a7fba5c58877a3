"""Remake the bundled sample data: ``python scripts/make_sample_data.py`` writes
``src/vigil/data/sensors.csv`` from ``vigil.sample_data.generate()`` (seeded, so the same file
comes out every time). Run it after changing the generator; ``tests/test_sample_data.py`` fails
until the file matches again."""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vigil import sample_data  # noqa: E402

TARGET = ROOT / "src" / "vigil" / "data" / "sensors.csv"


def main() -> int:
    written = sample_data.write(TARGET)
    size_kb = written.stat().st_size / 1024
    print(f"wrote {written.relative_to(ROOT)} ({size_kb:.0f} KiB, {len(sample_data.EVENTS)} events)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
