"""ONNX export and import of ``elman.RNN``: one standard ``RNN`` operator per layer, so any ONNX
runtime (onnxruntime in particular) computes what the model computes.

    from elman.onnx_io import from_onnx, to_onnx
    to_onnx(rnn, "model.onnx")
    session = onnxruntime.InferenceSession("model.onnx")
    out, h_n = session.run(["out", "h_n"], {"x": x})       # rnn.forward(x), within float32 rounding
    same = from_onnx("model.onnx")                         # the same model, parameters bit for bit

The graph ``to_onnx`` writes (time-major names; ``dirs`` is 2 when bidirectional, else 1):

    x[T, B, D]            input ([B, T, D] with batch_first, then a Transpose to time-major)
    h0[L*dirs, B, H]      input with h0_input=True; otherwise the model's own initial state: the
                          learned h0 of a learn_h0 model (an initializer h0[L*dirs, 1, H] that an
                          Expand broadcasts over the batch), else zeros (no initial_h at all)
    lengths[B]            int32 input with lengths_input=True, the operator's sequence_lens
    layer l               RNN(x_l, W_l, R_l, B_l, sequence_lens, initial_h = h0[l*dirs:(l+1)*dirs])
                            -> Y_l[T, dirs, B, H], Y_h_l[dirs, B, H]
                          x_{l+1}[T, B, dirs*H]
                            = Reshape(Transpose(Y_l, perm=(0, 2, 1, 3)), (0, 0, dirs*H))
    output layer          MatMul(x_L, W_hy^T) + b_y, then Softmax(axis=-1) or Sigmoid
    out                   as rnn.forward's out; with lengths, a Where puts 0 past each end
    h_n[L*dirs, B, H]     Concat of the Y_h_l

The operator's parameters hold elman's, per direction in torch's order (forward, reverse):
``W_l[d] = W_xh``, ``R_l[d] = W_hh``, ``B_l[d] = [Wb, Rb] = [b_h, 0]`` (the two biases only ever
add; elman keeps their sum). Hidden activations use the operator's standard activation functions:
tanh -> Tanh, relu -> Relu, sigmoid -> Sigmoid, identity -> Affine(alpha=1, beta=0).

Semantics that needed care (checked against onnxruntime 1.32 in tests/test_onnx.py):

* lengths: like elman, the operator's reverse direction starts at each sequence's own end. Steps
  past an end are not trusted to be 0 (the ONNX spec does not say), hence the final Where.
* A sequence with no steps (T = 0, or a length of 0): onnxruntime returns Y_h = 0 whatever
  initial_h is, elman returns the initial state; graphs with an initial state select it with a
  Where on "has steps".
* float64: the ONNX operator allows double but onnxruntime has no double RNN kernel, so a float64
  model is exported only with an explicit ``dtype``: "float32" (a rounded copy of the weights) or
  "float64" (valid ONNX that onnxruntime cannot run).

``onnx`` is an optional dependency (``pip install elman[onnx]``), imported by these functions only.
"""

from __future__ import annotations

import os

import numpy as np

from ._checks import flag
from ._files import write_atomically
from .model import RNN, parameter_shapes

__all__ = ["to_onnx", "from_onnx", "DEFAULT_OPSET", "MIN_OPSET"]

DEFAULT_OPSET = 17  # run by every onnxruntime since 1.12, and by most other runtimes
MIN_OPSET = 14  # RNN-14 and Reshape-14 (allowzero); every other operator used is older

# elman's hidden activation -> (the operator's activation function, alpha, beta); Affine computes
# alpha * z + beta, which is the identity for (1, 0). Tanh, Relu and Sigmoid take no alpha/beta.
ONNX_ACTIVATIONS = {"tanh": ("Tanh", None, None), "relu": ("Relu", None, None),
                    "sigmoid": ("Sigmoid", None, None), "identity": ("Affine", 1.0, 0.0)}
DTYPES = ("float32", "float64")

# The graph's possible inputs, what session.run feeds (its outputs are "out" and "h_n").
INPUT_NAMES = ("x", "h0", "lengths")


def _import_onnx():
    try:
        import onnx
    except ImportError as e:
        raise ImportError("ONNX export and import need the onnx package: "
                          "pip install elman[onnx] (or pip install onnx onnxruntime)") from e
    return onnx


# --------------------------------------------------------------------------- #
# Export
# --------------------------------------------------------------------------- #

