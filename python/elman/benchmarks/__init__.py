"""elman's benchmark suite: elman against its NumPy reference, torch.nn.RNN, onnxruntime's ONNX
RNN operator and the machine's float32 GEMM (the roofline).

Run it with ``python -m elman bench [--quick]`` (see :mod:`elman.bench_cli` and bench/README.md).
The parts, one purpose each:

* :mod:`.configs`  what is measured: problem sizes, FLOP counts, the targets, the suites
* :mod:`.inputs`   the arrays, drawn from a seed so that every process builds the same ones
* :mod:`.peers`    the libraries behind one interface (imported only in worker processes)
* :mod:`.workers`  one process per library, and the parent's handle on it
* :mod:`.parity`   every peer must agree with elman before it is timed
* :mod:`.probes`   elman's peak memory and per-call overhead
* :mod:`.harness`  the run: parity, alternating rounds, medians
* :mod:`.report`   the markdown table, the plot and the JSON dump
"""
