#include "metrics/runlog_reader.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>

#include "metrics/h5util.h"
#include "metrics/runlog_format.h"

namespace sinklab {

struct RunLogReader::State {
    std::string path;
    h5::Id file;
    bool swmr = false;                            // opened as a SWMR reader: datasets are refreshed before each read
    mutable std::map<std::string, int64_t> rows;  // complete rows of each group read since open or refresh()

    h5::Id open_group(const std::string& group) const {
        SL_REQUIRE(has_link(file.get(), group, H5O_TYPE_GROUP), "{}: no group /{} (it has: {})", path, group,
                   fmt::join(h5::members(file.get(), H5O_TYPE_GROUP, path), ", "));
        return h5::Id(h5::check(H5Gopen2(file.get(), group.c_str(), H5P_DEFAULT), "{}: cannot open /{}", path, group),
                      H5Gclose);
    }

    static bool has_link(hid_t loc, const std::string& name, H5O_type_t type) {
        if (name.empty() || name.find('/') != std::string::npos || H5Lexists(loc, name.c_str(), H5P_DEFAULT) <= 0)
            return false;
        H5O_info_t info;
        return H5Oget_info_by_name2(loc, name.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) >= 0 && info.type == type;
    }

    h5::Id open_attr(const std::string& name) const {
        SL_REQUIRE(H5Aexists(file.get(), name.c_str()) > 0, "{}: no attribute '{}' (it has: {})", path, name,
                   fmt::join(attr_names(), ", "));
        h5::Id attr(
            h5::check(H5Aopen(file.get(), name.c_str(), H5P_DEFAULT), "{}: cannot open attribute {}", path, name),
            H5Aclose);
        h5::Id space(h5::check(H5Aget_space(attr.get()), "H5Aget_space"), H5Sclose);
        SL_REQUIRE(H5Sget_simple_extent_npoints(space.get()) == 1, "{}: attribute '{}' is not a single value", path,
                   name);
        return attr;
    }

    std::vector<std::string> attr_names() const {
        std::vector<std::string> names;
        auto collect = [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
            static_cast<std::vector<std::string>*>(out)->emplace_back(name);
            return 0;
        };
        h5::check(H5Aiterate2(file.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect, &names),
                  "listing the attributes of {}", path);
        return names;
    }
};

namespace {

// Live and killed runs open as a SWMR reader (the writer's "open for write" mark then is expected, and HDF5
// retries metadata caught mid-update); files that are not SWMR-capable open plainly.
h5::Id open_file(const std::string& path, bool& swmr) {
    h5::quiet();
    std::error_code error;
    SL_REQUIRE(std::filesystem::is_regular_file(path, error),
               "run log {} does not exist; check the run folder (<run.out_dir>/<run.name>/metrics.h5)", path);
    SL_REQUIRE(H5Fis_hdf5(path.c_str()) > 0,
               "{} is not an HDF5 file (damaged, or not a sinklab run log); check the path", path);
    const h5::Id fapl = h5::file_access(false);
    h5::Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get()), H5Fclose);
    swmr = file.valid();
    if (swmr) return file;
    file = h5::Id(h5::check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()),
                            "cannot read run log {}: the file is damaged, or was left by a writer that was not sinklab",
                            path),
                  H5Fclose);
    return file;
}

}  // namespace

RunLogReader::RunLogReader(const std::string& path) : state_(std::make_unique<State>()) {
    state_->path = path;
    state_->file = open_file(path, state_->swmr);
}

RunLogReader::~RunLogReader() = default;
RunLogReader::RunLogReader(RunLogReader&&) noexcept = default;
RunLogReader& RunLogReader::operator=(RunLogReader&&) noexcept = default;

const std::string& RunLogReader::path() const { return state_->path; }

std::vector<std::string> RunLogReader::groups() const {
    h5::quiet();
    return h5::members(state_->file.get(), H5O_TYPE_GROUP, state_->path);
}

std::vector<std::string> RunLogReader::columns(const std::string& group) const {
    h5::quiet();
    return h5::members(state_->open_group(group).get(), H5O_TYPE_DATASET, state_->path);
}

bool RunLogReader::has(const std::string& group, const std::string& column) const {
    h5::quiet();
    if (!State::has_link(state_->file.get(), group, H5O_TYPE_GROUP)) return false;
    return State::has_link(state_->open_group(group).get(), column, H5O_TYPE_DATASET);
}

Dataset RunLogReader::read(const std::string& group, const std::string& column) const {
    return read_rows(group, column, false);
}

