"""ONNX export and import: onnxruntime runs what to_onnx writes and gets rnn.forward's outputs;
from_onnx reads it back bit for bit, reads single-node RNN graphs, and rejects anything else."""

import io
import sys
import warnings

import numpy as np
import pytest

from elman.model import RNN
from elman.onnx_io import DEFAULT_OPSET, MIN_OPSET, from_onnx, to_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402  (after the skip)

D, H, O = 3, 5, 4
ATOL = 1e-5  # float32: onnxruntime sums in another order than elman's kernels


def make_rnn(seed=0, **config):
    """An elman.RNN with random weights; a learned h0 is made nonzero so that it matters."""
    rnn = RNN(D, H, seed=seed, **config)
    if rnn.learn_h0:
        rng = np.random.default_rng(seed + 100)
        rnn.params["h0"][...] = rng.uniform(-1, 1, rnn.params["h0"].shape)
    return rnn


def export(rnn, **options):
    """(the bytes of to_onnx's file, an onnxruntime session on them)."""
    f = io.BytesIO()
    to_onnx(rnn, f, **options)
    data = f.getvalue()
    return data, ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def random_x(rnn, T, B, rng):
    shape = (B, T, D) if rnn.batch_first else (T, B, D)
    return rng.standard_normal(shape).astype(np.float32)


def random_h0(rnn, B, rng):
    return rng.standard_normal((rnn.num_layers * rnn.num_directions, B, H)).astype(np.float32)


def assert_onnxruntime_matches(session, rnn, x, h0=None, lengths=None, atol=ATOL):
    feed = {"x": x}
    if h0 is not None:
        feed["h0"] = h0
    if lengths is not None:
        feed["lengths"] = np.asarray(lengths, dtype=np.int32)
    out, h_n = session.run(["out", "h_n"], feed)
    want_out, want_h_n = rnn.forward(x, h0, lengths)
    assert out.shape == want_out.shape and h_n.shape == want_h_n.shape
    np.testing.assert_allclose(out, want_out, rtol=0, atol=atol)
    np.testing.assert_allclose(h_n, want_h_n, rtol=0, atol=atol)


def assert_same_model(a, b):
    assert a.config() == b.config()
    assert list(a.params) == list(b.params)
    for name in a.params:
        assert a.params[name].dtype == b.params[name].dtype, name
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)


# --------------------------------------------------------------------------- #
# onnxruntime computes what rnn.forward computes
# --------------------------------------------------------------------------- #

STACKS = [(layers, bidirectional, "tanh")
          for layers in (1, 2, 3) for bidirectional in (False, True)]
STACKS += [(2, True, activation) for activation in ("relu", "sigmoid", "identity")]


@pytest.mark.parametrize("num_layers, bidirectional, activation", STACKS)
def test_layers_directions_and_activations(num_layers, bidirectional, activation):
    rng = np.random.default_rng(num_layers)
    rnn = make_rnn(num_layers=num_layers, bidirectional=bidirectional, activation=activation)
    _, session = export(rnn)
    assert [i.name for i in session.get_inputs()] == ["x"]
    for T, B in ((7, 3), (2, 1)):  # T and B are symbolic: one session, several shapes
        assert_onnxruntime_matches(session, rnn, random_x(rnn, T, B, rng))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("output_activation", ["identity", "softmax", "sigmoid"])
def test_output_layer(output_activation, bidirectional):
    rnn = make_rnn(num_layers=2, bidirectional=bidirectional, output_size=O,
                   output_activation=output_activation)
    _, session = export(rnn)
    assert_onnxruntime_matches(session, rnn, random_x(rnn, 6, 2, np.random.default_rng(1)))


@pytest.mark.parametrize("output_size", [None, O])
def test_batch_first_graph_takes_and_gives_batch_major_arrays(output_size):
    rnn = make_rnn(batch_first=True, bidirectional=True, output_size=output_size)
    _, session = export(rnn)
    assert session.get_inputs()[0].shape == ["B", "T", D]
    assert_onnxruntime_matches(session, rnn, random_x(rnn, 5, 3, np.random.default_rng(2)))


