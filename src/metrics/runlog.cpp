#include "metrics/runlog.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <set>

#include "core/tensor.h"
#include "metrics/h5util.h"
#include "metrics/runlog_format.h"

namespace sinklab {

namespace fs = std::filesystem;

namespace {

// Chunks of at most this size: small enough that rewriting the partly filled last chunk at each flush is cheap,
// large enough that a scalar column of 100k steps is ~100 chunks.
constexpr int64_t kChunkBytes = 64 << 10;
constexpr int64_t kMaxChunkRows = 1024;
// Rows at least this big (attention maps) get one-row chunks, so each is compressed and written once.
constexpr int64_t kBigRowBytes = 16 << 10;
constexpr unsigned kDeflateLevel = 4;

constexpr const char* kStartNewRun = "resume with the config the run began with, or start a new run (another run.name)";

int64_t row_elements(const ColumnSpec& c) {
    int64_t n = 1;
    for (int64_t d : c.row_shape) n *= d;
    return n;
}

int64_t row_bytes(const ColumnSpec& c) { return row_elements(c) * (c.integer ? 8 : 4); }

hid_t file_type(const ColumnSpec& c) { return c.integer ? H5T_STD_I64LE : H5T_IEEE_F32LE; }

void validate(const std::vector<GroupSpec>& groups) {
    std::set<std::string> group_names;
    for (const GroupSpec& g : groups) {
        SL_ASSERT(!g.name.empty() && g.name.find('/') == std::string::npos, "group name '{}'", g.name);
        SL_ASSERT(group_names.insert(g.name).second, "group {} given twice", g.name);
        std::set<std::string> column_names;
        bool has_step = false;
        for (const ColumnSpec& c : g.columns) {
            SL_ASSERT(!c.name.empty() && c.name.find('/') == std::string::npos, "column name '{}'", c.name);
            SL_ASSERT(column_names.insert(c.name).second, "column {}/{} given twice", g.name, c.name);
            for (int64_t d : c.row_shape)
                SL_ASSERT(d > 0, "column {}/{} row shape {}", g.name, c.name, shape_str(c.row_shape));
            if (c.name == runlog::kStepColumn) {
                SL_ASSERT(c.integer && c.row_shape.empty(), "{}/step must be an integer scalar", g.name);
                has_step = true;
            }
        }
        SL_ASSERT(has_step, "group {} has no step column", g.name);
    }
}

h5::Id create_property_list(hid_t cls) { return h5::Id(h5::check(H5Pcreate(cls), "H5Pcreate"), H5Pclose); }

// Creation order is tracked so that readers list groups and columns in schema order (h5py: the columns).
h5::Id ordered_links(hid_t cls) {
    h5::Id plist = create_property_list(cls);
    h5::check(H5Pset_link_creation_order(plist.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED),
              "H5Pset_link_creation_order");
    return plist;
}

void write_attr(hid_t loc, const std::string& name, hid_t file_type, hid_t memory_type, const void* value,
                const std::string& path) {
    h5::Id space(H5Screate(H5S_SCALAR), H5Sclose);
    if (H5Aexists(loc, name.c_str()) > 0)
        h5::check(H5Adelete(loc, name.c_str()), "{}: cannot replace attribute {}", path, name);
    h5::Id attr(h5::check(H5Acreate2(loc, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                          "{}: cannot create attribute {}", path, name),
                H5Aclose);
    h5::check(H5Awrite(attr.get(), memory_type, value), "{}: cannot write attribute {}", path, name);
}

void write_attrs(hid_t file, const std::vector<std::pair<std::string, std::string>>& str_attrs,
                 const std::vector<std::pair<std::string, double>>& num_attrs, const std::string& path) {
    h5::Id str_type(H5Tcopy(H5T_C_S1), H5Tclose);
    h5::check(H5Tset_size(str_type.get(), H5T_VARIABLE), "H5Tset_size");
    h5::check(H5Tset_cset(str_type.get(), H5T_CSET_UTF8), "H5Tset_cset");
    for (const auto& [name, value] : str_attrs) {
        const char* text = value.c_str();
        write_attr(file, name, str_type.get(), str_type.get(), &text, path);
    }
    for (const auto& [name, value] : num_attrs) write_attr(file, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, path);
}

void create_dataset(hid_t group, const std::string& group_name, const ColumnSpec& c, const std::string& path) {
    std::vector<hsize_t> dims{0}, max_dims{H5S_UNLIMITED}, chunk;
    for (int64_t d : c.row_shape) {
        dims.push_back(hsize_t(d));
        max_dims.push_back(hsize_t(d));
    }
    chunk = dims;
    const bool big = row_bytes(c) >= kBigRowBytes;
    chunk[0] = big ? 1 : hsize_t(std::clamp(kChunkBytes / row_bytes(c), int64_t(1), kMaxChunkRows));
    h5::Id space(H5Screate_simple(int(dims.size()), dims.data(), max_dims.data()), H5Sclose);

    h5::Id dcpl = create_property_list(H5P_DATASET_CREATE);
    h5::check(H5Pset_chunk(dcpl.get(), int(chunk.size()), chunk.data()), "H5Pset_chunk");
    // Rows allocated but never written read as "missing": step -1 (see runlog_format.h) and NaN.
    const int64_t int_fill = runlog::kNoStep;
    const float float_fill = std::numeric_limits<float>::quiet_NaN();
    if (c.integer)
        h5::check(H5Pset_fill_value(dcpl.get(), H5T_NATIVE_INT64, &int_fill), "H5Pset_fill_value");
    else
        h5::check(H5Pset_fill_value(dcpl.get(), H5T_NATIVE_FLOAT, &float_fill), "H5Pset_fill_value");
    if (big && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
        h5::check(H5Pset_shuffle(dcpl.get()), "H5Pset_shuffle");
        h5::check(H5Pset_deflate(dcpl.get(), kDeflateLevel), "H5Pset_deflate");
    }
    h5::Id dataset(
        h5::check(H5Dcreate2(group, c.name.c_str(), file_type(c), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                  "{}: cannot create dataset /{}/{}", path, group_name, c.name),
        H5Dclose);
}

// Checks that the file holds exactly the groups and columns of `groups`, with the same types and row shapes.
void check_schema(hid_t file, const std::vector<GroupSpec>& groups, const std::string& path) {
    std::set<std::string> expected_groups;
    for (const GroupSpec& g : groups) expected_groups.insert(g.name);
    for (const std::string& name : h5::members(file, H5O_TYPE_GROUP, path))
        SL_REQUIRE(expected_groups.count(name), "cannot resume {}: it has a group /{} that this run does not log; {}",
                   path, name, kStartNewRun);

    for (const GroupSpec& g : groups) {
        SL_REQUIRE(H5Lexists(file, g.name.c_str(), H5P_DEFAULT) > 0,
                   "cannot resume {}: it has no group /{}, which this run logs; {}", path, g.name, kStartNewRun);
        h5::Id group(h5::check(H5Gopen2(file, g.name.c_str(), H5P_DEFAULT), "{}: cannot open group /{}", path, g.name),
                     H5Gclose);
        std::set<std::string> expected_columns;
        for (const ColumnSpec& c : g.columns) expected_columns.insert(c.name);
        for (const std::string& name : h5::members(group.get(), H5O_TYPE_DATASET, path))
            SL_REQUIRE(expected_columns.count(name),
                       "cannot resume {}: it has a dataset /{}/{} that this run does not log; {}", path, g.name, name,
                       kStartNewRun);

        for (const ColumnSpec& c : g.columns) {
            SL_REQUIRE(H5Lexists(group.get(), c.name.c_str(), H5P_DEFAULT) > 0,
                       "cannot resume {}: it has no dataset /{}/{}, which this run logs; {}", path, g.name, c.name,
                       kStartNewRun);
            const h5::Id dataset = runlog::open_dataset(group.get(), c.name, path, false);
            h5::Id type(h5::check(H5Dget_type(dataset.get()), "H5Dget_type"), H5Tclose);
            const H5T_class_t cls = H5Tget_class(type.get());
            const bool is_integer = cls == H5T_INTEGER;
            SL_REQUIRE(is_integer == c.integer && (is_integer || cls == H5T_FLOAT),
                       "cannot resume {}: dataset /{}/{} holds {} values, this run logs {}; {}", path, g.name, c.name,
                       is_integer ? "integer" : "non-integer", c.integer ? "integers" : "floats", kStartNewRun);
            const std::vector<hsize_t> dims = h5::extent(dataset.get(), path);
            const std::vector<int64_t> file_row(dims.begin() + (dims.empty() ? 0 : 1), dims.end());
            SL_REQUIRE(!dims.empty() && file_row == c.row_shape,
                       "cannot resume {}: dataset /{}/{} has rows of shape {}, this run logs rows of shape {}; {}",
                       path, g.name, c.name, shape_str(file_row), shape_str(c.row_shape), kStartNewRun);
        }
    }
}

// Adds the columns of `groups` marked `added` that the file lacks (and their group), written by a sinklab that did not
// log them yet: a run continues under a newer version, whose new columns read as missing (NaN, or -1 for integers)
// in the rows before. Any other column missing is left for check_schema to refuse.
void add_new_columns(hid_t file, const std::vector<GroupSpec>& groups, const std::string& path) {
    for (const GroupSpec& g : groups) {
        const bool had_group = H5Lexists(file, g.name.c_str(), H5P_DEFAULT) > 0;
        h5::Id group(h5::check(had_group ? H5Gopen2(file, g.name.c_str(), H5P_DEFAULT)
                                         : H5Gcreate2(file, g.name.c_str(), H5P_DEFAULT,
                                                      ordered_links(H5P_GROUP_CREATE).get(), H5P_DEFAULT),
                               "{}: cannot open or create group /{}", path, g.name),
                     H5Gclose);
        // Only a group that has its step column can say how many rows a new column needs.
        if (had_group && H5Lexists(group.get(), runlog::kStepColumn, H5P_DEFAULT) <= 0) continue;
        const hsize_t rows =
            had_group ? h5::extent(runlog::open_dataset(group.get(), runlog::kStepColumn, path, false).get(), path)[0]
                      : 0;
        for (const ColumnSpec& c : g.columns) {
            if (!c.added || H5Lexists(group.get(), c.name.c_str(), H5P_DEFAULT) > 0) continue;
            create_dataset(group.get(), g.name, c, path);
            const h5::Id dataset = runlog::open_dataset(group.get(), c.name, path, false);
            std::vector<hsize_t> dims{rows};
            for (int64_t d : c.row_shape) dims.push_back(hsize_t(d));
            h5::check(H5Dset_extent(dataset.get(), dims.data()), "{}: cannot extend /{}/{}", path, g.name, c.name);
        }
    }
}

// Reads every row of a dataset of extent `dims` a slab at a time: read whole as doubles, a long run's column of
// per-layer, per-head rows (200k steps x 144 values) would take 230 MB.
void read_all_rows(hid_t dataset, const std::vector<hsize_t>& dims, const std::string& column,
                   const std::string& path) {
    constexpr hsize_t kSlabValues = 1 << 20;
    const hsize_t rows = dims[0];
    hsize_t row_values = 1;
    for (size_t i = 1; i < dims.size(); i++) row_values *= dims[i];
    if (rows == 0 || row_values == 0) return;
    const hsize_t slab_rows = std::clamp<hsize_t>(kSlabValues / row_values, 1, rows);
    std::vector<double> slab(slab_rows * row_values);  // [slab_rows, row shape]
    h5::Id file_space(h5::check(H5Dget_space(dataset), "H5Dget_space"), H5Sclose);
    std::vector<hsize_t> start(dims.size(), 0), count = dims;
    for (start[0] = 0; start[0] < rows; start[0] += slab_rows) {
        count[0] = std::min(slab_rows, rows - start[0]);
        h5::check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
                  "H5Sselect_hyperslab");
        h5::Id memory_space(h5::check(H5Screate_simple(int(count.size()), count.data(), nullptr), "H5Screate_simple"),
                            H5Sclose);
        h5::check(H5Dread(dataset, H5T_NATIVE_DOUBLE, memory_space.get(), file_space.get(), H5P_DEFAULT, slab.data()),
                  "{}: cannot read /{} (rows {} to {})", path, column, start[0], start[0] + count[0] - 1);
    }
}

// Drops the rows after `through_step` and any rows a killed writer left incomplete, then reads every row kept:
// damage to a chunk or to a dataset's chunk index then stops the resume here, not at the first flush, after
// steps whose metrics would be lost.
void truncate_rows(hid_t file, const std::vector<GroupSpec>& groups, int64_t through_step, const std::string& path) {
    for (const GroupSpec& g : groups) {
        h5::Id group(h5::check(H5Gopen2(file, g.name.c_str(), H5P_DEFAULT), "{}: cannot open /{}", path, g.name),
                     H5Gclose);
        const int64_t rows = runlog::complete_rows(group.get(), g.name, path, false, through_step);
        for (const ColumnSpec& c : g.columns) {
            const h5::Id dataset = runlog::open_dataset(group.get(), c.name, path, false);
            std::vector<hsize_t> dims = h5::extent(dataset.get(), path);
            dims[0] = hsize_t(rows);
            h5::check(H5Dset_extent(dataset.get(), dims.data()), "{}: cannot truncate /{}/{}", path, g.name, c.name);
            read_all_rows(dataset.get(), dims, fmt::format("{}/{}", g.name, c.name), path);
        }
    }
}

}  // namespace

struct RunLog::State {
    struct Column {
        ColumnSpec spec;
        int64_t row_elements = 0;
        h5::Id dataset;
        std::vector<double> pending;  // [pending_rows, row_elements]
    };
    struct Group {
        std::string name;
        std::vector<Column> columns;
        size_t step_column = 0;
        int64_t rows = 0;  // rows on disk
        int64_t pending_rows = 0;
        int64_t last_step = -1;
    };