def to_onnx(rnn, path, *, opset=None, dtype=None, h0_input=False, lengths_input=False):
    """Write rnn as an ONNX model to path; returns the onnx.ModelProto written.

    Arguments:
        rnn             an elman.RNN
        path            file name (written atomically, as RNN.save writes: a symlink is
                        followed, permissions kept, only a regular file replaced) or a
                        writable binary file object
        opset           ONNX opset version, MIN_OPSET..the installed onnx's newest
                        (default DEFAULT_OPSET = 17)
        dtype           the graph's float type, "float32" or "float64"; None (default): the
                        model's own, if float32. A float64 model needs it explicitly, since
                        onnxruntime has no float64 RNN kernel: "float32" exports the weights
                        rounded to float32, "float64" a graph that other runtimes may run
        h0_input        add the graph input h0[L*dirs, B, H], which must then be fed. Without it
                        the graph starts from the model's default state: the learned h0 of a
                        learn_h0 model, else zeros. With it, a learned h0 is not in the graph
                        (feed np.broadcast_to(rnn.params["h0"][:, None], (L*dirs, B, H)))
        lengths_input   add the graph input lengths[B] (int32, values 0..T): elman's lengths,
                        outputs past each end 0 and h_n at each sequence's own last step

    Graph inputs: ``x`` [T, B, D] ([B, T, D] with batch_first), T and B symbolic, then ``h0`` and
    ``lengths`` if asked for. Outputs: ``out`` and ``h_n``, as rnn.forward's. The module
    docstring draws the graph. The model is validated with onnx.checker before it is written;
    nothing in rnn is modified.
    """
    onnx = _import_onnx()
    if not isinstance(rnn, RNN):
        raise TypeError(f"to_onnx needs an elman.RNN, got {type(rnn).__name__}")
    config = rnn.config()
    graph_dtype = _graph_dtype(dtype, config["dtype"])
    opset = _checked_opset(opset, onnx)
    h0_input = flag(h0_input, "h0_input")
    lengths_input = flag(lengths_input, "lengths_input")
    params = _model_params(rnn, config)
    model = _build_model(config, params, graph_dtype, opset, h0_input, lengths_input)
    onnx.checker.check_model(model, full_check=True)
    _write_bytes(path, model.SerializeToString())
    return model


def _graph_dtype(dtype, model_dtype):
    """The NumPy dtype of the graph's tensors, from to_onnx's dtype argument."""
    if dtype is None:
        if model_dtype == "float64":
            raise ValueError("this model is float64, and onnxruntime has no float64 kernel for "
                             "the ONNX RNN operator: pass dtype='float32' to export the weights "
                             "rounded to float32, or dtype='float64' to write a float64 graph "
                             "that other runtimes may run")
        return np.dtype(model_dtype)
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"dtype must be None, 'float32' or 'float64', got {dtype!r}")
    return np.dtype(name)


def _checked_opset(opset, onnx):
    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        return DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an int, got {type(opset).__name__}")
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must lie in {MIN_OPSET}..{newest} (the RNN operator's layout "
                         f"semantics need {MIN_OPSET}; {newest} is the installed onnx's newest), "
                         f"got {opset}")
    return int(opset)


def _model_params(rnn, config):
    """rnn.params checked against the model's documented shapes and dtype (they are live arrays
    a user may have replaced)."""
    params = {}
    for name, shape in parameter_shapes(config).items():
        value = rnn.params.get(name)
        if (not isinstance(value, np.ndarray) or value.shape != shape
                or value.dtype != np.dtype(config["dtype"])):
            got = (f"a {value.dtype} array of shape {value.shape}"
                   if isinstance(value, np.ndarray) else type(value).__name__)
            raise ValueError(f"rnn.params[{name!r}] must be a {config['dtype']} array of shape "
                             f"{shape}, got {got}")
        params[name] = value
    return params


def _write_bytes(path, data):
    """data to a binary file object, or atomically to the file path (elman._files: a crash never
    leaves half a model behind, a symlink is followed, permissions are kept)."""
    if hasattr(path, "write"):
        path.write(data)
        return
    write_atomically(path, lambda f: f.write(data))


