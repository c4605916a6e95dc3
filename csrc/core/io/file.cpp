#include "core/io/file.h"

#if defined(__unix__) || defined(__APPLE__)
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define PYIMGCLS_POSIX_FILES 1
#endif

namespace pyimgcls::core {

#ifdef PYIMGCLS_POSIX_FILES
namespace {
struct Fd {
    int fd;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};
}  // namespace

ReadStatus read_small_file(const std::string& path, std::size_t max_size, std::vector<std::uint8_t>& out, int& err) {
    out.clear();
    err = 0;
    int flags = O_RDONLY | O_NONBLOCK;
#ifdef O_CLOEXEC
    flags |= O_CLOEXEC;
#endif
    Fd f{::open(path.c_str(), flags)};
    if (f.fd < 0) {
        err = errno;
        return ReadStatus::Error;
    }
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) {
        err = errno;
        return ReadStatus::Error;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) > max_size)
        return ReadStatus::Declined;
    // one byte more than the stat said, so that the end (or a file that grew) shows in one read
    const std::size_t want = static_cast<std::size_t>(st.st_size) + 1;
    out.resize(want);
    std::size_t got = 0;
    for (;;) {
        if (got == out.size()) {
            if (out.size() > max_size) return ReadStatus::Declined;  // grew past the limit
            out.resize(out.size() + 65536 > max_size + 1 ? max_size + 1 : out.size() + 65536);
        }
        const ssize_t r = ::read(f.fd, out.data() + got, out.size() - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            err = errno;
            return ReadStatus::Error;
        }
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    if (got > max_size) return ReadStatus::Declined;
    out.resize(got);
    return ReadStatus::Ok;
}
#else
ReadStatus read_small_file(const std::string&, std::size_t, std::vector<std::uint8_t>& out, int& err) {
    out.clear();
    err = 0;
    return ReadStatus::Unsupported;
}
#endif

}  // namespace pyimgcls::core