    std::string path;
    h5::Id file;  // declared before `groups` so that the datasets close first
    std::vector<Group> groups;

    // Opens the datasets of a file in SWMR-write mode and finds where each group continues.
    State(std::string path_, h5::Id file_, const std::vector<GroupSpec>& specs)
        : path(std::move(path_)), file(std::move(file_)) {
        for (const GroupSpec& spec : specs) {
            Group g;
            g.name = spec.name;
            h5::Id group(
                h5::check(H5Gopen2(file.get(), spec.name.c_str(), H5P_DEFAULT), "{}: cannot open /{}", path, spec.name),
                H5Gclose);
            for (const ColumnSpec& c : spec.columns) {
                if (c.name == runlog::kStepColumn) g.step_column = g.columns.size();
                g.columns.push_back({c, row_elements(c), runlog::open_dataset(group.get(), c.name, path, false), {}});
            }
            g.rows = runlog::complete_rows(group.get(), g.name, path, false, std::numeric_limits<int64_t>::max());
            if (g.rows > 0) {
                const hid_t step = g.columns[g.step_column].dataset.get();
                const hsize_t start = hsize_t(g.rows - 1), count = 1;
                h5::Id file_space(h5::check(H5Dget_space(step), "H5Dget_space"), H5Sclose);
                h5::check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr),
                          "H5Sselect_hyperslab");
                h5::Id memory_space(H5Screate_simple(1, &count, nullptr), H5Sclose);
                h5::check(
                    H5Dread(step, H5T_NATIVE_INT64, memory_space.get(), file_space.get(), H5P_DEFAULT, &g.last_step),
                    "{}: cannot read /{}/step", path, g.name);
            }
            groups.push_back(std::move(g));
        }
    }

