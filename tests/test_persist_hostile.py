"""Hostile and damaged model files, one test per kind of damage: each is refused with one line,
a ModelFileError naming the file and what is wrong (the CLI: exit 2, one stderr line), in
bounded memory, and nothing from the file runs or replaces anything."""

import io
import json
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import model_files as mf
import vigil
from vigil.cli import app
from vigil.errors import ModelFileError

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
CENTER, SCALE = "detector/center_.npy", "detector/scale_.npy"


@pytest.fixture(scope="module")
def frame():
    return pd.read_csv(GOLDEN / "input.csv")


@pytest.fixture(scope="module")
def good(frame):
    """A version 2 file of a robust_zscore model on two channels, as bytes."""
    buffer = io.BytesIO()
    vigil.Model("robust_zscore").fit(frame).save(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def v1():
    return (GOLDEN / "robust_zscore.vigil").read_bytes()


def refused(data, match):
    with pytest.raises(ModelFileError, match=match) as caught:
        vigil.load(data)
    message = str(caught.value)
    assert message.startswith("<model bytes>: ") and "\n" not in message, message
    return message


# -- what used to end in a traceback ------------------------------------------------------------
@pytest.mark.parametrize("method", ["isolation_forest", "mahalanobis", "stuck"])
def test_arrays_of_another_method_are_refused(good, method):
    bad = mf.with_manifest(good, lambda m: m.update(method=method, params={}))
    refused(bad, f"{method} has no fitted state named 'center_'|{method} .*lacks")


def test_extra_arrays_of_another_method_are_refused(good):
    refused(mf.with_array(good, "whitening_", np.eye(2)),
            "robust_zscore has no fitted state named 'whitening_'")


@pytest.mark.parametrize("arrays", [[], ["detector/center_.npy"], {"center_": "detector/c.npy"},
                                    {"center_": {"member": 7, "sha256": "0" * 64}}])
def test_a_malformed_v1_arrays_table_is_refused(v1, arrays):
    refused(mf.with_manifest(v1, lambda m: m.update(arrays=arrays)),
            "arrays must be an object|entry for array|name must be text|unexpected member")


@pytest.mark.parametrize("members", [{}, ["detector/center_.npy"], [{"name": CENTER}]])
def test_a_malformed_v2_member_table_is_refused(good, members):
    refused(mf.with_manifest(good, lambda m: m.update(members=members)),
            "members must be a list of objects|must hold name, kind, size and sha256")


def test_an_npz_inside_an_npy_member_is_refused(good):
    buffer = io.BytesIO()
    np.savez(buffer, center_=np.zeros(2))
    refused(mf.with_member(good, CENTER, buffer.getvalue()), r"is a zip \(.npz\)")


def test_an_npy_header_claiming_8_tb_is_refused_unread(good):
    refused(mf.with_member(good, CENTER, mf.npy_header("<f8", (10**12,))),
            r"claims an array of shape \(1000000000000,\), 8000000000000 bytes")


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,
                                  '{"format": "vigil-model", "x": ' + "{\"a\": " * 5000 + "1"
                                  + "}" * 5001])
def test_deeply_nested_json_is_refused(good, text):
    refused(mf.with_text_manifest(good, text), "nests deeper than 32 levels")


@pytest.mark.parametrize("name", ["manifest.json", CENTER])
def test_an_encrypted_member_is_refused(good, name):
    refused(mf.patch_entry(good, name, flag_bits=0x1), f"member '{name}' is encrypted")


def test_an_unsupported_compression_method_is_refused(good):
    refused(mf.pack(mf.members(good), zipfile.ZIP_BZIP2), "compression method 12; vigil writes")
    refused(mf.patch_entry(good, CENTER, method=99), "compression method 99")


@pytest.mark.parametrize("key", ["_score", "score", "score_channels", "__class__", "fit"])
def test_an_array_named_like_a_method_is_refused(good, key):
    refused(mf.with_array(good, key, np.zeros(2)),
            f"no fitted state named '{key}'|not named as vigil names a detector array")


def test_set_state_never_sets_an_undeclared_name(frame):
    det = vigil.Model("zscore").fit(frame).detector
    state = {**det.get_state(), "_score": np.zeros(2)}
    with pytest.raises(ModelFileError, match="no fitted state named '_score'"):
        type(det)().set_state(state)


# -- what used to load and score --------------------------------------------------------------
@pytest.mark.parametrize("name", ["../evil.npy", "/etc/evil.npy", "detector/../../evil.npy",
                                  "detector\\evil.npy", "detector/ evil.npy"])
def test_member_names_outside_the_archive_are_refused(good, name):
    parts = mf.members(good)
    parts[name] = mf.npy(np.zeros(2))
    refused(mf.pack(parts), "unsafe member name")


