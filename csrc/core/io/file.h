// Reading a whole small regular file in one call (open, fstat, read, close), so that a batch of
// small images costs one crossing from Python per file instead of five.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pyimgcls::core {

enum class ReadStatus {
    Ok,          // out holds the whole file
    Declined,    // not a regular file, or larger than max_size (or it grew past it): the caller's own path decides
    Error,       // open / fstat / read failed: err holds errno
    Unsupported  // no POSIX file API on this platform
};

// Reads the file at path (a NUL-free byte string) if it is a regular file of at most max_size
// bytes. Opens with O_NONBLOCK, so a FIFO never blocks. Thread-safe.
ReadStatus read_small_file(const std::string& path, std::size_t max_size, std::vector<std::uint8_t>& out, int& err);

}  // namespace pyimgcls::core
