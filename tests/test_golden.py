"""Golden model files: files saved by an earlier vigil still load and give the same scores.

Remade only on purpose by ``python scripts/make_golden_models.py``.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vigil

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
MODELS = sorted(p.stem for p in GOLDEN.glob("*.vigil"))


def test_every_registered_method_has_a_golden_file():
    assert {name.split("_window")[0] for name in MODELS} >= set(vigil.methods())


@pytest.mark.parametrize("name", MODELS)
def test_golden_model_gives_its_recorded_scores(name):
    model = vigil.load(GOLDEN / f"{name}.vigil")
    expected = pd.read_csv(GOLDEN / f"{name}.expected.csv")
    result = model.detect(GOLDEN / "input.csv")
    np.testing.assert_allclose(result["score"], expected["score"], rtol=1e-12, atol=1e-12)
    assert result["is_anomaly"].tolist() == expected["is_anomaly"].tolist()
