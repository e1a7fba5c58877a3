"""The .vigil model file: round trips exactly (from a path, bytes or a file object), writes
format version 2, and refuses hostile or damaged files without running anything from them.
More kinds of damage, one test each: tests/test_persist_hostile.py."""

import hashlib
import io
import json
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest

import vigil
from model_files import manifest_of, sign
from vigil.errors import ConfigError, ModelFileError


@pytest.fixture
def model_file(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"temperature": rng.normal(20, 1, 500), "pressure": rng.normal(1013, 3, 500)})
    path = tmp_path / "model.vigil"
    vigil.Model("robust_zscore").fit(frame).save(path)
    return path, frame


def rewrite(path, change):
    """Copy the archive member by member, letting ``change(name, data)`` alter or drop each."""
    with zipfile.ZipFile(path) as src:
        members = [(n, src.read(n)) for n in src.namelist()]
    with zipfile.ZipFile(path, "w") as dst:
        for name, data in members:
            result = change(name, data)
            if result is not None:
                dst.writestr(*result)


def test_round_trip_gives_identical_scores(model_file):
    path, frame = model_file
    model = vigil.load(path)
    np.testing.assert_array_equal(model.score(frame), vigil.Model("robust_zscore").fit(frame).score(frame))
    assert model.channels_ == ["temperature", "pressure"]


def test_manifest_says_what_the_model_is(model_file):
    path, _ = model_file
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        blobs = {name: archive.read(name) for name in archive.namelist()}
    assert manifest["format_version"] == 2 and manifest["kind"] == "model"
    assert manifest["method"] == "robust_zscore"
    assert manifest["threshold"]["name"] == "pot"
    assert manifest["training"]["rows"] == 500
    assert [m["name"] for m in manifest["members"]] == [
        "detector/n_channels_.npy", "detector/center_.npy", "detector/scale_.npy"]
    for member in manifest["members"]:
        assert member["kind"] == "npy"
        assert member["size"] == len(blobs[member["name"]])
        assert member["sha256"] == hashlib.sha256(blobs[member["name"]]).hexdigest()
    assert manifest["checksum"] == sign(dict(manifest))["checksum"]


def test_load_takes_bytes_and_file_objects_and_save_writes_to_one(model_file):
    path, frame = model_file
    expected = vigil.load(path).score(frame)
    data = path.read_bytes()
    np.testing.assert_array_equal(vigil.load(data).score(frame), expected)
    np.testing.assert_array_equal(vigil.load(io.BytesIO(data)).score(frame), expected)
    with open(path, "rb") as handle:
        np.testing.assert_array_equal(vigil.load(handle).score(frame), expected)
    buffer = io.BytesIO()
    vigil.load(data).save(buffer)  # e.g. to broadcast the bytes on Spark
    np.testing.assert_array_equal(vigil.load(buffer.getvalue()).score(frame), expected)
    assert manifest_of(buffer.getvalue())["format_version"] == 2


def test_a_non_json_parameter_is_refused_at_save_in_one_line(model_file, tmp_path):
    path, _ = model_file
    model = vigil.load(path)
    model.params["window"] = float("nan")
    with pytest.raises(ConfigError, match="cannot save the model: .*params"):
        model.save(tmp_path / "nan.vigil")
    assert not (tmp_path / "nan.vigil").exists()


def test_truncated_file_is_refused(model_file):
    path, _ = model_file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        vigil.load(path)


def test_tampered_array_is_refused(model_file):  # a member's sha256 does not match
    path, _ = model_file

    def tamper(name, data):
        if name.endswith("scale_.npy"):
            buffer = bytearray(data)
            buffer[-1] ^= 0xFF
            return name, bytes(buffer)
        return name, data

    rewrite(path, tamper)
    with pytest.raises(ModelFileError, match="does not match its checksum"):
        vigil.load(path)


def test_newer_format_is_refused(model_file):
    path, _ = model_file

    def bump(name, data):
        if name == "manifest.json":
            manifest = json.loads(data)
            manifest["format_version"] = 99
            return name, json.dumps(manifest)
        return name, data

    rewrite(path, bump)
    with pytest.raises(ModelFileError, match="format version 99 is newer.*upgrade vigil"):
        vigil.load(path)


class Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('code from the model file ran')",))


def test_extra_pickle_member_is_refused_unopened(model_file):
    path, _ = model_file
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("detector/payload.pkl", pickle.dumps(Boom()))
    with pytest.raises(ModelFileError, match="unexpected member 'detector/payload.pkl'"):
        vigil.load(path)


def test_object_array_carrying_a_pickle_is_refused(model_file, tmp_path):
    path, _ = model_file
    payload = tmp_path / "evil.npy"
    np.save(payload, np.array([Boom()], dtype=object), allow_pickle=True)
    evil = payload.read_bytes()

    def swap(name, data):
        if name == "manifest.json":
            manifest = json.loads(data)
            member = next(m for m in manifest["members"] if m["name"].endswith("scale_.npy"))
            member.update(sha256=hashlib.sha256(evil).hexdigest(), size=len(evil))
            return name, json.dumps(sign(manifest))
        if name.endswith("scale_.npy"):
            return name, evil
        return name, data

    rewrite(path, swap)
    with pytest.raises(ModelFileError, match="not a plain numeric array"):
        vigil.load(path)


def test_damaged_manifest_is_refused(model_file):
    path, _ = model_file
    rewrite(path, lambda n, d: (n, d[:20]) if n == "manifest.json" else (n, d))
    with pytest.raises(ModelFileError, match="manifest.json is damaged"):
        vigil.load(path)


@pytest.mark.parametrize("resign", [False, True])
def test_manifest_naming_an_unknown_method_is_refused(model_file, resign):
    path, _ = model_file

    def rename(name, data):
        if name == "manifest.json":
            manifest = json.loads(data)
            manifest["method"] = "os.system"
            return name, json.dumps(sign(manifest) if resign else manifest)
        return name, data

    rewrite(path, rename)
    message = "unknown method 'os.system'" if resign else "manifest.json does not match its checksum"
    with pytest.raises(ModelFileError, match=message):
        vigil.load(path)


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04garbage"])
def test_non_model_files_are_refused(tmp_path, content):
    path = tmp_path / "model.vigil"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="not a vigil model file"):
        vigil.load(path)


def test_missing_file_and_directory_are_refused(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        vigil.load(tmp_path / "absent.vigil")
    with pytest.raises(ModelFileError, match="is a directory"):
        vigil.load(tmp_path)
