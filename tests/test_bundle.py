"""One model per series: each series judged against its own normal, saved in one file."""

import io

import numpy as np
import pandas as pd
import pytest

import vigil
from vigil.errors import DataError, ModelFileError
from vigil.io import from_frame


def fleet(rows=600, seed=0):
    """Three machines with very different normals (levels 10, 100, 1000; noise 1, 5, 20), each
    with a jump that is small against the fleet but large against its own noise."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, (level, noise) in enumerate([(10, 1), (100, 5), (1000, 20)]):
        value = level + rng.normal(0, noise, rows)
        value[450 + 10 * k: 455 + 10 * k] += 8 * noise
        frames.append(pd.DataFrame({
            "time": pd.date_range("2024-01-01", periods=rows, freq="min"),
            "machine": f"m{k}", "value": value}))
    return pd.concat(frames).sort_values(["time", "machine"], kind="stable").reset_index(drop=True)


def test_each_series_is_scored_by_its_own_model():
    data = fleet()
    train = data.groupby("machine").head(300)
    bundle = vigil.ModelBundle("robust_zscore", series_column="machine").fit(train)
    result = bundle.detect(data)
    assert list(bundle.models_) == ["m0", "m1", "m2"]
    for name, model in bundle.models_.items():  # equal to that series' own model, row by row
        rows = data[data["machine"] == name]
        alone = model.detect(rows.drop(columns="machine"))
        assert np.array_equal(result.loc[rows.index, "score"], alone["score"])
        assert np.array_equal(result.loc[rows.index, "is_anomaly"], alone["is_anomaly"])
    # every machine's jump is caught; one model for the fleet misses the small machines' jumps
    caught = result[result["is_anomaly"]].groupby("machine").size()
    assert set(caught.index) == {"m0", "m1", "m2"}
    pooled = vigil.Model("robust_zscore", series_column="machine").fit(train).detect(data)
    assert pooled[pooled["is_anomaly"]]["machine"].nunique() < 3
    assert result["event"].max() == result.loc[result["event"] > 0].groupby(
        "machine")["event"].nunique().sum()  # numbered through the series


def test_a_bundle_saves_to_one_file_and_loads_back_identical(tmp_path):
    data = fleet()
    bundle = vigil.ModelBundle("subsequence_pca", series_column="machine", window=20,
                               unseen="fallback").fit(data.groupby("machine").head(300))
    bundle.save(tmp_path / "fleet.vigil")
    again = vigil.load(tmp_path / "fleet.vigil")
    assert isinstance(again, vigil.ModelBundle) and again.fallback_ is not None
    pd.testing.assert_frame_equal(again.detect(data), bundle.detect(data))
    buffer = io.BytesIO()
    bundle.save(buffer)
    assert list(vigil.load(buffer.getvalue()).models_) == ["m0", "m1", "m2"]


def test_an_unseen_series_is_refused_or_scored_by_the_fallback():
    data = fleet()
    train = data[data["machine"] != "m2"].groupby("machine").head(300)
    strict = vigil.ModelBundle("zscore", series_column="machine").fit(train)
    with pytest.raises(DataError, match="series 'm2' was not seen when the bundle was fitted"):
        strict.detect(data)
    lenient = vigil.ModelBundle("zscore", series_column="machine", unseen="fallback").fit(train)
    result = lenient.detect(data)
    m2 = data["machine"] == "m2"
    assert np.array_equal(result.loc[m2, "score"],
                          lenient.fallback_.detect(data[m2])["score"])


def test_per_series_fits_run_in_a_process_pool_with_the_same_models():
    train = fleet().groupby("machine").head(300)
    one = vigil.ModelBundle("iqr", series_column="machine").fit(train)
    pooled = vigil.ModelBundle("iqr", series_column="machine", jobs=2).fit(train)
    for name in one.models_:
        assert one.models_[name].threshold_ == pooled.models_[name].threshold_


def test_a_tampered_bundle_is_refused(tmp_path):
    import zipfile

    data = fleet()
    vigil.ModelBundle("zscore", series_column="machine").fit(data).save(tmp_path / "b.vigil")
    with zipfile.ZipFile(tmp_path / "b.vigil") as src, \
            zipfile.ZipFile(tmp_path / "bad.vigil", "w") as dst:
        for item in src.infolist():
            body = src.read(item)
            if item.filename == "models/00001.vigil":
                other = io.BytesIO()
                vigil.Model("zscore").fit(data.drop(columns="machine")).save(other)
                body = other.getvalue()  # a valid model, but not the one saved
            dst.writestr(item, body)
    with pytest.raises(ModelFileError, match="member 'models/00001.vigil' (holds more|does not)"):
        vigil.load(tmp_path / "bad.vigil")


def test_a_bundle_needs_a_series_column():
    with pytest.raises(Exception, match="needs series_column"):
        vigil.ModelBundle("zscore", series_column=None)


def _rewritten(path, target, edit, extra=None):
    """The bundle at ``path`` with its manifest edited (and its checksum recomputed, as a
    deliberate forger would) and ``extra`` members added."""
    import json
    import zipfile

    from vigil.persist._manifest import checksum

    with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w") as dst:
        manifest = json.loads(src.read("manifest.json"))
        edit(manifest)
        manifest.pop("checksum")
        manifest["checksum"] = checksum(manifest)
        dst.writestr("manifest.json", json.dumps(manifest))
        for item in src.infolist():
            if item.filename != "manifest.json":
                dst.writestr(item, src.read(item))
        for name, body in (extra or {}).items():
            dst.writestr(name, body)
    return target


def test_a_forged_bundle_manifest_is_refused_in_one_line(tmp_path):
    import hashlib

    data = fleet()
    vigil.ModelBundle("zscore", series_column="machine").fit(data).save(tmp_path / "b.vigil")
    twice = _rewritten(tmp_path / "b.vigil", tmp_path / "twice.vigil",
                       lambda m: m["series"][1].__setitem__(1, m["series"][0][1]))
    with pytest.raises(ModelFileError, match="must name each member once"):
        vigil.load(twice)
    nested = (tmp_path / "b.vigil").read_bytes()

    def add_nested(m):
        m["members"].append({"name": "models/00009.vigil", "kind": "model", "size": len(nested),
                             "sha256": hashlib.sha256(nested).hexdigest()})
        m["series"].append(["m9", "models/00009.vigil"])

    inner = _rewritten(tmp_path / "b.vigil", tmp_path / "nested.vigil", add_nested,
                       {"models/00009.vigil": nested})
    with pytest.raises(ModelFileError, match="bundles do not nest"):
        vigil.load(inner)
    code = _rewritten(tmp_path / "b.vigil", tmp_path / "code.vigil", lambda m: None,
                      {"models/evil.py": b"import os"})
    with pytest.raises(ModelFileError, match="unexpected member 'models/evil.py'"):
        vigil.load(code)
