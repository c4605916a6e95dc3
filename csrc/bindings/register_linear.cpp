// pyimgcls._core: softmax_loss_grad, softmax_hessp, linear_kernel_available (glue only: convert,
// check, release the GIL, call core/linear).
#include <cstdint>
#include <string>

#include "bindings/common.h"
#include "core/linear/softmax.h"

namespace pyimgcls::bindings {
namespace {

core::LinearKernel kernel_of(const std::string& name) {
    if (name == "auto") return core::LinearKernel::automatic;
    if (name == "scalar") return core::LinearKernel::scalar;
    if (name == "avx2") return core::LinearKernel::avx2;
    throw py::value_error("kernel must be 'auto', 'scalar' or 'avx2', got '" + name + "'");
}

void check_2d(const py::array& a, const char* name, const char* shape) {
    if (a.ndim() != 2)
        throw py::value_error(std::string(name) + " must have shape " + shape + ", got " + shape_str(a));
}

// (n, d) rows, (K, d) weights, (K,) bias: the shapes every call shares.
void check_model(const carr<float>& x, const carr<float>& w, const carr<float>& b, const char* wname,
                 const char* bname) {
    check_2d(x, "x", "(n, d)");
    check_2d(w, wname, "(K, d)");
    if (w.shape(1) != x.shape(1) || w.shape(0) < 1)
        throw py::value_error(std::string(wname) + " must have shape (K, " + std::to_string(x.shape(1)) +
                              ") with K >= 1, got " + shape_str(w));
    if (b.ndim() != 1 || b.shape(0) != w.shape(0))
        throw py::value_error(std::string(bname) + " must have shape (" + std::to_string(w.shape(0)) + ",), got " +
                              shape_str(b));
}

py::tuple softmax_loss_grad(const carr<float>& x, const carr<float>& w, const carr<float>& b,
                            const carr<std::int64_t>& y, int threads, const std::string& kernel) {
    check_model(x, w, b, "w", "b");
    if (y.ndim() != 1 || y.shape(0) != x.shape(0))
        throw py::value_error("y must have shape (" + std::to_string(x.shape(0)) + ",), got " + shape_str(y));
    const core::LinearKernel kern = kernel_of(kernel);
    if (!core::linear_kernel_available(kern)) throw py::value_error("kernel '" + kernel + "' cannot run here");
    const std::int64_t n = x.shape(0), d = x.shape(1), k = w.shape(0);
    py::array_t<double> gw({k, d}), gb(k);
    py::array_t<float> p({n, k});
    const float* px = x.data();
    const float* pw = w.data();
    const float* pb = b.data();
    const std::int64_t* py_ = y.data();
    double* pgw = gw.mutable_data();
    double* pgb = gb.mutable_data();
    float* pp = p.mutable_data();
    double loss;
    {
        py::gil_scoped_release release;
        loss = core::softmax_loss_grad(px, n, d, pw, pb, k, py_, pgw, pgb, pp, threads, kern);
    }
    return py::make_tuple(loss, gw, gb, p);
}

py::tuple softmax_hessp(const carr<float>& x, const carr<float>& p, const carr<float>& v, const carr<float>& vb,
                        int threads, const std::string& kernel) {
    check_model(x, v, vb, "v", "vb");
    if (p.ndim() != 2 || p.shape(0) != x.shape(0) || p.shape(1) != v.shape(0))
        throw py::value_error("p must have shape (" + std::to_string(x.shape(0)) + ", " + std::to_string(v.shape(0)) +
                              "), got " + shape_str(p));
    const core::LinearKernel kern = kernel_of(kernel);
    if (!core::linear_kernel_available(kern)) throw py::value_error("kernel '" + kernel + "' cannot run here");
    const std::int64_t n = x.shape(0), d = x.shape(1), k = v.shape(0);
    py::array_t<double> hw({k, d}), hb(k);
    const float* px = x.data();
    const float* pp = p.data();
    const float* pv = v.data();
    const float* pvb = vb.data();
    double* phw = hw.mutable_data();
    double* phb = hb.mutable_data();
    {
        py::gil_scoped_release release;
        core::softmax_hessp(px, n, d, pp, k, pv, pvb, phw, phb, threads, kern);
    }
    return py::make_tuple(hw, hb);
}

bool linear_kernel_available(const std::string& kernel) {
    return core::linear_kernel_available(kernel_of(kernel));
}

}  // namespace

void register_linear(py::module_& m) {
    m.def("softmax_loss_grad", &softmax_loss_grad, py::arg("x").noconvert(), py::arg("w").noconvert(),
          py::arg("b").noconvert(), py::arg("y").noconvert(), py::arg("threads") = 0, py::arg("kernel") = "auto",
          "Multinomial logistic loss over float32 rows x (n, d) with weights w (K, d), bias b (K,) and labels y "
          "(n,) int64: (loss, grad_w (K, d) float64, grad_b (K,) float64, p (n, K) float32), unscaled sums "
          "(see csrc/core/linear/softmax.h).");
    m.def("softmax_hessp", &softmax_hessp, py::arg("x").noconvert(), py::arg("p").noconvert(),
          py::arg("v").noconvert(), py::arg("vb").noconvert(), py::arg("threads") = 0, py::arg("kernel") = "auto",
          "The softmax loss's Hessian at probabilities p (n, K) applied to (v (K, d), vb (K,)): (hv_w (K, d), "
          "hv_b (K,)) float64, unscaled sums.");
    m.def("linear_kernel_available", &linear_kernel_available, py::arg("kernel"),
          "Whether the softmax kernels named 'auto', 'scalar' or 'avx2' can run on this CPU and build.");
}

}  // namespace pyimgcls::bindings