class _GraphWriter:
    """The nodes and initializers of a graph, appended in execution order."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self._helper, self._numpy_helper = helper, numpy_helper
        self.nodes = []
        self.initializers = {}  # name -> TensorProto

    def constant(self, name, value):
        """An initializer holding value (an array, dtype kept); returns its name."""
        self.initializers[name] = self._numpy_helper.from_array(np.asarray(value), name)
        return name

    def op(self, op_type, inputs, output, **attributes):
        """Append a node with one output, named after that output; returns the output's name."""
        self.nodes.append(self._helper.make_node(op_type, inputs, [output], name=output,
                                                 **attributes))
        return output

    def rename(self, old, new):
        """Give the value old (a node's output, used by no other node) the name new."""
        for node in self.nodes:
            for i, name in enumerate(node.output):
                if name == old:
                    node.output[i] = new
                    if node.name == old:
                        node.name = new


def _build_model(config, params, dtype, opset, h0_input, lengths_input):
    """The ModelProto of the graph drawn in the module docstring (not yet checked)."""
    from onnx import TensorProto, helper

    from . import __version__

    L, H, D = config["num_layers"], config["hidden_size"], config["input_size"]
    dirs = 2 if config["bidirectional"] else 1
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    g = _GraphWriter()
    user_layout = ["B", "T"] if config["batch_first"] else ["T", "B"]
    inputs = [helper.make_tensor_value_info("x", elem, [*user_layout, D])]

    x = "x"
    if config["batch_first"]:
        x = g.op("Transpose", [x], "x_time_major", perm=[1, 0, 2])
    x_shape = None  # [T, B, D] as int64, for the nodes that need T or B
    if h0_input or config["learn_h0"] or lengths_input:
        x_shape = g.op("Shape", [x], "x_shape")

    h0 = None  # the initial state [L*dirs, B, H], or None for zeros
    if h0_input:
        inputs.append(helper.make_tensor_value_info("h0", elem, [L * dirs, "B", H]))
        h0 = "h0"
    elif config["learn_h0"]:
        h0 = _learned_initial_state(g, params["h0"].astype(dtype), x_shape)
    lengths = None
    if lengths_input:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["B"]))
        lengths = "lengths"
    has_steps = None if h0 is None else _has_steps(g, x_shape, lengths)

    layer_input, final_states = x, []
    for layer in range(L):
        h0_layer = None
        if h0 is not None:
            h0_layer = h0 if L == 1 else _layer_slice(g, h0, layer, dirs)
        Y, Y_h = _rnn_layer(g, config, params, dtype, layer, layer_input, lengths, h0_layer)
        if has_steps is not None:  # a sequence without steps keeps its initial state
            Y_h = g.op("Where", [has_steps, Y_h, h0_layer], f"h_n_l{layer}")
        final_states.append(Y_h)
        Y = g.op("Transpose", [Y], f"Y_l{layer}_batch_dir", perm=[0, 2, 1, 3])  # [T, B, dirs, H]
        hidden_shape = g.constant("hidden_shape", np.array([0, 0, dirs * H], dtype=np.int64))
        layer_input = g.op("Reshape", [Y, hidden_shape], f"hidden_l{layer}")  # [T, B, dirs*H]

    out, last = layer_input, dirs * H
    if config["output_size"] is not None:
        out = _output_layer(g, config, params, dtype, out)
        last = config["output_size"]
    if lengths is not None:
        out = _zero_past_ends(g, out, x_shape, lengths, dtype)
    if config["batch_first"]:
        out = g.op("Transpose", [out], "out_batch_first", perm=[1, 0, 2])
    g.rename(out, "out")
    if L == 1:
        g.rename(final_states[0], "h_n")
    else:
        g.op("Concat", final_states, "h_n", axis=0)

    outputs = [helper.make_tensor_value_info("out", elem, [*user_layout, last]),
               helper.make_tensor_value_info("h_n", elem, [L * dirs, "B", H])]
    graph = helper.make_graph(g.nodes, "elman_rnn", inputs, outputs,
                              initializer=list(g.initializers.values()))
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="elman",
                             producer_version=__version__,
                             ir_version=helper.find_min_ir_version_for(opsets),
                             doc_string=_describe_config(config))


def _describe_config(config):
    options = ", ".join(f"{key}={value!r}" for key, value in config.items()
                        if key not in ("input_size", "hidden_size"))
    return f"elman.RNN({config['input_size']}, {config['hidden_size']}, {options})"