@pytest.mark.parametrize("learn_h0", [False, True])
def test_h0_input(learn_h0):
    rng = np.random.default_rng(3)
    rnn = make_rnn(num_layers=2, bidirectional=True, learn_h0=learn_h0, output_size=O)
    _, session = export(rnn, h0_input=True)
    assert [(i.name, i.shape) for i in session.get_inputs()] == [
        ("x", ["T", "B", D]), ("h0", [4, "B", H])]
    assert_onnxruntime_matches(session, rnn, random_x(rnn, 6, 3, rng), random_h0(rnn, 3, rng))


def test_learned_h0_is_the_graphs_initial_state():
    rnn = make_rnn(num_layers=3, learn_h0=True)
    _, session = export(rnn)
    assert [i.name for i in session.get_inputs()] == ["x"]
    assert_onnxruntime_matches(session, rnn, random_x(rnn, 4, 5, np.random.default_rng(4)))


@pytest.mark.parametrize("initial_state", ["zeros", "input", "learned"])
@pytest.mark.parametrize("bidirectional, output_size", [(False, None), (True, None), (True, O)])
def test_lengths(initial_state, bidirectional, output_size):
    """Outputs past each end are 0, h_n is each sequence's state at its own last step (the
    reverse direction starts there); a length of 0 keeps the initial state; what x holds past an
    end (NaN here) changes nothing."""
    rng = np.random.default_rng(5)
    rnn = make_rnn(num_layers=2, bidirectional=bidirectional, output_size=output_size,
                   output_activation="softmax" if output_size else "identity",
                   learn_h0=initial_state == "learned")
    _, session = export(rnn, lengths_input=True, h0_input=initial_state == "input")
    lengths = [6, 0, 3, 1]
    x = random_x(rnn, 6, 4, rng)
    for b, length in enumerate(lengths):
        x[length:, b] = np.nan
    h0 = random_h0(rnn, 4, rng) if initial_state == "input" else None
    assert_onnxruntime_matches(session, rnn, x, h0, lengths)


def test_a_sequence_of_no_steps_keeps_its_initial_state():
    """onnxruntime's RNN returns Y_h = 0 for T = 0 whatever initial_h is; elman returns h0."""
    rng = np.random.default_rng(6)
    rnn = make_rnn(num_layers=2, bidirectional=True, output_size=O)
    _, session = export(rnn, h0_input=True)
    h0 = random_h0(rnn, 2, rng)
    assert_onnxruntime_matches(session, rnn, random_x(rnn, 0, 2, rng), h0)
    learned = make_rnn(learn_h0=True)
    _, session = export(learned)
    assert_onnxruntime_matches(session, learned, random_x(learned, 0, 2, rng))


def test_float64_model_needs_an_explicit_dtype():
    rnn = make_rnn(num_layers=2, bidirectional=True, output_size=O, dtype="float64")
    with pytest.raises(ValueError, match="dtype='float32'"):
        to_onnx(rnn, io.BytesIO())
    # float32: the weights rounded, results within float32 rounding of the float64 model's
    _, session = export(rnn, dtype="float32")
    x = random_x(rnn, 5, 2, np.random.default_rng(7))
    out, h_n = session.run(["out", "h_n"], {"x": x})
    want_out, want_h_n = rnn.forward(x)
    np.testing.assert_allclose(out, want_out, rtol=0, atol=ATOL)
    np.testing.assert_allclose(h_n, want_h_n, rtol=0, atol=ATOL)
    # float64: a valid ONNX graph (onnxruntime has no float64 RNN kernel), read back exactly
    f = io.BytesIO()
    model = to_onnx(rnn, f, dtype="float64")
    onnx.checker.check_model(model, full_check=True)
    assert_same_model(from_onnx(io.BytesIO(f.getvalue())), rnn)


@pytest.mark.parametrize("opset", [MIN_OPSET, DEFAULT_OPSET])
def test_opsets(opset):
    rnn = make_rnn(bidirectional=True, learn_h0=True, output_size=O)
    data, session = export(rnn, opset=opset, lengths_input=True)
    model = onnx.load_from_string(data)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", opset)]
    assert_onnxruntime_matches(session, rnn, random_x(rnn, 4, 3, np.random.default_rng(8)),
                               lengths=[4, 2, 1])
    assert_same_model(from_onnx(model), rnn)


