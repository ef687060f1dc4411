// Shared by the run-log tests: a small schema with rows of every rank, values from a closed formula (so the
// expectations do not come from the code under test), checks of a log against that formula through our
// reader and through h5py (tests/metrics/h5_dump.py), a temporary folder and a forked writer process.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/check.h"
#include "metrics/runlog.h"
#include "metrics/runlog_reader.h"

#include "fs_util.h"

namespace sinklab::test {

inline std::vector<GroupSpec> test_groups() {
    const ColumnSpec step{"step", {}, true};
    return {
        {"scalars", {step, {"count", {}, true}, {"x", {}, false}}},
        {"shapes",
         {step, {"v3", {3}, false}, {"m23", {2, 3}, false}, {"t224", {2, 2, 4}, false}, {"ints", {2, 2}, true}}},
        {"big", {step, {"map", {1, 64, 64}, false}}},  // 16 KiB rows: the compressed, one-row-chunk path
        {"empty", {step, {"y", {4}, false}}},          // never written
    };
}

// Every how many steps a group gets a row (0: never).
inline int64_t every(const std::string& group) {
    return group == "scalars" ? 1 : group == "shapes" ? 3 : group == "big" ? 20 : 0;
}

inline const GroupSpec& group_spec(const std::string& group) {
    static const std::vector<GroupSpec> groups = test_groups();
    for (const GroupSpec& g : groups)
        if (g.name == group) return g;
    throw std::runtime_error("no test group " + group);
}

inline const ColumnSpec& column_spec(const std::string& group, const std::string& column) {
    for (const ColumnSpec& c : group_spec(group).columns)
        if (c.name == column) return c;
    throw std::runtime_error("no test column " + group + "/" + column);
}

// Element i of column `column` at `step`, as the file stores it (float columns hold float32).
inline double expected(const std::string& group, const std::string& column, int64_t step, int64_t i) {
    if (column == "step") return double(step);
    double salt = 0;
    for (char ch : column) salt += ch;
    const ColumnSpec& c = column_spec(group, column);
    if (c.integer) return double(step * 1000 + i + int64_t(salt));
    if (column == "map") {  // causal, row-normalised like an attention map: [layer, query, key]
        const int64_t layer = i / 4096, query = i / 64 % 64, key = i % 64;
        return key <= query ? double(float((1.0 + layer + 0.001 * double(step)) / double(query + 1))) : 0.0;
    }
    return double(float(std::sin(0.01 * double(step) + 0.37 * double(i) + 0.1 * salt) * 100.0));
}

inline int64_t row_size(const ColumnSpec& c) {
    int64_t n = 1;
    for (int64_t d : c.row_shape) n *= d;
    return n;
}

inline void append_step(RunLog& log, int64_t step) {
    for (const GroupSpec& g : test_groups()) {
        if (every(g.name) == 0 || step % every(g.name) != 0) continue;
        std::vector<RowValue> row;
        for (const ColumnSpec& c : g.columns) {
            RowValue v{c.name, {}};
            for (int64_t i = 0; i < row_size(c); i++) v.values.push_back(expected(g.name, c.name, step, i));
            row.push_back(std::move(v));
        }
        log.append(g.name, row);
    }
}

// The step of the last row of `group` when its logged steps run 0, every, 2*every, ... through `last`.
inline int64_t last_logged(const std::string& group, int64_t last) {
    return last < 0 || every(group) == 0 ? -1 : last / every(group) * every(group);
}

// Compares `n` rows of column values (row-major, [n, row]) with the formula; "" when equal.
inline std::string compare_rows(const std::string& group, const std::string& column, const std::vector<double>& data,
                                int64_t n) {
    const ColumnSpec& c = column_spec(group, column);
    const int64_t R = row_size(c);
    if (int64_t(data.size()) < n * R) return fmt::format("{}/{}: {} values for {} rows", group, column, data.size(), n);
    for (int64_t r = 0; r < n; r++)
        for (int64_t i = 0; i < R; i++) {
            const double want = expected(group, column, r * every(group), i), got = data[size_t(r * R + i)];
            if (got != want) return fmt::format("{}/{} row {} [{}]: {} != expected {}", group, column, r, i, got, want);
        }
    return "";
}

// Checks every column of `group` as our reader returns it; returns the last step (-1 when empty).
inline int64_t check_group(const RunLogReader& reader, const std::string& group) {
    const Dataset steps = reader.read(group, "step");
    const int64_t n = steps.shape.at(0);
    for (const ColumnSpec& c : group_spec(group).columns) {
        const Dataset d = reader.read(group, c.name);
        std::vector<int64_t> want_shape{n};
        want_shape.insert(want_shape.end(), c.row_shape.begin(), c.row_shape.end());
        EXPECT_EQ(d.shape, want_shape) << group << "/" << c.name;
        EXPECT_EQ(compare_rows(group, c.name, d.data, n), "");
    }
    return n == 0 ? -1 : (n - 1) * every(group);
}

// The same check on h5py's view of the file: the rows before the first unwritten step (or the shortest column).
inline int64_t check_dump_group(const nlohmann::json& dump, const std::string& group) {
    const nlohmann::json& datasets = dump.at("datasets");
    int64_t n = std::numeric_limits<int64_t>::max();
    for (const ColumnSpec& c : group_spec(group).columns)
        n = std::min(n, datasets.at("/" + group + "/" + c.name).at("shape").at(0).get<int64_t>());
    const nlohmann::json& steps = datasets.at("/" + group + "/step").at("data");
    for (int64_t r = 0; r < n; r++)
        if (steps[size_t(r)].get<int64_t>() < 0) n = r;
    for (const ColumnSpec& c : group_spec(group).columns) {
        const nlohmann::json& d = datasets.at("/" + group + "/" + c.name);
        EXPECT_EQ(d.at("dtype").get<std::string>(), c.integer ? "int64" : "float32") << group << "/" << c.name;
        const std::vector<int64_t> shape = d.at("shape").get<std::vector<int64_t>>();
        EXPECT_EQ(std::vector<int64_t>(shape.begin() + 1, shape.end()), c.row_shape) << group << "/" << c.name;
        std::vector<double> data;
        for (const nlohmann::json& v : d.at("data")) data.push_back(v.is_null() ? NAN : v.get<double>());
        EXPECT_EQ(compare_rows(group, c.name, data, n), "");
    }
    return n == 0 ? -1 : (n - 1) * every(group);
}

struct PythonResult {
    int rc = -1;
    std::string out;
    bool h5py_missing() const { return rc == 77 || rc == 127; }
    nlohmann::json json() const { return nlohmann::json::parse(out); }
};

// Runs tests/metrics/h5_dump.py on `path` (h5py opens it with swmr=True when `swmr`).
inline PythonResult h5py_dump(const std::string& path, bool swmr) {
    const std::string command = fmt::format("/usr/bin/python3 {}/metrics/h5_dump.py '{}'{} 2>&1", SINKLAB_TEST_DIR,
                                            path, swmr ? " --swmr" : "");
    PythonResult result;
    FILE* pipe = popen(command.c_str(), "r");
    if (!pipe) return result;
    char buffer[65536];
    size_t got;
    while ((got = fread(buffer, 1, sizeof buffer, pipe)) > 0) result.out.append(buffer, got);
    const int status = pclose(pipe);
    result.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

inline bool h5py_available() {
    static const bool available = std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") == 0;
    return available;
}

}  // namespace sinklab::test