def _learned_initial_state(g, h0, x_shape):
    """The learned h0[L*dirs, H] as an initializer [L*dirs, 1, H], expanded to [L*dirs, B, H]."""
    LD, H = h0.shape
    g.constant("h0", h0[:, None, :])
    batch = g.op("Gather", [x_shape, g.constant("index_1", np.array([1], dtype=np.int64))],
                 "batch_size")  # [1]
    state_shape = g.op("Concat", [g.constant("state_rows", np.array([LD], dtype=np.int64)), batch,
                                  g.constant("state_cols", np.array([H], dtype=np.int64))],
                       "h0_shape", axis=0)
    return g.op("Expand", ["h0", state_shape], "h0_batch")


def _has_steps(g, x_shape, lengths):
    """A boolean that broadcasts against h_n [dirs, B, H]: which sequences have at least one step
    ([1, B, 1] from lengths > 0, or [1] from T > 0)."""
    if lengths is None:
        T = g.op("Gather", [x_shape, g.constant("index_0", np.array([0], dtype=np.int64))],
                 "num_steps")  # [1]
        return g.op("Greater", [T, g.constant("zero_int64", np.array(0, dtype=np.int64))],
                    "has_steps")
    started = g.op("Greater", [lengths, g.constant("zero_int32", np.array(0, dtype=np.int32))],
                   "started")  # [B]
    axes = g.constant("axes_0_2", np.array([0, 2], dtype=np.int64))
    return g.op("Unsqueeze", [started, axes], "has_steps")


def _layer_slice(g, h0, layer, dirs):
    """h0[layer*dirs : (layer+1)*dirs], the initial state of one layer's directions."""
    start = g.constant(f"h0_start_l{layer}", np.array([layer * dirs], dtype=np.int64))
    end = g.constant(f"h0_end_l{layer}", np.array([(layer + 1) * dirs], dtype=np.int64))
    axis = g.constant("axis_0", np.array([0], dtype=np.int64))
    return g.op("Slice", [h0, start, end, axis], f"h0_l{layer}")


def _rnn_layer(g, config, params, dtype, layer, layer_input, lengths, h0_layer):
    """One RNN node for both directions of a layer; returns the names of (Y, Y_h)."""
    from onnx import helper

    H = config["hidden_size"]
    suffixes = ("", "_reverse") if config["bidirectional"] else ("",)
    W = np.stack([params[f"W_xh_l{layer}{s}"] for s in suffixes]).astype(dtype)
    R = np.stack([params[f"W_hh_l{layer}{s}"] for s in suffixes]).astype(dtype)
    B = np.stack([np.concatenate([params[f"b_h_l{layer}{s}"], np.zeros(H)]) for s in suffixes])
    names = [layer_input, g.constant(f"W_l{layer}", W), g.constant(f"R_l{layer}", R),
             g.constant(f"B_l{layer}", B.astype(dtype)), lengths or "", h0_layer or ""]
    while names[-1] == "":  # omitted optional inputs at the end are left out
        names.pop()
    function, alpha, beta = ONNX_ACTIVATIONS[config["activation"]]
    attributes = {"hidden_size": H, "activations": [function] * len(suffixes),
                  "direction": "bidirectional" if config["bidirectional"] else "forward"}
    if alpha is not None:
        attributes["activation_alpha"] = [alpha] * len(suffixes)
        attributes["activation_beta"] = [beta] * len(suffixes)
    outputs = [f"Y_l{layer}", f"Y_h_l{layer}"]
    g.nodes.append(helper.make_node("RNN", names, outputs, name=f"rnn_l{layer}", **attributes))
    return outputs


def _output_layer(g, config, params, dtype, hidden):
    """y = g(hidden @ W_hy^T + b_y) over the last axis; returns its name."""
    W_hy_T = g.constant("W_hy_T", np.ascontiguousarray(params["W_hy"].T, dtype=dtype))
    product = g.op("MatMul", [hidden, W_hy_T], "output_product")
    y = g.op("Add", [product, g.constant("b_y", params["b_y"].astype(dtype))], "output_linear")
    if config["output_activation"] == "softmax":
        y = g.op("Softmax", [y], "output_softmax", axis=-1)
    elif config["output_activation"] == "sigmoid":
        y = g.op("Sigmoid", [y], "output_sigmoid")
    return y


