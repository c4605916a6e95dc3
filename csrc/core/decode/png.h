// A PNG decoder for the common, clean case: 8-bit gray, gray + alpha, RGB or RGBA, not
// interlaced, every chunk well formed. Anything else (palette, 16-bit, 1/2/4-bit, Adam7, tRNS,
// an unknown critical chunk, a CRC or zlib error, too much or too little image data) is declined,
// and the caller decodes the file with a full decoder (OpenCV's libpng), which gives its answer or
// its error. So a file decoded here gives exactly libpng's pixels, and a file libpng refuses is
// never decoded here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pyimgcls::core {

struct PngHeader {
    std::uint32_t width = 0;
    std::uint32_t height = 0;
    int channels = 0;  // 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA (as stored)
};

// What the caller wants out: the stored channels' conversion done while unfiltering.
enum class PngOut : int {
    Rgb = 0,        // (H, W, 3): gray replicated, alpha dropped (libpng strip_alpha + gray_to_rgb)
    Bgr = 1,        // (H, W, 3), B G R
    Gray = 2,       // (H, W): only from gray / gray + alpha files (alpha dropped)
    Unchanged = 3,  // the stored channels, RGB(A) order; gray + alpha is declined
};

// Parses the signature and IHDR. Returns false (header not filled) for any file this decoder
// declines by its header alone.
bool png_parse_header(const std::uint8_t* data, std::size_t size, PngHeader& header);

// False when the image data cannot fill the header's size: deflate expands at most 1032:1, so a
// header announcing more than 1032 times its IDAT bytes (plus a little) belongs to a truncated or
// hostile file. Checked before any buffer is allocated (memory stays within ~1000x the file).
bool png_size_plausible(const std::uint8_t* data, std::size_t size, const PngHeader& header);

// True if an eXIf chunk comes before the first IDAT (where read_image looks for the EXIF
// orientation); the batch loader leaves such files to read_image.
bool png_has_exif(const std::uint8_t* data, std::size_t size);

// Channels of the output for `out` and a stored channel count, or 0 if declined.
int png_out_channels(int stored_channels, PngOut out);

// Decodes into dst (height * width * png_out_channels bytes, rows contiguous). Returns false,
// with dst in an unspecified state, for any file it declines (see above). Thread-safe.
bool png_decode(const std::uint8_t* data, std::size_t size, const PngHeader& header, PngOut out,
                std::uint8_t* dst);

}  // namespace pyimgcls::core