    Group& group(const std::string& name) {
        return const_cast<Group&>(static_cast<const State*>(this)->group(name));
    }
    const Group& group(const std::string& name) const {
        for (const Group& g : groups)
            if (g.name == name) return g;
        fail_internal(__FILE__, __LINE__, fmt::format("run log has no group {}", name));
    }

    // Extends the column to `rows_after` rows and writes its pending rows at the end.
    void write_pending(const Group& g, Column& c, int64_t rows_after) {
        std::vector<hsize_t> dims{hsize_t(rows_after)}, start{hsize_t(g.rows)}, count{hsize_t(g.pending_rows)};
        for (int64_t d : c.spec.row_shape) {
            dims.push_back(hsize_t(d));
            start.push_back(0);
            count.push_back(hsize_t(d));
        }
        const hid_t dataset = c.dataset.get();
        h5::check(H5Dset_extent(dataset, dims.data()), "{}: cannot extend /{}/{}; check free disk space", path, g.name,
                  c.spec.name);
        h5::Id file_space(h5::check(H5Dget_space(dataset), "H5Dget_space"), H5Sclose);
        h5::check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
                  "H5Sselect_hyperslab");
        h5::Id memory_space(H5Screate_simple(int(count.size()), count.data(), nullptr), H5Sclose);
        herr_t status;
        if (c.spec.integer) {
            const std::vector<int64_t> values(c.pending.begin(), c.pending.end());
            status =
                H5Dwrite(dataset, H5T_NATIVE_INT64, memory_space.get(), file_space.get(), H5P_DEFAULT, values.data());
        } else {
            const std::vector<float> values(c.pending.begin(), c.pending.end());
            status =
                H5Dwrite(dataset, H5T_NATIVE_FLOAT, memory_space.get(), file_space.get(), H5P_DEFAULT, values.data());
        }
        h5::check(status, "{}: cannot write /{}/{}; check free disk space", path, g.name, c.spec.name);
        h5::check(H5Dflush(dataset), "{}: cannot flush /{}/{}; check free disk space", path, g.name, c.spec.name);
    }

    void write_group(Group& g) {
        const int64_t rows_after = g.rows + g.pending_rows;
        // The step column goes last: a row is data once its step is on disk (runlog_format.h).
        for (size_t i = 0; i < g.columns.size(); i++)
            if (i != g.step_column) write_pending(g, g.columns[i], rows_after);
        write_pending(g, g.columns[g.step_column], rows_after);
        for (Column& c : g.columns) c.pending.clear();
        g.rows = rows_after;
        g.pending_rows = 0;
    }
};