Dataset RunLogReader::read_last(const std::string& group, const std::string& column) const {
    return read_rows(group, column, true);
}

Dataset RunLogReader::read_rows(const std::string& group, const std::string& column, bool last_only) const {
    h5::quiet();
    const std::string& path = state_->path;
    const h5::Id g = state_->open_group(group);
    SL_REQUIRE(State::has_link(g.get(), column, H5O_TYPE_DATASET), "{}: no dataset /{}/{} (its columns: {})", path,
               group, column, fmt::join(h5::members(g.get(), H5O_TYPE_DATASET, path), ", "));
    auto cached = state_->rows.find(group);
    if (cached == state_->rows.end())
        cached = state_->rows
                     .emplace(group, runlog::complete_rows(g.get(), group, path, state_->swmr,
                                                           std::numeric_limits<int64_t>::max()))
                     .first;
    const int64_t rows = cached->second;
    const h5::Id dataset = runlog::open_dataset(g.get(), column, path, state_->swmr);

    std::vector<hsize_t> count = h5::extent(dataset.get(), path);
    SL_REQUIRE(!count.empty(), "{}: /{}/{} is a scalar, not a column of rows", path, group, column);
    std::vector<hsize_t> start(count.size(), 0);
    count[0] = hsize_t(last_only ? std::min<int64_t>(rows, 1) : rows);
    start[0] = hsize_t(rows) - count[0];
    Dataset out;
    size_t n = 1;
    for (hsize_t d : count) {
        out.shape.push_back(int64_t(d));
        n *= size_t(d);
    }
    out.data.resize(n);
    if (n == 0) return out;
    h5::Id file_space(h5::check(H5Dget_space(dataset.get()), "H5Dget_space"), H5Sclose);
    h5::check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
              "H5Sselect_hyperslab");
    h5::Id memory_space(H5Screate_simple(int(count.size()), count.data(), nullptr), H5Sclose);
    h5::check(
        H5Dread(dataset.get(), H5T_NATIVE_DOUBLE, memory_space.get(), file_space.get(), H5P_DEFAULT, out.data.data()),
        "{}: cannot read /{}/{} as numbers", path, group, column);
    return out;
}

void RunLogReader::refresh() { state_->rows.clear(); }

bool RunLogReader::has_attr(const std::string& name) const {
    h5::quiet();
    return H5Aexists(state_->file.get(), name.c_str()) > 0;
}

std::string RunLogReader::str_attr(const std::string& name) const {
    h5::quiet();
    const h5::Id attr = state_->open_attr(name);
    h5::Id type(h5::check(H5Aget_type(attr.get()), "H5Aget_type"), H5Tclose);
    SL_REQUIRE(H5Tget_class(type.get()) == H5T_STRING && H5Tis_variable_str(type.get()) > 0,
               "{}: attribute '{}' is not a text", state_->path, name);
    h5::Id memory_type(H5Tcopy(H5T_C_S1), H5Tclose);
    h5::check(H5Tset_size(memory_type.get(), H5T_VARIABLE), "H5Tset_size");
    h5::check(H5Tset_cset(memory_type.get(), H5Tget_cset(type.get())), "H5Tset_cset");
    char* text = nullptr;
    h5::check(H5Aread(attr.get(), memory_type.get(), &text), "{}: cannot read attribute '{}'", state_->path, name);
    std::string value = text ? text : "";
    H5free_memory(text);
    return value;
}

double RunLogReader::num_attr(const std::string& name) const {
    h5::quiet();
    const h5::Id attr = state_->open_attr(name);
    h5::Id type(h5::check(H5Aget_type(attr.get()), "H5Aget_type"), H5Tclose);
    const H5T_class_t cls = H5Tget_class(type.get());
    SL_REQUIRE(cls == H5T_FLOAT || cls == H5T_INTEGER, "{}: attribute '{}' is not a number", state_->path, name);
    double value = 0;
    h5::check(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &value), "{}: cannot read attribute '{}'", state_->path, name);
    return value;
}

std::string run_identity(const std::string& run_dir) {
    const std::string path = (std::filesystem::path(run_dir) / "metrics.h5").string();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return "";
    try {
        const RunLogReader log(path);
        return log.str_attr(log.has_attr(runlog::kRunIdAttr) ? runlog::kRunIdAttr : "created");
    } catch (const Error&) {
        return "(unreadable)";
    }
}

}  // namespace sinklab
