#include "core/decode/png.h"

#include <zlib.h>

#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <utility>
#include <vector>

namespace pyimgcls::core {
namespace {

constexpr std::uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
constexpr std::uint32_t kMaxLength = 0x7FFFFFFFu;  // the PNG limit for chunk lengths and sides

std::uint32_t be32(const std::uint8_t* p) {
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

bool is_type(const std::uint8_t* t, const char* name) { return std::memcmp(t, name, 4) == 0; }

// A valid chunk name: four ASCII letters, the third upper case (its "reserved" bit clear); libpng
// refuses the file otherwise.
bool valid_name(const std::uint8_t* t) {
    for (int i = 0; i < 4; ++i) {
        const bool upper = t[i] >= 'A' && t[i] <= 'Z', lower = t[i] >= 'a' && t[i] <= 'z';
        if (!upper && !lower) return false;
    }
    return (t[2] & 0x20) == 0;
}

// The chunk's CRC covers its type and data (p points at the type; n = data length).
bool crc_ok(const std::uint8_t* p, std::uint32_t n) {
    uLong crc = crc32(0L, Z_NULL, 0);
    const std::uint8_t* q = p;
    std::size_t left = std::size_t(n) + 4;
    while (left > 0) {  // crc32 takes uInt lengths
        const uInt step = left > 0x40000000u ? 0x40000000u : static_cast<uInt>(left);
        crc = crc32(crc, q, step);
        q += step;
        left -= step;
    }
    return static_cast<std::uint32_t>(crc) == be32(p + 4 + n);
}

int paeth(int a, int b, int c) {
    const int p = a + b - c;
    const int pa = p > a ? p - a : a - p, pb = p > b ? p - b : b - p, pc = p > c ? p - c : c - p;
    if (pa <= pb && pa <= pc) return a;
    return pb <= pc ? b : c;
}

// Undoes one row's filter in place; prior is the previous unfiltered row (zeros for the first).
bool unfilter(int type, std::uint8_t* row, const std::uint8_t* prior, std::size_t n, int bpp) {
    const std::size_t b = static_cast<std::size_t>(bpp);
    switch (type) {
        case 0:
            return true;
        case 1:
            for (std::size_t i = b; i < n; ++i) row[i] = static_cast<std::uint8_t>(row[i] + row[i - b]);
            return true;
        case 2:
            for (std::size_t i = 0; i < n; ++i) row[i] = static_cast<std::uint8_t>(row[i] + prior[i]);
            return true;
        case 3:
            for (std::size_t i = 0; i < n; ++i) {
                const unsigned left = i >= b ? row[i - b] : 0u;
                row[i] = static_cast<std::uint8_t>(row[i] + ((left + prior[i]) >> 1));
            }
            return true;
        case 4:
            for (std::size_t i = 0; i < n; ++i) {
                const int a = i >= b ? row[i - b] : 0, c = i >= b ? prior[i - b] : 0;
                row[i] = static_cast<std::uint8_t>(row[i] + paeth(a, prior[i], c));
            }
            return true;
        default:
            return false;  // libpng refuses unknown filter types
    }
}

void convert_row(const std::uint8_t* s, std::uint8_t* d, std::uint32_t w, int in_c, PngOut out) {
    switch (out) {
        case PngOut::Rgb:
        case PngOut::Bgr: {
            const bool swap = out == PngOut::Bgr;
            for (std::uint32_t x = 0; x < w; ++x, s += in_c, d += 3) {
                if (in_c <= 2) {
                    d[0] = d[1] = d[2] = s[0];
                } else {
                    d[0] = s[swap ? 2 : 0];
                    d[1] = s[1];
                    d[2] = s[swap ? 0 : 2];
                }
            }
            return;
        }
        case PngOut::Gray:
            for (std::uint32_t x = 0; x < w; ++x, s += in_c) *d++ = s[0];
            return;
        case PngOut::Unchanged:
            std::memcpy(d, s, std::size_t(w) * std::size_t(in_c));
            return;
    }
}

struct Inflater {
    z_stream z{};
    bool ready = false;
    Inflater() { ready = inflateInit(&z) == Z_OK; }
    ~Inflater() {
        if (ready) inflateEnd(&z);
    }
    Inflater(const Inflater&) = delete;
    Inflater& operator=(const Inflater&) = delete;
};

}  // namespace

bool png_parse_header(const std::uint8_t* data, std::size_t size, PngHeader& header) {
    if (size < 8 + 25 || std::memcmp(data, kSignature, 8) != 0) return false;
    const std::uint8_t* c = data + 8;
    if (be32(c) != 13 || !is_type(c + 4, "IHDR") || !crc_ok(c + 4, 13)) return false;
    const std::uint8_t* h = c + 8;
    const std::uint32_t w = be32(h), hh = be32(h + 4);
    const int depth = h[8], color = h[9], compression = h[10], filter = h[11], interlace = h[12];
    // libpng's default limits: a side of at most 1,000,000 pixels (its user limits); OpenCV's: at
    // most 2^30 pixels (CV_IO_MAX_IMAGE_PIXELS). Larger files are left to them (they refuse them).
    if (w == 0 || hh == 0 || w > 1000000u || hh > 1000000u || std::uint64_t(w) * hh > (std::uint64_t(1) << 30))
        return false;
    if (depth != 8 || compression != 0 || filter != 0 || interlace != 0) return false;
    int ch = 0;
    switch (color) {
        case 0: ch = 1; break;
        case 2: ch = 3; break;
        case 4: ch = 2; break;
        case 6: ch = 4; break;
        default: return false;  // palette (3) and invalid types
    }
    header.width = w;
    header.height = hh;
    header.channels = ch;
    return true;
}

bool png_size_plausible(const std::uint8_t* data, std::size_t size, const PngHeader& hd) {
    std::uint64_t idat = 0;
    for (std::size_t pos = 8 + 25; pos <= size && size - pos >= 12;) {
        const std::uint32_t n = be32(data + pos);
        if (n > kMaxLength || size - pos - 12 < n) break;
        if (is_type(data + pos + 4, "IDAT")) idat += n;
        pos += 12 + std::size_t(n);
    }
    const std::uint64_t raw = std::uint64_t(hd.height) * (std::uint64_t(hd.width) * std::uint64_t(hd.channels) + 1);
    return raw <= idat * 1032 + 1024;
}

bool png_has_exif(const std::uint8_t* data, std::size_t size) {
    for (std::size_t pos = 8; pos <= size && size - pos >= 8;) {
        const std::uint32_t n = be32(data + pos);
        const std::uint8_t* t = data + pos + 4;
        if (is_type(t, "eXIf")) return true;
        if (is_type(t, "IDAT") || is_type(t, "IEND")) return false;
        pos += 12 + std::size_t(n);
    }
    return false;
}

int png_out_channels(int stored, PngOut out) {
    switch (out) {
        case PngOut::Rgb:
        case PngOut::Bgr:
            return 3;
        case PngOut::Gray:
            return stored <= 2 ? 1 : 0;  // RGB -> gray is libpng's own weighting: declined
        case PngOut::Unchanged:
            return stored == 2 ? 0 : stored;  // OpenCV returns gray + alpha as 4 channels: declined
    }
    return 0;
}

namespace {

// The walk over the chunks after IHDR: the IDAT payloads (adjacent, valid CRCs) up to IEND, or
// false for any file the decoder leaves to libpng / OpenCV.
bool walk_chunks(const std::uint8_t* data, std::size_t size,
                 std::vector<std::pair<const std::uint8_t*, std::uint32_t>>& idats, std::uint64_t& idat_bytes) {
    bool in_idat = false, idat_done = false;
    std::size_t pos = 8 + 25;
    for (;;) {
        if (pos > size || size - pos < 12) return false;  // truncated: no IEND
        const std::uint32_t n = be32(data + pos);
        const std::uint8_t* t = data + pos + 4;
        if (n > kMaxLength || size - pos - 12 < n || !valid_name(t)) return false;
        if (is_type(t, "IDAT")) {
            if (idat_done || !crc_ok(t, n)) return false;
            in_idat = true;
            if (n > 0) idats.emplace_back(t + 4, n);
            idat_bytes += n;
        } else {
            if (in_idat) idat_done = true;
            if (is_type(t, "IEND")) return n == 0 && crc_ok(t, 0);
            const bool critical = (t[0] & 0x20) == 0;
            if (critical || is_type(t, "tRNS")) return false;  // IHDR twice, PLTE, unknown critical; transparency
            if (!in_idat) {
                // OpenCV reads the chunks before the image data itself (for APNG) and refuses, or
                // reads differently, what libpng alone would accept: animation chunks, a bKGD of
                // the wrong size, an ancillary chunk above its 8,000,000-byte limit (tEXt exempt).
                if (is_type(t, "acTL") || is_type(t, "fcTL")) return false;
                if (is_type(t, "bKGD") && n != 1 && n != 2 && n != 6) return false;
                if (n > 8000000u - 12u && !is_type(t, "tEXt") && !is_type(t, "fdAT")) return false;
            }
        }
        pos += 12 + std::size_t(n);
    }
}

bool decode_checked(const std::uint8_t* data, std::size_t size, const PngHeader& hd, PngOut out, std::uint8_t* dst) {
    const int out_c = png_out_channels(hd.channels, out);
    if (out_c == 0) return false;
    const std::uint64_t rowbytes = std::uint64_t(hd.width) * std::uint64_t(hd.channels);
    const std::uint64_t total = std::uint64_t(hd.height) * (rowbytes + 1);
    // Walk the chunks first (nothing allocated for a file that is then declined), then inflate the
    // IDAT payloads in one call with Z_FINISH: no 32 KiB sliding window is set up, which is most
    // of the cost for a small image.
    std::vector<std::pair<const std::uint8_t*, std::uint32_t>> idats;
    std::uint64_t idat_bytes = 0;
    if (!walk_chunks(data, size, idats, idat_bytes)) return false;
    if (idats.empty() || idat_bytes > 0xFFFFFFFFu || total > 0xFFFFFFFFu) return false;
    std::vector<std::uint8_t> joined;
    const std::uint8_t* in = idats[0].first;
    if (idats.size() > 1) {
        joined.reserve(static_cast<std::size_t>(idat_bytes));
        for (const auto& c : idats) joined.insert(joined.end(), c.first, c.first + c.second);
        in = joined.data();
    }
    // libpng inflates row by row within the window the zlib header declares, and refuses a stream
    // that reaches further back; one inflate call over the whole output would not notice. A window
    // that covers the whole output cannot be exceeded (libpng's own writer sizes it so).
    const unsigned cinfo = in[0] >> 4;
    if (cinfo < 7 && (std::uint64_t(1) << (cinfo + 8)) < total) return false;
    std::unique_ptr<std::uint8_t[]> raw(new (std::nothrow) std::uint8_t[static_cast<std::size_t>(total)]);
    if (!raw) return false;
    Inflater inf;
    if (!inf.ready) return false;
    inf.z.next_in = const_cast<Bytef*>(in);
    inf.z.avail_in = static_cast<uInt>(idat_bytes);
    inf.z.next_out = raw.get();
    inf.z.avail_out = static_cast<uInt>(total);
    // the whole stream, ending exactly at the end of the image data (every byte of raw written)
    // and of the IDAT bytes
    if (inflate(&inf.z, Z_FINISH) != Z_STREAM_END || inf.z.avail_in != 0 || inf.z.avail_out != 0) return false;
    const std::size_t rb = static_cast<std::size_t>(rowbytes);
    const std::vector<std::uint8_t> zeros(rb, 0);
    const std::uint8_t* prior = zeros.data();
    const std::size_t out_row = std::size_t(hd.width) * std::size_t(out_c);
    for (std::uint32_t y = 0; y < hd.height; ++y) {
        std::uint8_t* line = raw.get() + std::size_t(y) * (rb + 1);
        if (!unfilter(line[0], line + 1, prior, rb, hd.channels)) return false;
        convert_row(line + 1, dst + std::size_t(y) * out_row, hd.width, hd.channels, out);
        prior = line + 1;
    }
    return true;
}

}  // namespace

bool png_decode(const std::uint8_t* data, std::size_t size, const PngHeader& hd, PngOut out, std::uint8_t* dst) {
    try {
        return decode_checked(data, size, hd, out, dst);
    } catch (const std::bad_alloc&) {
        return false;  // the full decoder reports it
    }
}

}  // namespace pyimgcls::core
