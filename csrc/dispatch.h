// Which build of the kernels elman._core calls (elman.h, KernelTable): chosen once, at import.
#pragma once

#include <string>
#include <vector>

#include "elman.h"

namespace elman::dispatch {

// Loads the chosen build: ELMAN_ISA if set (an ImportError if this package has no such build or
// this CPU cannot run it), else the first of the preferred builds that this CPU runs.
void load();

const KernelTable& table();                 // the build in use (load() must have succeeded)
std::vector<std::string> built();           // the builds in this package
std::vector<std::string> runnable();        // those this CPU can run

template <typename S>
const Kernels<S>& kernels() { return kernels_of<S>(table()); }

}  // namespace elman::dispatch
