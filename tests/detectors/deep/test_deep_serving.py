"""Serving a deep model without torch: the ONNX graph in the model file (format version 3),
checked before onnxruntime sees it, scored by onnxruntime alone."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

import model_files as mf
import vigil
from vigil.errors import ModelFileError

GRAPH = "detector/network.onnx"


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    t = np.arange(2400)
    return pd.DataFrame({"temperature": np.sin(2 * np.pi * t / 40) + 0.1 * rng.normal(size=2400),
                         "pressure": np.cos(2 * np.pi * t / 40) + 0.1 * rng.normal(size=2400)})


@pytest.fixture(scope="module")
def saved(frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("deep") / "ae.vigil"
    model = vigil.Model("autoencoder", epochs=4).fit(frame.iloc[:1600])
    model.save(path)
    return path, model


def test_the_file_is_version_3_with_a_listed_checksummed_graph(saved):
    path, model = saved
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        graph = archive.read(GRAPH)
    assert manifest["format_version"] == 3
    entry = next(m for m in manifest["members"] if m["name"] == GRAPH)
    assert entry["kind"] == "onnx" and entry["size"] == len(graph)
    assert onnx.load_from_string(graph).graph.input[0].name == "windows"


def test_a_method_without_a_graph_is_still_written_as_version_2(frame, tmp_path):
    vigil.Model("zscore").fit(frame).save(tmp_path / "z.vigil")
    with zipfile.ZipFile(tmp_path / "z.vigil") as archive:
        assert json.loads(archive.read("manifest.json"))["format_version"] == 2


def test_a_loaded_model_scores_as_the_fitted_one(saved, frame):
    path, model = saved
    assert np.array_equal(vigil.load(path).score(frame), model.score(frame))


def test_scoring_a_saved_model_never_imports_torch(saved, frame, tmp_path):
    path, model = saved
    frame.to_csv(tmp_path / "rows.csv", index=False)
    code = (
        "import sys; sys.modules['torch'] = None  # importing torch now fails\n"
        "import numpy as np, vigil\n"
        f"scores = vigil.load({str(path)!r}).score({str(tmp_path / 'rows.csv')!r})\n"
        f"np.save({str(tmp_path / 'scores.npy')!r}, scores)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_allclose(np.load(tmp_path / "scores.npy"), model.score(frame),
                               rtol=1e-12)


def _graph(node, opsets, initializers=()):
    windows = helper.make_tensor_value_info("windows", TensorProto.FLOAT, ["batch", 60, 2])
    error = helper.make_tensor_value_info("error", TensorProto.FLOAT, ["batch", 60, 2])
    graph = helper.make_graph([node], "g", [windows], [error], initializer=list(initializers))
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def _with_graph(path, graph):
    return mf.with_member(path.read_bytes(), GRAPH, graph)


def test_a_graph_with_a_custom_operator_is_refused(saved):
    path, model = saved
    window = model.detector.window_
    node = helper.make_node("Evil", ["windows"], ["error"], domain="com.example.evil")
    evil = _graph(node, [helper.make_opsetid("", 18), helper.make_opsetid("com.example.evil", 1)])
    with pytest.raises(ModelFileError, match="operator domain 'com.example.evil'"):
        vigil.load(_with_graph(path, evil))
    assert window  # the check ran before any shape was compared


def test_a_graph_with_external_data_is_refused(saved):
    path, _ = saved
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
    weight.data_location = TensorProto.EXTERNAL
    weight.ClearField("float_data")
    weight.external_data.add(key="location", value="../../../../etc/passwd")
    node = helper.make_node("Add", ["windows", "w"], ["error"])
    with pytest.raises(ModelFileError, match="points to external data"):
        vigil.load(_with_graph(path, _graph(node, [helper.make_opsetid("", 18)], [weight])))


def test_a_graph_of_another_shape_or_garbage_is_refused(saved):
    path, _ = saved
    node = helper.make_node("Identity", ["windows"], ["error"])
    with pytest.raises(ModelFileError, match="the model needs"):
        vigil.load(_with_graph(path, _graph(node, [helper.make_opsetid("", 18)])))
    with pytest.raises(ModelFileError, match="not a readable ONNX model"):
        vigil.load(_with_graph(path, b"\x08\x07garbage"))
    with pytest.raises(ModelFileError, match="exactly one graph"):
        vigil.load(mf.with_member(path.read_bytes(), GRAPH, None))
