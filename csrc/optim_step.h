// The optimizer steps of elman._core (optim_step.cpp), registered by bindings.cpp.
#pragma once

#include <pybind11/pybind11.h>

namespace elman {

// Defines the private _core.sgd_step, adagrad_step, rmsprop_step and adam_step (elman/optim.py).
void register_optim(pybind11::module_& m);

}  // namespace elman
