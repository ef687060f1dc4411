// Thin helpers over the HDF5 C API shared by the run-log writer and reader: an owning id, quiet errors
// that become one sinklab::Error line, and the file-access settings every run-log open uses.
#pragma once
#include <hdf5.h>

#include <string>
#include <utility>
#include <vector>

#include "core/check.h"

namespace sinklab::h5 {

// Owns one HDF5 id and releases it with the matching H5?close.
class Id {
public:
    Id() = default;
    Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
    Id(Id&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), close_(o.close_) {}
    Id& operator=(Id&& o) noexcept {
        if (this != &o) {
            reset();
            id_ = std::exchange(o.id_, H5I_INVALID_HID);
            close_ = o.close_;
        }
        return *this;
    }
    Id(const Id&) = delete;
    Id& operator=(const Id&) = delete;
    ~Id() { reset(); }

    hid_t get() const { return id_; }
    bool valid() const { return id_ >= 0; }
    // Closes now and reports failure (closing a written file is where HDF5 writes its last metadata).
    herr_t close() {
        const herr_t status = id_ >= 0 ? close_(id_) : 0;
        id_ = H5I_INVALID_HID;
        return status;
    }
    void reset() { close(); }

private:
    hid_t id_ = H5I_INVALID_HID;
    herr_t (*close_)(hid_t) = nullptr;
};

// Turns off HDF5's printing of its error stack on the calling thread (the library is thread-safe, so the
// setting is per thread): users get one line from us instead of a trace.
void quiet();

// The innermost message of the calling thread's HDF5 error stack, where the failure was detected
// ("unable to open file: Permission denied", shortened from the driver's detail), or "" when empty.
std::string last_error();

// A failed HDF5 call; callers that know the cause (a damaged file) catch it to say so.
struct Failure : Error {
    using Error::Error;
};

// Throws h5::Failure with the message followed by HDF5's own reason when status is negative.
template <typename T, typename... Args>
T check(T status, fmt::format_string<Args...> f, Args&&... args) {
    if (status < 0) {
        const std::string detail = last_error();
        throw Failure(fmt::format(f, std::forward<Args>(args)...) +
                      (detail.empty() ? std::string() : " (HDF5: " + detail + ")"));
    }
    return status;
}

// File access for run logs: newest format (required by SWMR), flock when the file system has it (Lustre
// and NFS mounts often do not), and with `recover` the two switches h5clear uses to open a file left by a
// killed writer: ignore the superblock's "open for write" marks and its stored end-of-file address.
Id file_access(bool recover);

// Names of the members of a group (or of a file's root group) that are of `type` (groups or datasets), in
// creation order where the group tracks it (run logs do), else by name.
// `file` names the file in error messages.
std::vector<std::string> members(hid_t location, H5O_type_t type, const std::string& file);

// The dimensions of a dataset's current extent.
std::vector<hsize_t> extent(hid_t dataset, const std::string& file);

}  // namespace sinklab::h5
