#include "metrics/runlog_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <random>
#include <vector>

namespace sinklab::runlog {

h5::Id open_dataset(hid_t group, const std::string& name, const std::string& file, bool refresh) {
    h5::Id dataset(h5::check(H5Dopen2(group, name.c_str(), H5P_DEFAULT), "{}: cannot open dataset {}", file, name),
                   H5Dclose);
    if (refresh) h5::check(H5Drefresh(dataset.get()), "{}: cannot refresh dataset {}", file, name);
    return dataset;
}

int64_t complete_rows(hid_t group, const std::string& group_name, const std::string& file, bool refresh,
                      int64_t through_step) {
    const std::vector<std::string> columns = h5::members(group, H5O_TYPE_DATASET, file);
    if (columns.empty()) return 0;
    int64_t rows = std::numeric_limits<int64_t>::max();
    for (const std::string& c : columns) {
        const h5::Id dataset = open_dataset(group, c, file, refresh);
        const std::vector<hsize_t> dims = h5::extent(dataset.get(), file);
        rows = std::min(rows, dims.empty() ? 0 : int64_t(dims[0]));
    }
    if (rows == 0 || std::find(columns.begin(), columns.end(), kStepColumn) == columns.end()) return rows;

    const h5::Id step = open_dataset(group, kStepColumn, file, refresh);
    std::vector<int64_t> steps(static_cast<size_t>(rows));  // [rows]
    const hsize_t start = 0, count = hsize_t(rows);
    h5::Id file_space(h5::check(H5Dget_space(step.get()), "H5Dget_space"), H5Sclose);
    h5::check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr),
              "H5Sselect_hyperslab");
    h5::Id memory_space(H5Screate_simple(1, &count, nullptr), H5Sclose);
    h5::check(H5Dread(step.get(), H5T_NATIVE_INT64, memory_space.get(), file_space.get(), H5P_DEFAULT, steps.data()),
              "{}: cannot read {}/{}", file, group_name, kStepColumn);
    const auto end = std::find_if(steps.begin(), steps.end(), [&](int64_t s) { return s < 0 || s > through_step; });
    return int64_t(end - steps.begin());
}

std::string new_run_id() {
    std::random_device entropy;
    std::string id;
    for (int i = 0; i < 4; i++) id += fmt::format("{:08x}", entropy());
    return id;
}

}  // namespace sinklab::runlog
