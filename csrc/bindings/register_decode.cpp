// pyimgcls._core: decode_png, read_small_file (glue only: check, release the GIL, call core/decode
// and core/io).
#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "core/io/file.h"
#ifdef PYIMGCLS_HAVE_ZLIB
#include "core/decode/png.h"
#endif

namespace pyimgcls::bindings {
namespace {

py::object read_small_file(const py::bytes& path, std::size_t max_size) {
    std::string p = path;  // os.fsencode()'d by the caller
    if (p.empty() || p.find('\0') != std::string::npos) throw py::value_error("path must be non-empty, without NUL bytes");
    std::vector<std::uint8_t> buf;
    int err = 0;
    core::ReadStatus st;
    {
        py::gil_scoped_release release;
        st = core::read_small_file(p, max_size, buf, err);
    }
    if (st == core::ReadStatus::Error) {
        errno = err;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path.ptr());
        throw py::error_already_set();
    }
    if (st != core::ReadStatus::Ok) return py::none();
    return py::bytes(reinterpret_cast<const char*>(buf.data()), buf.size());
}

}  // namespace

static void register_read(py::module_& m) {
    m.def("read_small_file", &read_small_file, py::arg("path"), py::arg("max_size"),
          "The bytes of a regular file of at most max_size bytes (path: os.fsencode()'d), read in one call with "
          "the GIL released (O_NONBLOCK: a FIFO never blocks). None for anything else (not a regular file, "
          "larger than max_size, no POSIX files here): read those another way. OSError (errno, path) if "
          "open / fstat / read fails.");
}

#ifdef PYIMGCLS_HAVE_ZLIB
namespace {

py::object decode_png(const py::bytes& data, int out) {
    if (out < 0 || out > 3) throw py::value_error("out must be 0 (rgb), 1 (bgr), 2 (gray) or 3 (unchanged), got " + std::to_string(out));
    char* buf = nullptr;
    py::ssize_t size = 0;
    if (PyBytes_AsStringAndSize(data.ptr(), &buf, &size) != 0) throw py::error_already_set();
    const auto* p = reinterpret_cast<const std::uint8_t*>(buf);
    core::PngHeader hd;
    if (!core::png_parse_header(p, static_cast<std::size_t>(size), hd) ||
        !core::png_size_plausible(p, static_cast<std::size_t>(size), hd))
        return py::none();
    const auto mode = static_cast<core::PngOut>(out);
    const int c = core::png_out_channels(hd.channels, mode);
    if (c == 0) return py::none();
    const auto h = static_cast<py::ssize_t>(hd.height), w = static_cast<py::ssize_t>(hd.width);
    py::array_t<std::uint8_t> img = c == 1 ? py::array_t<std::uint8_t>({h, w}) : py::array_t<std::uint8_t>({h, w, py::ssize_t(c)});
    bool ok = false;
    {
        py::gil_scoped_release release;
        ok = core::png_decode(p, static_cast<std::size_t>(size), hd, mode, img.mutable_data());
    }
    if (!ok) return py::none();
    return std::move(img);
}

}  // namespace


void register_decode(py::module_& m) {
    register_read(m);
    m.attr("HAVE_NATIVE_PNG") = true;
    m.def("decode_png", &decode_png, py::arg("data"), py::arg("out"),
          "Decodes a clean 8-bit, non-interlaced gray / gray+alpha / RGB / RGBA PNG into a uint8 array: "
          "out 0 (H, W, 3) RGB, 1 (H, W, 3) BGR (alpha dropped, gray replicated), 2 (H, W) gray (gray files only), "
          "3 the stored channels (not gray+alpha). Returns None for every other file (palette, 16-bit, "
          "interlaced, transparency chunk, any CRC / zlib / structure error, a header too large to allocate): "
          "decode those with a full decoder, which gives its answer or its error. Releases the GIL.");
}
#else
void register_decode(py::module_& m) {
    register_read(m);
    m.attr("HAVE_NATIVE_PNG") = false;
}
#endif

}  // namespace pyimgcls::bindings
