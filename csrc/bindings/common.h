// Helpers shared by the registrars of pyimgcls._core: array aliases and messages.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

namespace pyimgcls::bindings {

namespace py = pybind11;

// C-contiguous array of T (with .noconvert() on the argument: no silent copy).
template <typename T>
using carr = py::array_t<T, py::array::c_style>;

// "(2, 3)" / "(5,)": an array's shape for error messages.
inline std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (i) s += ", ";
        s += std::to_string(a.shape(i));
    }
    if (a.ndim() == 1) s += ",";
    return s + ")";
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// Each adds its area's functions to the module (called once, in this order, by module.cpp).
void register_preprocess(py::module_& m);
void register_boxes(py::module_& m);
void register_metrics(py::module_& m);

}  // namespace pyimgcls::bindings