def _zero_past_ends(g, out, x_shape, lengths, dtype):
    """Where(t < lengths[b], out[t, b], 0) for out[T, B, ...]; returns its name."""
    from onnx import TensorProto

    T = g.op("Gather", [x_shape, g.constant("index_0_scalar", np.array(0, dtype=np.int64))],
             "num_steps_scalar")
    steps = g.op("Range", [g.constant("zero_int64", np.array(0, dtype=np.int64)), T,
                           g.constant("one_int64", np.array(1, dtype=np.int64))], "steps")  # [T]
    steps = g.op("Unsqueeze", [steps, g.constant("axes_1", np.array([1], dtype=np.int64))],
                 "steps_column")  # [T, 1]
    lengths_int64 = g.op("Cast", [lengths], "lengths_int64", to=TensorProto.INT64)  # [B]
    valid = g.op("Less", [steps, lengths_int64], "valid")  # [T, B]
    valid = g.op("Unsqueeze", [valid, g.constant("axes_2", np.array([2], dtype=np.int64))],
                 "valid_3d")  # [T, B, 1]
    return g.op("Where", [valid, out, g.constant("zero", np.array(0, dtype=dtype))],
                "out_masked")


# --------------------------------------------------------------------------- #
# Import
# --------------------------------------------------------------------------- #

def from_onnx(path):
    """The elman.RNN stored in an ONNX model: a file name, a binary file object or an
    onnx.ModelProto.

    Two forms are read:

    * exactly what to_onnx writes (any of its options): the model comes back with its config and
      parameters bit for bit (in the graph's dtype; a learned h0 only if the graph holds it,
      i.e. it was written without h0_input);
    * a graph of a single RNN node (direction forward or bidirectional, one activation elman
      has, no clip; layout 1 gives batch_first) whose W, R and optional B are initializers,
      such as hand-written or converted graphs: b_h = Wb + Rb.

    Anything else raises ValueError describing what was found (torch.onnx's export of nn.RNN
    is not a single node: convert the torch module with elman.from_torch instead). The file is
    only parsed as protobuf; nothing in it is executed and no external data file is read.
    """
    onnx = _import_onnx()
    model, where = _read_model(path, onnx)
    nodes = list(model.graph.node)
    if len(nodes) == 1 and nodes[0].op_type == "RNN" and nodes[0].domain in ("", "ai.onnx"):
        return _read_single_rnn_node(model, where)
    return _read_elman_graph(model, where)


def _read_model(path, onnx):
    """(ModelProto, a name for it in messages) from a path, a binary file object or a ModelProto."""
    if isinstance(path, onnx.ModelProto):
        return path, "the ONNX model"
    if hasattr(path, "read"):
        where, data = "the ONNX file", path.read()
    else:
        where = os.fspath(path)
        with open(where, "rb") as f:
            data = f.read()
    if not isinstance(data, bytes):
        raise TypeError(f"{where} must be opened in binary mode, read() gave "
                        f"{type(data).__name__}")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError, whose module path varies between versions
        raise ValueError(f"{where} is not an ONNX model: it does not parse as one "
                         f"({type(e).__name__}: {e})") from e
    if _has_undecodable_text(model):
        raise ValueError(f"{where} is not a valid ONNX model: it holds names or strings that are "
                         "not UTF-8 text")
    return model, where


def _has_undecodable_text(message):
    """Whether a string field anywhere in message is not UTF-8: ONNX's proto2 schema lets such
    bytes through the parser, which then hands them back as bytes instead of str."""
    for field, value in message.ListFields():
        repeated = (field.is_repeated if hasattr(field, "is_repeated")  # newer protobuf
                    else field.label == field.LABEL_REPEATED)
        values = value if repeated else [value]
        if field.type == field.TYPE_MESSAGE:
            if any(_has_undecodable_text(v) for v in values):
                return True
        elif field.type == field.TYPE_STRING and any(isinstance(v, bytes) for v in values):
            return True
    return False


def _initializers(graph, where):
    """{name: ndarray} of the graph's initializers; external data is refused, never read."""
    from onnx import TensorProto, numpy_helper

    arrays = {}
    for tensor in graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            raise ValueError(f"{where}: initializer {tensor.name!r} is stored in an external "
                             "file; from_onnx reads self-contained models only")
        try:
            arrays[tensor.name] = numpy_helper.to_array(tensor)
        except Exception as e:  # a malformed tensor: wrong data size, unknown type, ...
            raise ValueError(f"{where}: initializer {tensor.name!r} is unreadable "
                             f"({type(e).__name__}: {e})") from e
    return arrays


def _fed_inputs(graph):
    """Names of the graph inputs that are fed (older IR versions also list initializers)."""
    constant = {tensor.name for tensor in graph.initializer}
    return [value.name for value in graph.input if value.name not in constant]