# --------------------------------------------------------------------------- #
# The file: what it holds, where it goes, and back
# --------------------------------------------------------------------------- #

def test_graph_is_standard_onnx(tmp_path):
    """One RNN operator per layer with elman's weights in the operator's layout."""
    rnn = make_rnn(num_layers=2, bidirectional=True, activation="identity", output_size=O)
    path = tmp_path / "model.onnx"
    returned = to_onnx(rnn, path)
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    assert model == returned
    rnn_nodes = [node for node in model.graph.node if node.op_type == "RNN"]
    assert len(rnn_nodes) == 2
    attributes = {a.name: helper.get_attribute_value(a) for a in rnn_nodes[1].attribute}
    assert attributes == {"hidden_size": H, "direction": b"bidirectional",
                          "activations": [b"Affine", b"Affine"],
                          "activation_alpha": [1.0, 1.0], "activation_beta": [0.0, 0.0]}
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    W, R, B = (arrays[name] for name in rnn_nodes[1].input[1:4])
    np.testing.assert_array_equal(W, [rnn.params["W_xh_l1"], rnn.params["W_xh_l1_reverse"]])
    np.testing.assert_array_equal(R, [rnn.params["W_hh_l1"], rnn.params["W_hh_l1_reverse"]])
    np.testing.assert_array_equal(B[:, :H], [rnn.params["b_h_l1"], rnn.params["b_h_l1_reverse"]])
    np.testing.assert_array_equal(B[:, H:], 0)
    assert [o.name for o in model.graph.output] == ["out", "h_n"]


ROUND_TRIPS = [
    ({}, {}),
    ({"num_layers": 3, "bidirectional": True, "activation": "relu"}, {}),
    ({"batch_first": True, "output_size": O, "output_activation": "sigmoid"}, {}),
    ({"num_layers": 2, "learn_h0": True, "output_size": O, "output_activation": "softmax"},
     {"lengths_input": True}),
    ({"bidirectional": True, "activation": "sigmoid"}, {"h0_input": True, "lengths_input": True}),
]


@pytest.mark.parametrize("config, options", ROUND_TRIPS)
def test_round_trip_gives_the_same_model(config, options, tmp_path):
    rnn = make_rnn(**config)
    before = {name: value.copy() for name, value in rnn.params.items()}
    to_onnx(rnn, tmp_path / "model.onnx", **options)
    back = from_onnx(tmp_path / "model.onnx")
    assert_same_model(back, rnn)
    for name, value in before.items():  # to_onnx only reads the model
        np.testing.assert_array_equal(rnn.params[name], value)


def test_h0_input_leaves_the_learned_h0_out_of_the_graph():
    rnn = make_rnn(num_layers=2, learn_h0=True)
    data, _ = export(rnn, h0_input=True)
    back = from_onnx(io.BytesIO(data))
    assert back.config() == {**rnn.config(), "learn_h0": False}
    for name, value in back.params.items():
        np.testing.assert_array_equal(value, rnn.params[name])


def single_rnn_node_model(rng, *, direction="bidirectional", activations=None, layout=0,
                          bias=True, **attributes):
    """A hand-written graph of one RNN node, with nonzero Wb and Rb: (model, W, R, B)."""
    dirs = 2 if direction == "bidirectional" else 1
    W = rng.uniform(-0.5, 0.5, (dirs, H, D)).astype(np.float32)
    R = rng.uniform(-0.5, 0.5, (dirs, H, H)).astype(np.float32)
    B = rng.uniform(-0.5, 0.5, (dirs, 2 * H)).astype(np.float32)
    initializers = [numpy_helper.from_array(a, n) for a, n in ((W, "W"), (R, "R"), (B, "B"))]
    if activations is not None:
        attributes["activations"] = activations
    x_shape = ["B", "T", D] if layout else ["T", "B", D]
    node = helper.make_node("RNN", ["X", "W", "R", "B" if bias else ""], ["Y", "Y_h"],
                            hidden_size=H, direction=direction, layout=layout, **attributes)
    graph = helper.make_graph(
        [node], "single_rnn", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), W, R, B


