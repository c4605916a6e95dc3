// pyimgcls._core: glue only. Convert arrays, check shapes, release the GIL, call csrc/core.
// One registrar per area (register_<area>.cpp); this file only assembles the module.
#include <pybind11/pybind11.h>

#include "bindings/common.h"
#include "core/common/cpu.h"

PYBIND11_MODULE(_core, m) {
    m.doc() = "pyimgcls native core (private; use the pyimgcls package)";
    pyimgcls::bindings::register_preprocess(m);
    pyimgcls::bindings::register_boxes(m);
    pyimgcls::bindings::register_metrics(m);
    pyimgcls::bindings::register_crop(m);
    pyimgcls::bindings::register_decode(m);
    pyimgcls::bindings::register_linear(m);
    m.def("usable_cores", &pyimgcls::core::usable_cores,
          "Cores this process may use: the CPU affinity mask, limited by the cgroup CPU quota (what threads=0 "
          "means in every kernel).");
}
