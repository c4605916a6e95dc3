// pyimgcls._core: decode_png, read_small_file (glue only: check, release the GIL, call core/decode
// and core/io).
#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "core/common/parallel.h"
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
    std::uint8_t* dst = img.mutable_data();
    bool ok = false;
    {
        py::gil_scoped_release release;
        ok = core::png_decode(p, static_cast<std::size_t>(size), hd, mode, dst);
    }
    if (!ok) return py::none();
    return std::move(img);
}

// Phase 1 (no GIL, threads): read each file, parse and check its header. Phase 2 (GIL): allocate
// the arrays. Phase 3 (no GIL, threads): decode. Any file not taken (unreadable, not a clean PNG,
// too many pixels, an eXIf chunk, a decode it declines) is None: read_image decides it.
py::list load_pngs(const py::list& paths, std::size_t max_size, std::uint64_t max_pixels, int out, int threads) {
    if (out < 0 || out > 3) throw py::value_error("out must be 0 (rgb), 1 (bgr), 2 (gray) or 3 (unchanged), got " + std::to_string(out));
    const std::size_t n = paths.size();
    std::vector<std::string> p(n);
    for (std::size_t i = 0; i < n; ++i) {
        if (!py::isinstance<py::bytes>(paths[i])) throw py::type_error("paths must be os.fsencode()'d bytes");
        p[i] = paths[i].cast<std::string>();
    }
    const auto mode = static_cast<core::PngOut>(out);
    std::vector<std::vector<std::uint8_t>> data(n);
    std::vector<core::PngHeader> hd(n);
    std::vector<char> take(n, 0);
    {
        py::gil_scoped_release release;
        core::parallel_for(static_cast<std::ptrdiff_t>(n), threads, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
            for (std::ptrdiff_t i = b; i < e; ++i) {
                int err = 0;
                auto& d = data[i];
                if (p[i].empty() || p[i].find('\0') != std::string::npos) continue;
                if (core::read_small_file(p[i], max_size, d, err) != core::ReadStatus::Ok) continue;
                if (!core::png_parse_header(d.data(), d.size(), hd[i]) || !core::png_size_plausible(d.data(), d.size(), hd[i]) ||
                    core::png_out_channels(hd[i].channels, mode) == 0 || core::png_has_exif(d.data(), d.size()))
                    continue;
                if (max_pixels > 0 && std::uint64_t(hd[i].width) * hd[i].height > max_pixels) continue;
                take[i] = 1;
            }
        }, 8);
    }
    std::vector<py::array_t<std::uint8_t>> img(n);
    std::vector<std::uint8_t*> dst(n, nullptr);
    for (std::size_t i = 0; i < n; ++i) {
        if (!take[i]) continue;
        const auto h = static_cast<py::ssize_t>(hd[i].height), w = static_cast<py::ssize_t>(hd[i].width);
        const int c = core::png_out_channels(hd[i].channels, mode);
        try {
            img[i] = c == 1 ? py::array_t<std::uint8_t>({h, w}) : py::array_t<std::uint8_t>({h, w, py::ssize_t(c)});
            dst[i] = img[i].mutable_data();
        } catch (const py::error_already_set& e) {
            if (!e.matches(PyExc_MemoryError)) throw;
            take[i] = 0;  // no memory for this one: read_image reports it as this item's error
        }
    }
    {
        py::gil_scoped_release release;
        core::parallel_for(static_cast<std::ptrdiff_t>(n), threads, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
            for (std::ptrdiff_t i = b; i < e; ++i) {
                if (take[i] && !core::png_decode(data[i].data(), data[i].size(), hd[i], mode, dst[i])) take[i] = 0;
                std::vector<std::uint8_t>().swap(data[i]);  // the file's bytes are not needed any more
            }
        }, 8);
    }
    py::list result(n);
    for (std::size_t i = 0; i < n; ++i) {
        if (take[i]) result[i] = img[i];
        else result[i] = py::none();
    }
    return result;
}

}  // namespace


void register_decode(py::module_& m) {
    register_read(m);
    m.def("load_pngs", &load_pngs, py::arg("paths"), py::arg("max_size"), py::arg("max_pixels"), py::arg("out"),
          py::arg("threads"),
          "Reads and decodes a list of PNG files (os.fsencode()'d paths) on `threads` threads with the GIL released: "
          "each entry is the image as decode_png(data, out) gives it, or None where the file is not taken (unreadable, "
          "not a regular file of at most max_size bytes, not a PNG decode_png decodes, more than max_pixels pixels "
          "(0: no limit), an eXIf chunk before the image data). Decode the None entries with read_image.");
    m.def("decode_png", &decode_png, py::arg("data"), py::arg("out"),
          "Decodes a clean 8-bit, non-interlaced gray / gray+alpha / RGB / RGBA PNG into a uint8 array: "
          "out 0 (H, W, 3) RGB, 1 (H, W, 3) BGR (alpha dropped, gray replicated), 2 (H, W) gray (gray files only), "
          "3 the stored channels (not gray+alpha). Returns None for every other file (palette, 16-bit, "
          "interlaced, transparency chunk, any CRC / zlib / structure error, a header too large to allocate): "
          "decode those with a full decoder, which gives its answer or its error. Releases the GIL.");
}
#else
void register_decode(py::module_& m) { register_read(m); }  // no decode_png / load_pngs without zlib
#endif

}  // namespace pyimgcls::bindings