RunLog::RunLog(std::unique_ptr<State> state) : state_(std::move(state)) {}

std::unique_ptr<RunLog> RunLog::create(const std::string& path, const std::vector<GroupSpec>& groups,
                                       const std::vector<std::pair<std::string, std::string>>& str_attrs,
                                       const std::vector<std::pair<std::string, double>>& num_attrs) {
    h5::quiet();
    validate(groups);
    const fs::path target(path);
    const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
    std::error_code error;
    SL_REQUIRE(!fs::exists(target, error), "{} already exists: continue that run with --resume, or start a new run",
               path);
    SL_REQUIRE(fs::is_directory(folder),
               "cannot create run log {}: folder {} does not exist or is not a folder; check run.out_dir", path,
               folder.string());
    SL_REQUIRE(access(folder.c_str(), W_OK) == 0,
               "cannot create run log {}: folder {} is not writable ({}); check run.out_dir and its permissions",
               path, folder.string(), std::strerror(errno));

    // The file is built under a temporary name and appears under its own only once it is complete and in SWMR
    // mode, so a reader or a resume never meets a half-made file.
    const std::string partial = path + ".partial";
    h5::Id file;
    try {
        file = h5::Id(h5::check(H5Fcreate(partial.c_str(), H5F_ACC_TRUNC, ordered_links(H5P_FILE_CREATE).get(),
                                          h5::file_access(false).get()),
                                "cannot create run log {}; check that its folder is writable and has free space", path),
                      H5Fclose);
        write_attrs(file.get(), str_attrs, num_attrs, path);
        for (const GroupSpec& g : groups) {
            h5::Id group(h5::check(H5Gcreate2(file.get(), g.name.c_str(), H5P_DEFAULT,
                                              ordered_links(H5P_GROUP_CREATE).get(), H5P_DEFAULT),
                                   "{}: cannot create group /{}", path, g.name),
                         H5Gclose);
            for (const ColumnSpec& c : g.columns) create_dataset(group.get(), g.name, c, path);
        }
        h5::check(H5Fstart_swmr_write(file.get()), "{}: cannot start SWMR writing; check free disk space", path);
    } catch (...) {
        file.reset();
        fs::remove(partial, error);
        throw;
    }
    fs::rename(partial, target, error);
    SL_REQUIRE(!error, "cannot rename {} to {}: {}", partial, path, error.message());
    return std::unique_ptr<RunLog>(new RunLog(std::make_unique<State>(path, std::move(file), groups)));
}