@pytest.mark.parametrize("version, match", [
    (0, "format version 0 does not exist"), (-3, "version -3 does not exist"),
    ("1", "format_version '1' is not a whole number"), (True, "is not a whole number"),
    (2.0, "is not a whole number"), (None, "is not a whole number"),
    (99, "version 99 is newer than this vigil .* reads \\(up to 3\\); upgrade vigil"),
])
def test_a_bad_format_version_is_refused(good, version, match):
    message = refused(mf.with_manifest(good, lambda m: m.update(format_version=version)), match)
    assert "version 1 is newer" not in message


def test_arrays_for_three_channels_under_a_two_channel_manifest_are_refused(good):
    bad = mf.with_array(mf.with_array(mf.with_array(good, "n_channels_", np.int64(3)),
                                      "center_", np.zeros(3)), "scale_", np.ones(3))
    refused(bad, r"'center_' has shape \(3,\): dimension 0 must be 2 \(d = channels\)")
    refused(mf.with_array(good, "center_", np.zeros(3)), "dimension 0 must be 2")
    refused(mf.with_array(good, "n_channels_", np.int64(3)), "lists 2 channels but the "
            "detector was fitted on 3|dimension 0 must be 3")


@pytest.mark.parametrize("value, match", [(np.nan, "NaN"), (np.inf, "an infinite value"),
                                          (-np.inf, "an infinite value"), (0.0, "must be > 0"),
                                          (-1.0, "must be > 0")])
def test_a_non_finite_zero_or_negative_scale_is_refused(good, value, match):
    refused(mf.with_array(good, "scale_", np.array([1.0, value])), f"'scale_' holds .*{match}")


def test_a_wrong_dtype_or_rank_is_refused(good):
    refused(mf.with_array(good, "scale_", np.array([1, 2])), "has dtype int64; expected a float")
    refused(mf.with_array(good, "scale_", np.ones((2, 1))), "has 2 dimension")
    refused(mf.with_array(good, "n_channels_", np.float64(2)), "has dtype float64")


@pytest.mark.filterwarnings("ignore::vigil.errors.FitWarning")
def test_a_channel_never_watched_may_hold_inf_but_not_nan(frame):
    stuck = vigil.Model("stuck").fit(frame.assign(pressure=1.0))  # constant: never watched
    assert np.isinf(stuck.detector.reference_[1])
    buffer = io.BytesIO()
    stuck.save(buffer)
    assert np.isinf(vigil.load(buffer.getvalue()).detector.reference_[1])
    refused(mf.with_array(buffer.getvalue(), "reference_", np.array([10.0, np.nan])), "NaN")


@pytest.mark.parametrize("value", [1e300, -1e300, float("inf")])
def test_a_threshold_edited_to_an_absurd_value_is_refused(good, v1, value):
    def edit(manifest):
        manifest["threshold"]["value"] = value
    refused(mf.with_manifest(good, edit, resign=False), "manifest.json does not match its checksum")
    refused(mf.with_manifest(good, edit), "threshold.value is .*not a finite number")
    refused(mf.with_manifest(v1, edit), "threshold.value is .*not a finite number")  # no checksum


def test_alarm_rules_must_be_finite_and_params_plain(good):
    refused(mf.with_manifest(good, lambda m: m["alarms"].update(center_=float("nan"))),
            "alarms.center_ is nan")
    refused(mf.with_manifest(good, lambda m: m.update(params={"channels": "x"})),
            "robust_zscore has no parameter 'channels'")
    refused(mf.with_manifest(good, lambda m: m.update(method="iqr", params={"k": [1]})),
            "params must map names to plain values")


@pytest.fixture(scope="module")
def bomb(good):
    """A 4.7 MB file whose center_ member inflates to 1 GiB: an 144-byte array, then zeros."""
    return mf.with_bomb(good, CENTER, mf.npy(np.zeros(2)), 2**30)


def bounded(data, match, limit=100 * 2**20):
    tracemalloc.start()
    try:
        refused(data, match)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"peak {peak / 2**20:.0f} MiB"


def test_a_zip_header_lying_about_sizes_is_refused_in_bounded_memory(bomb, good, v1):
    bounded(bomb, "the zip says 1073741968 bytes, the manifest 144")
    size = len(mf.npy(np.zeros(2)))
    bounded(mf.patch_entry(bomb, CENTER, file_size=size), "Bad CRC-32")
    bounded(mf.with_bomb(v1, CENTER, mf.npy(np.zeros(2)), 2**30), "has data after its end")


