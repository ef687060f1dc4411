#include "metrics/h5util.h"

namespace sinklab::h5 {

namespace {

// HDF5's cleanup at exit closes what is still open; after a close that failed (a full disk) HDF5 1.10 crashes in it
// (H5F__close_cb), turning a clear error into a segfault. Every file here is closed by its owner, so it is not
// needed. It must be turned off before the first HDF5 call: at load time.
[[maybe_unused]] const herr_t kNoCleanupAtExit = H5dont_atexit();

// The POSIX driver's message ("file write failed: time = ..., filename = ..., errno = 28, error message = 'No space
// left on device', buf = ...") holds a timestamp with a newline, addresses and byte counts: of it, what it did and
// the system's reason.
std::string tidy(const std::string& message) {
    const std::string reason = "error message = '";
    const size_t at = message.find(reason), colon = message.find(':');
    if (at == std::string::npos || colon == std::string::npos) return message;
    const size_t from = at + reason.size(), to = message.find('\'', from);
    return message.substr(0, colon) + ": " + message.substr(from, to == std::string::npos ? to : to - from);
}

}  // namespace

void quiet() {
    thread_local bool done = false;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
        done = true;
    }
}

std::string last_error() {
    std::string message;
    // Walking upward visits the function that detected the failure first; it has the specific reason.
    auto first = [](unsigned n, const H5E_error2_t* err, void* out) -> herr_t {
        if (n == 0 && err->desc) *static_cast<std::string*>(out) = err->desc;
        return 0;
    };
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first, &message);
    return tidy(message);
}

Id file_access(bool recover) {
    Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    SL_ASSERT(fapl.valid(), "H5Pcreate");
    check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST), "H5Pset_libver_bounds");
    check(H5Pset_file_locking(fapl.get(), true, true), "H5Pset_file_locking");
    // HDF5 retries a metadata block whose checksum fails, in case a SWMR writer was rewriting it, sleeping 2^k ns
    // before attempt k; its default of 100 attempts never ends on a damaged file. 30 give a live writer about a
    // second. The repairing open of a resume reads a file no one writes, and makes one attempt.
    check(H5Pset_metadata_read_attempts(fapl.get(), recover ? 1 : 30), "H5Pset_metadata_read_attempts");
    if (recover) {
        // Private properties registered by HDF5 1.10 for h5clear; H5Pset copies sizeof(hbool_t) bytes.
        hbool_t yes = true;
        check(H5Pset(fapl.get(), "clear_status_flags", &yes), "H5Pset(clear_status_flags)");
        check(H5Pset(fapl.get(), "skip_eof_check", &yes), "H5Pset(skip_eof_check)");
    }
    return fapl;
}

std::vector<std::string> members(hid_t location, H5O_type_t type, const std::string& file) {
    // "." makes a group of a file id too (the root group), which carries the creation-order setting.
    Id group(check(H5Gopen2(location, ".", H5P_DEFAULT), "{}: cannot open a group", file), H5Gclose);
    Id gcpl(check(H5Gget_create_plist(group.get()), "{}: cannot read a group's settings", file), H5Pclose);
    unsigned order_flags = 0;
    check(H5Pget_link_creation_order(gcpl.get(), &order_flags), "{}: cannot read a group's settings", file);
    const H5_index_t index = (order_flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;

    struct Visit {
        H5O_type_t type;
        std::vector<std::string> names;
    } visit{type, {}};
    auto collect = [](hid_t g, const char* name, const H5L_info_t*, void* data) -> herr_t {
        auto* v = static_cast<Visit*>(data);
        H5O_info_t info;
        if (H5Oget_info_by_name2(g, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return -1;
        if (info.type == v->type) v->names.emplace_back(name);
        return 0;
    };
    check(H5Literate(group.get(), index, H5_ITER_INC, nullptr, collect, &visit), "{}: cannot list a group", file);
    return visit.names;
}

std::vector<hsize_t> extent(hid_t dataset, const std::string& file) {
    Id space(check(H5Dget_space(dataset), "{}: cannot read a dataset's shape", file), H5Sclose);
    std::vector<hsize_t> dims(size_t(check(H5Sget_simple_extent_ndims(space.get()), "{}: bad dataset shape", file)));
    check(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), "{}: bad dataset shape", file);
    return dims;
}

}  // namespace sinklab::h5