def _default_opset(model, where):
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ValueError(f"{where} imports no version of the default ONNX operator set")
    return versions[0]


def _attributes(node):
    """{name: value} of a node's attributes, strings decoded."""
    from onnx import helper

    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, list):
            value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
        values[attribute.name] = value
    return values


def _elman_activation(attributes, dirs, where):
    """elman's name for the activation of an RNN node (one function, shared by its directions)."""
    functions = attributes.get("activations", ["Tanh"] * dirs)
    alpha = attributes.get("activation_alpha")
    beta = attributes.get("activation_beta")
    if not isinstance(functions, list) or len(functions) != dirs or len(set(functions)) != 1:
        raise ValueError(f"{where}: the RNN node's activations are {functions!r}; elman.RNN needs "
                         f"one function per direction ({dirs}), the same for all")
    for name, (function, want_alpha, want_beta) in ONNX_ACTIVATIONS.items():
        if functions[0] != function:
            continue
        defaults_ok = (alpha is None or alpha == [want_alpha] * dirs) and \
                      (beta is None or beta == [want_beta] * dirs)
        if not defaults_ok:
            raise ValueError(f"{where}: the RNN node's {function} has activation_alpha={alpha}, "
                             f"activation_beta={beta}; elman's {name!r} is {function} with "
                             f"alpha={want_alpha}, beta={want_beta}")
        return name
    known = ", ".join(f for f, _, _ in ONNX_ACTIVATIONS.values())
    raise ValueError(f"{where}: the RNN node's activation {functions[0]!r} has no elman "
                     f"equivalent (elman.RNN knows {known})")


def _float_initializer(arrays, name, what, where):
    """The float32/float64 initializer called name, the node input described by what."""
    if name not in arrays:
        raise ValueError(f"{where}: the RNN node's {what} ({name!r}) is not an initializer; "
                         "elman reads weights stored in the graph")
    array = arrays[name]
    if array.dtype.name not in DTYPES:
        raise ValueError(f"{where}: {what} ({name!r}) is {array.dtype}; elman.RNN computes in "
                         "float32 or float64")
    return array


def _expect(array, shape, what, where):
    if array.shape != tuple(shape):
        raise ValueError(f"{where}: {what} has shape {array.shape}, expected {tuple(shape)}")


def _new_model(config, where):
    """An elman.RNN of this config, or ValueError when the graph describes an impossible one."""
    try:
        return RNN(**config, seed=0)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where} describes no valid elman.RNN: {e}") from e


# ------------------------------------------------------------ a single RNN node

SINGLE_NODE_ATTRIBUTES = {"hidden_size", "direction", "activations", "activation_alpha",
                          "activation_beta", "layout"}


def _read_single_rnn_node(model, where):
    """The elman.RNN of a graph whose only node is an RNN operator with constant weights."""
    graph = model.graph
    node = graph.node[0]
    arrays = _initializers(graph, where)
    attributes = _attributes(node)
    unsupported = sorted(set(attributes) - SINGLE_NODE_ATTRIBUTES)
    if unsupported:
        raise ValueError(f"{where}: the RNN node has attributes {unsupported} that elman.RNN "
                         "cannot represent")
    direction = attributes.get("direction", "forward")
    if direction not in ("forward", "bidirectional"):
        raise ValueError(f"{where}: the RNN node's direction is {direction!r}; elman.RNN runs "
                         "'forward' or 'bidirectional'")
    dirs = 2 if direction == "bidirectional" else 1
    layout = attributes.get("layout", 0)
    if layout not in (0, 1):
        raise ValueError(f"{where}: the RNN node's layout is {layout!r}, expected 0 or 1")

    X, W_name, R_name, B_name, lengths, initial_h = [*node.input, "", "", "", ""][:6]
    fed = _fed_inputs(graph)
    for what, name in (("X", X), ("sequence_lens", lengths), ("initial_h", initial_h)):
        if name and name not in fed:
            raise ValueError(f"{where}: the RNN node's {what} ({name!r}) must be a graph input "
                             "(or, for sequence_lens and initial_h, absent)")
    W = _float_initializer(arrays, W_name, "W", where)
    if W.ndim != 3 or W.shape[0] != dirs:
        raise ValueError(f"{where}: W has shape {W.shape}, expected ({dirs}, H, D) for "
                         f"direction {direction!r}")
    _, H, D = W.shape
    if attributes.get("hidden_size", H) != H:
        raise ValueError(f"{where}: hidden_size is {attributes['hidden_size']} but W has "
                         f"shape {W.shape}")
    R = _float_initializer(arrays, R_name, "R", where)
    _expect(R, (dirs, H, H), "R", where)
    B = np.zeros((dirs, 2 * H), dtype=W.dtype)  # the operator's default: no bias
    if B_name:
        B = _float_initializer(arrays, B_name, "B", where)
        _expect(B, (dirs, 2 * H), "B", where)
    if not W.dtype == R.dtype == B.dtype:
        raise ValueError(f"{where}: W, R and B must share one dtype, got {W.dtype}, {R.dtype}, "
                         f"{B.dtype}")

    rnn = _new_model({"input_size": D, "hidden_size": H, "bidirectional": dirs == 2,
                      "activation": _elman_activation(attributes, dirs, where),
                      "batch_first": layout == 1, "dtype": W.dtype.name}, where)
    for d, suffix in enumerate(("", "_reverse")[:dirs]):
        rnn.params[f"W_xh_l0{suffix}"][...] = W[d]
        rnn.params[f"W_hh_l0{suffix}"][...] = R[d]
        np.add(B[d, :H], B[d, H:], out=rnn.params[f"b_h_l0{suffix}"])  # Wb + Rb
    return rnn