@pytest.mark.parametrize("method, name, shape, match", [
    ("robust_zscore", CENTER, (150_000_000,), r"'center_' has shape \(150000000,\): dimension 0 "
     "must be 2"),
    ("matrix_profile", "detector/reference_.npy", (75_000_000, 2), "dimension 0 must be at most "
     "20000 \\(max_reference_rows\\)"),
])
def test_a_1_2_gb_array_member_is_refused_unread(frame, method, name, shape, match):
    buffer = io.BytesIO()
    vigil.Model(method).fit(frame).save(buffer)
    claim = mf.npy_header("<f8", shape)
    bomb = mf.with_bomb(buffer.getvalue(), name, claim, 1_200_000_000)

    def declare(manifest):  # the manifest, re-signed, declares the 1.2 GB honestly
        mf.entry(manifest, name)["size"] = len(claim) + 1_200_000_000
    bounded(mf.with_manifest(bomb, declare), match)
    refused(mf.with_member(buffer.getvalue(), name, claim), "claims an array of shape")


# -- the archive itself -----------------------------------------------------------------------
def test_duplicate_extra_and_missing_members_are_refused(good):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicate
        buffer = io.BytesIO(good)
        with zipfile.ZipFile(buffer, "a") as archive:
            archive.writestr(CENTER, mf.npy(np.zeros(2)))
    refused(buffer.getvalue(), f"member '{CENTER}' appears twice")
    parts = mf.members(good)
    del parts[SCALE]
    refused(mf.pack(parts), f"lists member '{SCALE}', which the file lacks")
    refused(mf.pack({**mf.members(good), "detector/extra.npy": b""}), "unexpected member")


def test_declared_sizes_kinds_and_json_members_are_checked(good):
    refused(mf.with_manifest(good, lambda m: mf.entry(m, CENTER).update(size=10)),
            "the zip says 144 bytes, the manifest 10")
    refused(mf.with_manifest(good, lambda m: mf.entry(m, CENTER).update(kind="safetensors")),
            "kind 'safetensors', which this vigil .* does not read; upgrade vigil")
    refused(mf.with_manifest(good, lambda m: mf.entry(m, CENTER).update(kind="onnx")),
            "is an ONNX graph, which format version 2 cannot hold")
    refused(mf.with_manifest(good, lambda m: m.update(kind="bundle")),
            "the bundle manifest has no 'unseen'")  # a model's manifest is no bundle's
    refused(mf.with_manifest(good, lambda m: m.update(kind="ensemble")),
            "of kind 'ensemble' is not")
    doc = mf.with_member(good, "extra.json", b"{}")
    refused(mf.with_manifest(doc, lambda m: mf.entry(m, "extra.json").update(kind="json")),
            "member 'extra.json' is not used by a vigil model")


def test_huge_manifests_and_directories_are_refused(good):
    refused(mf.with_manifest(good, lambda m: m["training"].update(source="x" * 5 * 2**20)),
            "holds more than the 4194304 bytes")
    refused(mf.pack({**mf.members(good), **{f"x{i}": b"" for i in range(5000)}}),
            "zip directory lists 5004 members")
    refused(mf.with_text_manifest(good, '{"format": "vigil-model", "format": 1}'),
            "a key appears twice")


@pytest.mark.parametrize("data", [b"", b"PK\x05\x06" + bytes(18), b"\x00" * 100])
def test_garbage_bytes_are_refused(data):
    refused(data, "not a vigil model file")


def test_auto_member_state_is_checked_against_each_member(frame):
    buffer = io.BytesIO()
    vigil.Model("auto").fit(frame).save(buffer)
    good = buffer.getvalue()
    refused(mf.with_array(good, "m9.center_", np.zeros(2)), "no fitted state named 'm9.center_'")
    refused(mf.with_array(good, "m0.center_", np.zeros(2)), "m0.\\* arrays of member "
            "subsequence_kmeans, which its use_ leaves out")
    refused(mf.with_array(good, "m1.scale_", np.array([1.0, 0.0])), "must be > 0")
    refused(mf.with_array(good, "use_", np.zeros(6, np.int8)), "m1.\\* arrays|selects no")


# -- the command line -------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["version", "scale", "name", "nested", "encrypted"])
def test_the_cli_shows_a_damaged_model_in_one_line_with_exit_2(good, tmp_path, damage):
    bad = {"version": lambda: mf.with_manifest(good, lambda m: m.update(format_version=0)),
           "scale": lambda: mf.with_array(good, "scale_", np.array([1.0, np.nan])),
           "name": lambda: mf.pack({**mf.members(good), "../x.npy": b""}),
           "nested": lambda: mf.with_text_manifest(good, "[" * 50_000),
           "encrypted": lambda: mf.patch_entry(good, SCALE, flag_bits=1)}[damage]()
    path = tmp_path / "bad.vigil"
    path.write_bytes(bad)
    result = CliRunner().invoke(app, ["score", str(GOLDEN / "input.csv"), "--model", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path.name) in lines[0], lines
    assert json.dumps(lines)  # plain text