@pytest.mark.parametrize("activations, activation", [(None, "tanh"), (["Relu", "Relu"], "relu")])
def test_single_rnn_node_graph(activations, activation):
    """b_h = Wb + Rb; the rebuilt model computes the node's Y ([T, dirs, B, H]) and Y_h."""
    rng = np.random.default_rng(9)
    model, W, R, B = single_rnn_node_model(rng, activations=activations)
    rnn = from_onnx(model)
    assert rnn.config() == {**RNN(D, H).config(), "bidirectional": True, "activation": activation}
    np.testing.assert_array_equal(rnn.params["W_xh_l0_reverse"], W[1])
    np.testing.assert_array_equal(rnn.params["W_hh_l0_reverse"], R[1])
    np.testing.assert_array_equal(rnn.params["b_h_l0_reverse"], B[1, :H] + B[1, H:])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = random_x(rnn, 6, 2, rng)
    Y, Y_h = session.run(["Y", "Y_h"], {"X": x})
    out, h_n = rnn.forward(x)
    np.testing.assert_allclose(out, Y.transpose(0, 2, 1, 3).reshape(6, 2, 2 * H), atol=ATOL)
    np.testing.assert_allclose(h_n, Y_h, atol=ATOL)


def test_single_rnn_node_with_batch_major_layout_and_no_bias():
    """layout = 1 (which onnxruntime's RNN cannot run) is batch_first; no B means zero biases."""
    rng = np.random.default_rng(10)
    model, W, R, _ = single_rnn_node_model(rng, direction="forward", layout=1, bias=False)
    rnn = from_onnx(model)
    assert rnn.batch_first and not rnn.bidirectional
    np.testing.assert_array_equal(rnn.params["W_xh_l0"], W[0])
    np.testing.assert_array_equal(rnn.params["W_hh_l0"], R[0])
    np.testing.assert_array_equal(rnn.params["b_h_l0"], 0)


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #

def test_export_errors():
    rnn = make_rnn()
    with pytest.raises(TypeError, match="elman.RNN"):
        to_onnx("not a model", io.BytesIO())
    with pytest.raises(ValueError, match=f"opset must lie in {MIN_OPSET}"):
        to_onnx(rnn, io.BytesIO(), opset=MIN_OPSET - 1)
    with pytest.raises(TypeError, match="opset must be an int"):
        to_onnx(rnn, io.BytesIO(), opset="17")
    with pytest.raises(ValueError, match="dtype must be None, 'float32' or 'float64'"):
        to_onnx(rnn, io.BytesIO(), dtype="float16")
    with pytest.raises(TypeError, match="h0_input must be True or False"):
        to_onnx(rnn, io.BytesIO(), h0_input=1)
    rnn.params["W_hh_l0"] = np.zeros((H, H + 1), dtype=np.float32)
    with pytest.raises(ValueError, match=r"rnn.params\['W_hh_l0'\] must be a float32 array of "
                                         r"shape \(5, 5\), got a float32 array of shape \(5, 6\)"):
        to_onnx(rnn, io.BytesIO())