# ------------------------------------------------------------ the form to_onnx writes

TORCH_HINT = ("(torch.onnx's export of nn.RNN is not this form: it adds shape nodes around each "
              "RNN node; convert the torch module with elman.from_torch instead)")


def _read_elman_graph(model, where):
    """The elman.RNN of a graph written by to_onnx: config and parameters are read from the RNN
    nodes and the initializers, then the graph to_onnx would write for that model is compared
    with the file's, node by node, so that no other graph is ever accepted."""
    graph = model.graph
    arrays = _initializers(graph, where)
    fed = _fed_inputs(graph)
    if "x" not in fed or not set(fed) <= set(INPUT_NAMES):
        raise ValueError(f"{where} is not a graph written by elman's to_onnx (nor a single RNN "
                         f"node): its inputs are {fed}, expected 'x' and optionally 'h0', "
                         f"'lengths'. {TORCH_HINT}")
    rnn_nodes = [node for node in graph.node if node.op_type == "RNN"]
    if not rnn_nodes:
        ops = [node.op_type for node in graph.node]
        raise ValueError(f"{where} has no RNN node (its nodes: {ops}); from_onnx reads graphs of "
                         "ONNX RNN operators")

    config, params = _read_config_and_params(graph, rnn_nodes, arrays, where)
    rnn = _new_model(config, where)
    for name, shape in parameter_shapes(rnn.config()).items():
        _expect(params[name], shape, f"the parameter {name}", where)
        rnn.params[name][...] = params[name]

    opset = _default_opset(model, where)
    if opset < MIN_OPSET:
        raise ValueError(f"{where} imports opset {opset}; to_onnx writes opset {MIN_OPSET} or "
                         "newer")
    expected = _build_model(rnn.config(), rnn.params, rnn.dtype, opset,
                            h0_input="h0" in fed, lengths_input="lengths" in fed)
    difference = _first_difference(graph, expected.graph)
    if difference is not None:
        raise ValueError(f"{where} is not a graph of the form elman's to_onnx writes (for "
                         f"{_describe_config(rnn.config())}): {difference}. {TORCH_HINT}")
    return rnn