std::unique_ptr<RunLog> RunLog::resume(const std::string& path, const std::vector<GroupSpec>& groups,
                                       int64_t through_step,
                                       const std::vector<std::pair<std::string, std::string>>& str_attrs,
                                       const std::vector<std::pair<std::string, double>>& num_attrs) {
    h5::quiet();
    validate(groups);
    std::error_code error;
    SL_REQUIRE(fs::exists(path, error), "cannot resume: run log {} does not exist; start the run without --resume",
               path);
    SL_REQUIRE(H5Fis_hdf5(path.c_str()) > 0,
               "cannot resume: {} is not an HDF5 file (damaged or not a run log); move it away and start a new run",
               path);

    // Repair and truncate a copy, then swap it in: a failure or a kill on the way leaves the original as it was.
    const std::string copy = path + ".resume";
    fs::copy_file(path, copy, fs::copy_options::overwrite_existing, error);
    if (error) {
        std::error_code ignored;
        fs::remove(copy, ignored);  // a cut copy is of no use to the next resume either
    }
    SL_REQUIRE(!error, "cannot resume {}: copying it to {} failed ({}); check free disk space", path, copy,
               error.message());
    h5::Id writer;
    try {
        h5::Id file(h5::check(H5Fopen(copy.c_str(), H5F_ACC_RDWR, h5::file_access(true).get()),
                              "cannot resume: {} is damaged beyond repair; move it away and start a new run", path),
                    H5Fclose);
        try {
            // A killed SWMR writer may have written past the end-of-file address the superblock records; new
            // space must start after everything on disk (what `h5clear --increment` does).
            h5::check(H5Fincrement_filesize(file.get(), 0), "{}: cannot set the end of file", path);
            add_new_columns(file.get(), groups, path);
            check_schema(file.get(), groups, path);
            truncate_rows(file.get(), groups, through_step, path);
            write_attrs(file.get(), str_attrs, num_attrs, path);
        } catch (const h5::Failure& e) {
            fail("cannot resume: {}; the file is damaged: move it away and start a new run", e.what());
        }
        h5::check(file.close(), "cannot resume {}: writing {} failed; check free disk space", path, copy);
        // In SWMR mode before it takes the run log's name, as a new run log is: a reader that opened it between the
        // rename and this open (sinklab compare, h5py) held a lock that failed this open.
        const unsigned swmr_write = H5F_ACC_RDWR | H5F_ACC_SWMR_WRITE;
        writer = h5::Id(h5::check(H5Fopen(copy.c_str(), swmr_write, h5::file_access(false).get()),
                                  "cannot resume: {} cannot be opened for writing", copy),
                        H5Fclose);
        fs::rename(copy, path, error);
        SL_REQUIRE(!error, "cannot resume {}: renaming {} over it failed ({})", path, copy, error.message());
    } catch (...) {
        writer.reset();
        fs::remove(copy, error);
        throw;
    }
    return std::unique_ptr<RunLog>(new RunLog(std::make_unique<State>(path, std::move(writer), groups)));
}