def test_a_failed_export_leaves_no_file(tmp_path):
    rnn = make_rnn(dtype="float64")
    with pytest.raises(ValueError):
        to_onnx(rnn, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_missing_onnx_package_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(ImportError, match=r"pip install elman\[onnx\]"):
        to_onnx(make_rnn(), io.BytesIO())
    with pytest.raises(ImportError, match=r"pip install elman\[onnx\]"):
        from_onnx(io.BytesIO(b""))


def test_not_an_onnx_file():
    with pytest.raises(ValueError, match="is not an ONNX model"):
        from_onnx(io.BytesIO(b"not an onnx file at all"))
    with pytest.raises(TypeError, match="binary mode"):
        from_onnx(io.StringIO("text"))


def test_names_that_are_not_text():
    data, _ = export(make_rnn())
    assert data.count(b"W_l0") == 2  # the initializer's name and the RNN node's input
    with pytest.raises(ValueError, match="not UTF-8 text"):
        from_onnx(io.BytesIO(data.replace(b"W_l0", b"W_l\xff")))


def exported_model(**options):
    data, _ = export(make_rnn(num_layers=2, output_size=O, output_activation="softmax"),
                     **options)
    return onnx.load_from_string(data)


def test_a_changed_attribute_is_rejected():
    model = exported_model()
    softmax = next(node for node in model.graph.node if node.op_type == "Softmax")
    softmax.attribute[0].i = 0  # softmax over the time axis: not what to_onnx writes
    with pytest.raises(ValueError, match=r"node \d+ is Softmax.*axis=0.*expected Softmax"):
        from_onnx(model)


def test_an_extra_node_is_rejected():
    model = exported_model()
    model.graph.node[-1].output[0] = "h_n_before"
    model.graph.node.append(helper.make_node("Neg", ["h_n_before"], ["h_n"]))
    with pytest.raises(ValueError, match=r"its nodes are \[.*'Neg'\], expected"):
        from_onnx(model)


def test_a_second_bias_is_rejected_in_the_exported_form():
    """to_onnx writes Rb = 0; a graph with Rb != 0 is not its form (the single-node form sums)."""
    model = exported_model()
    tensor = next(t for t in model.graph.initializer if t.name == "B_l1")
    B = numpy_helper.to_array(tensor).copy()
    B[:, H:] = 0.5
    tensor.CopyFrom(numpy_helper.from_array(B, "B_l1"))
    with pytest.raises(ValueError, match="initializer 'B_l1' holds"):
        from_onnx(model)


def test_an_older_opset_is_rejected():
    model = exported_model()
    model.opset_import[0].version = MIN_OPSET - 1
    with pytest.raises(ValueError, match=f"imports opset {MIN_OPSET - 1}"):
        from_onnx(model)


def test_unknown_inputs_are_rejected():
    model = exported_model()
    model.graph.input.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT, [1]))
    with pytest.raises(ValueError, match=r"its inputs are \['x', 'c0'\]"):
        from_onnx(model)


def test_graph_without_rnn_node():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    with pytest.raises(ValueError, match=r"has no RNN node \(its nodes: \['Relu'\]\)"):
        from_onnx(helper.make_model(graph))


@pytest.mark.parametrize("change, message", [
    ({"clip": 2.0}, r"attributes \['clip'\] that elman.RNN cannot represent"),
    ({"direction": "reverse"}, "direction is 'reverse'"),
    ({"activations": ["LeakyRelu", "LeakyRelu"]}, "activation 'LeakyRelu' has no elman"),
    ({"activations": ["Tanh", "Relu"]}, "the same for all"),
    ({"activations": ["Affine", "Affine"], "activation_alpha": [2.0, 2.0]},
     "elman's 'identity' is Affine with alpha=1.0"),
])
def test_single_rnn_node_that_elman_cannot_represent(change, message):
    model, *_ = single_rnn_node_model(np.random.default_rng(11), **change)
    with pytest.raises(ValueError, match=message):
        from_onnx(model)


def test_single_rnn_node_with_fed_weights_is_rejected():
    model, *_ = single_rnn_node_model(np.random.default_rng(12))
    W = model.graph.initializer[0]
    model.graph.input.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, W.dims))
    del model.graph.initializer[0]
    with pytest.raises(ValueError, match=r"W \('W'\) is not an initializer"):
        from_onnx(model)


def test_external_data_is_never_read():
    model, *_ = single_rnn_node_model(np.random.default_rng(13))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../../etc/passwd")
    with pytest.raises(ValueError, match="stored in an external file"):
        from_onnx(model)


def test_torch_export_points_to_from_torch():
    torch = pytest.importorskip("torch")
    module = torch.nn.RNN(D, H, num_layers=2)
    f = io.BytesIO()
    with warnings.catch_warnings():  # the legacy exporter's deprecation and tracer warnings
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(4, 2, D),), f, dynamo=False, input_names=["x"])
    with pytest.raises(ValueError, match="elman.from_torch"):
        from_onnx(io.BytesIO(f.getvalue()))