def _read_config_and_params(graph, rnn_nodes, arrays, where):
    """(config, {parameter name: array}) as to_onnx would have stored them; the caller checks
    that the whole graph agrees."""
    first = rnn_nodes[0]
    attributes = _attributes(first)
    bidirectional = attributes.get("direction") == "bidirectional"
    dirs = 2 if bidirectional else 1
    weights = []  # (W, R, B) per layer
    for layer, node in enumerate(rnn_nodes):
        names = [*node.input, "", "", ""][1:4]
        weights.append([_float_initializer(arrays, name, f"{what} of RNN node {layer}", where)
                        for name, what in zip(names, ("W", "R", "B"))])
    W0 = weights[0][0]
    if W0.ndim != 3 or W0.shape[0] != dirs:
        raise ValueError(f"{where}: W of the first RNN node has shape {W0.shape}, expected "
                         f"({dirs}, H, D)")
    _, H, D = W0.shape
    config = {"input_size": D, "hidden_size": H, "num_layers": len(rnn_nodes),
              "activation": _elman_activation(attributes, dirs, where),
              "bidirectional": bidirectional,
              "batch_first": any(n.op_type == "Transpose" and list(n.input) == ["x"]
                                 for n in graph.node),
              "output_size": None, "output_activation": "identity",
              "learn_h0": "h0" in arrays, "dtype": W0.dtype.name}

    params = {}
    for layer, (W, R, B) in enumerate(weights):
        D_in = D if layer == 0 else dirs * H
        _expect(W, (dirs, H, D_in), f"W of RNN node {layer}", where)
        _expect(R, (dirs, H, H), f"R of RNN node {layer}", where)
        _expect(B, (dirs, 2 * H), f"B of RNN node {layer}", where)
        for d, suffix in enumerate(("", "_reverse")[:dirs]):
            params[f"W_xh_l{layer}{suffix}"] = W[d]
            params[f"W_hh_l{layer}{suffix}"] = R[d]
            params[f"b_h_l{layer}{suffix}"] = B[d, :H]  # Rb = B[d, H:] must be 0: compared later
    if "W_hy_T" in arrays and "b_y" in arrays:
        W_hy_T = arrays["W_hy_T"]
        if W_hy_T.ndim != 2:
            raise ValueError(f"{where}: W_hy_T has shape {W_hy_T.shape}, expected (dirs*H, O)")
        config["output_size"] = W_hy_T.shape[1]
        params["W_hy"], params["b_y"] = W_hy_T.T, arrays["b_y"]
        for op, activation in (("Softmax", "softmax"), ("Sigmoid", "sigmoid")):
            if any(node.op_type == op for node in graph.node):
                config["output_activation"] = activation
    if config["learn_h0"]:
        h0 = arrays["h0"]
        _expect(h0, (len(rnn_nodes) * dirs, 1, H), "the learned initial state h0", where)
        params["h0"] = h0[:, 0]
    return config, params


def _first_difference(found, expected):
    """None when graph found has exactly expected's inputs, outputs, nodes and initializers (names,
    types, attributes, values), else a sentence describing the first difference."""
    from onnx import helper

    def described_values(graph, kind):
        fed = set(_fed_inputs(graph))
        values = graph.output if kind == "outputs" else [v for v in graph.input if v.name in fed]
        return [f"{v.name}: {helper.printable_type(v.type)}" for v in values]

    for kind in ("inputs", "outputs"):
        got, want = described_values(found, kind), described_values(expected, kind)
        if got != want:
            return f"its {kind} are {got}, expected {want}"
    got_ops = [node.op_type for node in found.node]
    want_ops = [node.op_type for node in expected.node]
    if got_ops != want_ops:
        return f"its nodes are {got_ops}, expected {want_ops}"
    for i, (got, want) in enumerate(zip(found.node, expected.node)):
        if _node_signature(got) != _node_signature(want):
            return f"node {i} is {_describe_node(got)}, expected {_describe_node(want)}"
    return _initializer_difference(found, expected)


def _node_signature(node):
    """What a node computes: its operator, inputs, outputs and attributes (not its name)."""
    attributes = sorted((a.name, a.SerializeToString(deterministic=True)) for a in node.attribute)
    return (node.domain or "ai.onnx", node.op_type, list(node.input), list(node.output), attributes)


def _describe_node(node):
    from onnx import helper

    attributes = ", ".join(f"{a.name}={helper.get_attribute_value(a)!r}" for a in node.attribute)
    return (f"{node.op_type}({', '.join(node.input)}) -> {', '.join(node.output)}"
            + (f" [{attributes}]" if attributes else ""))


def _initializer_difference(found, expected):
    from onnx import numpy_helper

    if found.sparse_initializer:
        return "it has sparse initializers"
    got = {t.name: t for t in found.initializer}
    want = {t.name: t for t in expected.initializer}
    if set(got) != set(want) or len(found.initializer) != len(got):
        return f"its initializers are {sorted(got)}, expected {sorted(want)}"
    for name, tensor in want.items():
        a, b = numpy_helper.to_array(got[name]), numpy_helper.to_array(tensor)
        if a.dtype != b.dtype or a.shape != b.shape:
            return (f"initializer {name!r} is a {a.dtype} array of shape {a.shape}, expected "
                    f"{b.dtype} of shape {b.shape}")
        if a.tobytes() != b.tobytes():
            return f"initializer {name!r} holds {a.ravel()[:6]}..., expected {b.ravel()[:6]}..."
    return None