void RunLog::append(const std::string& group, const std::vector<RowValue>& row) {
    SL_ASSERT(state_, "append to a closed run log");
    State::Group& g = state_->group(group);
    SL_ASSERT(row.size() == g.columns.size(), "row of {} has {} columns, the group has {}", group, row.size(),
              g.columns.size());
    // With as many values as columns and each column found, the match is one-to-one.
    std::vector<const std::vector<double>*> values(g.columns.size());
    for (size_t i = 0; i < g.columns.size(); i++) {
        const ColumnSpec& c = g.columns[i].spec;
        const auto given = std::find_if(row.begin(), row.end(), [&](const RowValue& v) { return v.name == c.name; });
        SL_ASSERT(given != row.end(), "row of {} lacks column {}", group, c.name);
        SL_ASSERT(int64_t(given->values.size()) == g.columns[i].row_elements,
                  "{}/{}: {} values, the row shape {} needs {}", group, c.name, given->values.size(),
                  shape_str(c.row_shape), g.columns[i].row_elements);
        if (c.integer)
            for (double v : given->values)
                SL_ASSERT(v == std::floor(v) && std::abs(v) < 0x1p63, "{}/{}: {} is not an integer", group, c.name, v);
        values[i] = &given->values;
    }
    const double step = (*values[g.step_column])[0];
    SL_ASSERT(step > double(g.last_step), "{}: step {} after step {}; steps must increase", group, step, g.last_step);
    for (size_t i = 0; i < g.columns.size(); i++)
        g.columns[i].pending.insert(g.columns[i].pending.end(), values[i]->begin(), values[i]->end());
    g.last_step = int64_t(step);
    g.pending_rows++;
}

