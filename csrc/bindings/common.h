// Helpers shared by the registrars of pyimgcls._core: array aliases and messages.
//
// Every binding follows one pattern (STYLE.md, "Crossing the boundary"): with the GIL held it converts
// and checks its arguments, takes every pointer and size it needs into plain locals and allocates its
// output arrays; then a py::gil_scoped_release block calls the core on those locals only (nothing
// py::, no array argument, no output array, no proxy of one: tests/test_native_boundary.py reads the
// sources for that); the result is wrapped after the GIL is back. The argument arrays stay alive for the
// whole call (pybind11's argument casters hold them) and so do output arrays held in locals.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

// The shortest decimal that reads back as v ("0.25", "1e+10", "nan", "-inf"): a value for a message.
inline std::string num_str(double v) {
    char buf[40];
    for (int digits = 6; digits <= 17; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    return buf;
}

// Index of the first NaN or infinity among n values, or -1. Plain C++: may run without the GIL.
template <typename T>
std::int64_t first_non_finite(const T* v, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i)
        if (!std::isfinite(v[i])) return i;
    return -1;
}

// Throws ValueError unless `a` is 1-d: "<name> must be 1-d, got shape (2, 3)".
inline void check_1d(const py::array& a, const char* name) {
    if (a.ndim() != 1) throw py::value_error(std::string(name) + " must be 1-d, got shape " + shape_str(a));
}

// Each adds its area's functions to the module (called once, in this order, by module.cpp).
void register_preprocess(py::module_& m);
void register_boxes(py::module_& m);
void register_metrics(py::module_& m);
void register_crop(py::module_& m);
void register_decode(py::module_& m);  // empty without zlib
void register_linear(py::module_& m);

}  // namespace pyimgcls::bindings
