"""Golden model files: files saved by an earlier vigil still load and give the same scores.

The committed files are format version 1 (vigil 0.1.0, before format 2); each is also saved
again here as version 2 and must give the same scores. Remade only on purpose by
``python scripts/make_golden_models.py`` (which writes version 2, replacing the version 1 files).
"""

import io
import json
import zipfile

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vigil

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
MODELS = sorted(p.stem for p in GOLDEN.glob("*.vigil"))


def test_every_registered_method_has_a_golden_file():
    assert {name.split("_window")[0] for name in MODELS} >= set(vigil.methods())


def _same_scores(name, result, expected):
    # onnxruntime picks its float32 kernels by CPU, so a graph's last bits may differ elsewhere
    tolerance = 1e-5 if name in DEEP else 1e-12
    np.testing.assert_allclose(result["score"], expected["score"], rtol=tolerance,
                               atol=tolerance)
    assert result["is_anomaly"].tolist() == expected["is_anomaly"].tolist()


@pytest.mark.parametrize("name", MODELS)
def test_golden_model_gives_its_recorded_scores(name):
    model = vigil.load(GOLDEN / f"{name}.vigil")
    expected = pd.read_csv(GOLDEN / f"{name}.expected.csv")
    _same_scores(name, model.detect(GOLDEN / "input.csv"), expected)


#: Methods added after format 2: their golden files are version 2 (3 for the deep ones).
SINCE_FORMAT_2 = {"one_class_svm", "lof", "random_forest"}
DEEP = {"autoencoder", "vae", "transformer", "gan"}  # format 3: an ONNX graph


def test_the_golden_files_are_format_version_1():
    for name in sorted(set(MODELS) - SINCE_FORMAT_2 - DEEP):
        with zipfile.ZipFile(GOLDEN / f"{name}.vigil") as archive:
            assert json.loads(archive.read("manifest.json"))["format_version"] == 1, name


@pytest.mark.parametrize("name", MODELS)
def test_golden_model_saved_again_gives_its_recorded_scores(name):
    buffer = io.BytesIO()
    vigil.load(GOLDEN / f"{name}.vigil").save(buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        version = json.loads(archive.read("manifest.json"))["format_version"]
    assert version == (3 if name in DEEP else 2)
    model = vigil.load(buffer.getvalue())
    expected = pd.read_csv(GOLDEN / f"{name}.expected.csv")
    _same_scores(name, model.detect(GOLDEN / "input.csv"), expected)