void RunLog::flush() {
    SL_ASSERT(state_, "flush of a closed run log");
    h5::quiet();
    for (State::Group& g : state_->groups)
        if (g.pending_rows > 0) state_->write_group(g);
    h5::check(H5Fflush(state_->file.get(), H5F_SCOPE_LOCAL), "{}: flush failed; check free disk space", state_->path);
}

void RunLog::sync() {
    flush();
    void* handle = nullptr;
    h5::check(H5Fget_vfd_handle(state_->file.get(), H5P_DEFAULT, &handle), "{}: cannot sync", state_->path);
    SL_REQUIRE(::fsync(*static_cast<int*>(handle)) == 0, "{}: cannot sync: {}; check free disk space", state_->path,
               std::strerror(errno));
}

int64_t RunLog::last_step(const std::string& group) const {
    SL_ASSERT(state_, "last_step of a closed run log");
    return state_->group(group).last_step;
}

void RunLog::close() {
    if (!state_) return;
    flush();
    std::unique_ptr<State> state = std::move(state_);
    state->groups.clear();
    h5::check(state->file.close(), "{}: closing failed; check free disk space", state->path);
}

RunLog::~RunLog() {
    const bool unwinding = std::uncaught_exceptions() > 0;
    try {
        close();
    } catch (const std::exception& e) {
        // While an error unwinds, the rows are worth a try, but a second failure (the same full disk) would only
        // repeat the error on its way to the user.
        if (!unwinding) spdlog::error("{}", e.what());
    }
}

}  // namespace sinklab
