// The run log round trip (our reader and h5py), resume, and the errors people see.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>

#include "metrics/h5util.h"
#include "metrics/runlog.h"
#include "metrics/runlog_reader.h"
#include "metrics/schema.h"
#include "test_util.h"
#include "tests/metrics/runlog_fixture.h"

namespace sinklab::test {
namespace {

using Strings = std::vector<std::string>;
const Strings kGroups{"scalars", "shapes", "big", "empty"};

// Steps 0..last, flushed every `flush_every` rows and at close.
void write_log(const std::string& path, int64_t last, int64_t flush_every) {
    auto log = RunLog::create(path, test_groups(), {{"config_yaml", "model:\n  n_layer: 2\n"}, {"note", "ünïcödé ✓"}},
                              {{"world_size", 4}, {"flops_per_token", 1.5e9}});
    for (int64_t s = 0; s <= last; s++) {
        append_step(*log, s);
        if (s % flush_every == flush_every - 1) log->flush();
    }
    log->close();
}

void expect_contains(const std::string& text, const std::string& part) {
    EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' not in: " << text;
}

TEST(RunLog, RoundTripEveryRowShape) {
    TempDir dir;
    const std::string path = dir.file("metrics.h5");
    const int64_t last = 2999;  // scalar columns cross several 1024-row chunks
    write_log(path, last, 37);

    RunLogReader reader(path);
    EXPECT_EQ(reader.groups(), kGroups);
    EXPECT_EQ(reader.columns("shapes"), (Strings{"step", "v3", "m23", "t224", "ints"}));
    for (const std::string& g : kGroups) EXPECT_EQ(check_group(reader, g), last_logged(g, last)) << g;
    // read_last: the last row of what read returns (checked against the writer's rows above), or none.
    for (const std::string& g : kGroups)
        for (const std::string& c : reader.columns(g)) {
            const Dataset whole = reader.read(g, c), last = reader.read_last(g, c);
            const int64_t rows = whole.shape.at(0), row = rows ? int64_t(whole.data.size()) / rows : 0;
            std::vector<int64_t> shape = whole.shape;
            shape[0] = std::min<int64_t>(rows, 1);
            EXPECT_EQ(last.shape, shape) << g << "/" << c;
            EXPECT_EQ(last.data, std::vector<double>(whole.data.end() - row, whole.data.end())) << g << "/" << c;
        }
    EXPECT_EQ(reader.str_attr("config_yaml"), "model:\n  n_layer: 2\n");
    EXPECT_EQ(reader.str_attr("note"), "ünïcödé ✓");
    EXPECT_EQ(reader.num_attr("world_size"), 4.0);
    EXPECT_EQ(reader.num_attr("flops_per_token"), 1.5e9);
    EXPECT_TRUE(reader.has_attr("note"));
    EXPECT_FALSE(reader.has_attr("nope"));
    EXPECT_TRUE(reader.has("big", "map"));
    EXPECT_FALSE(reader.has("big", "nope"));
    EXPECT_FALSE(reader.has("nope", "step"));
}

TEST(RunLog, H5pyReadsAFinishedRunPlainly) {
    if (!h5py_available()) GTEST_SKIP() << "h5py is not installed for /usr/bin/python3 (apt install python3-h5py)";
    TempDir dir;
    const std::string path = dir.file("metrics.h5");
    const int64_t last = 1500;
    write_log(path, last, 100);

    const PythonResult py = h5py_dump(path, false);  // no swmr=True: a closed run needs no special open
    ASSERT_EQ(py.rc, 0) << py.out;
    const nlohmann::json dump = py.json();
    // h5py lists the root's groups by name (it ignores their creation order), the columns in schema order.
    EXPECT_EQ(dump.at("groups").get<Strings>(), (Strings{"big", "empty", "scalars", "shapes"}));
    EXPECT_EQ(dump.at("columns").at("scalars").get<Strings>(), (Strings{"step", "count", "x"}));
    EXPECT_EQ(dump.at("attrs").at("note").get<std::string>(), "ünïcödé ✓");  // str, not bytes
    EXPECT_EQ(dump.at("attrs").at("config_yaml").get<std::string>(), "model:\n  n_layer: 2\n");
    EXPECT_EQ(dump.at("attrs").at("flops_per_token").get<double>(), 1.5e9);
    for (const std::string& g : kGroups) EXPECT_EQ(check_dump_group(dump, g), last_logged(g, last)) << g;

    // Chunks: scalar columns in many-row chunks, attention maps one row per chunk and compressed.
    const nlohmann::json& ds = dump.at("datasets");
    EXPECT_EQ(ds.at("/scalars/x").at("chunks").get<std::vector<int64_t>>(), (std::vector<int64_t>{1024}));
    EXPECT_EQ(ds.at("/shapes/t224").at("chunks").get<std::vector<int64_t>>(), (std::vector<int64_t>{1024, 2, 2, 4}));
    EXPECT_EQ(ds.at("/big/map").at("chunks").get<std::vector<int64_t>>(), (std::vector<int64_t>{1, 1, 64, 64}));
    EXPECT_EQ(ds.at("/big/map").at("compression"), "gzip");
    EXPECT_TRUE(ds.at("/scalars/x").at("compression").is_null());
    EXPECT_EQ(ds.at("/empty/y").at("shape").get<std::vector<int64_t>>(), (std::vector<int64_t>{0, 4}));
}

TEST(RunLog, EveryDatasetExistsBeforeAnyRow) {
    TempDir dir;
    const std::string path = dir.file("metrics.h5");
    RunLog::create(path, test_groups(), {}, {})->close();
    RunLogReader reader(path);
    for (const GroupSpec& g : test_groups())
        for (const ColumnSpec& c : g.columns) {
            ASSERT_TRUE(reader.has(g.name, c.name)) << g.name << "/" << c.name;
            std::vector<int64_t> shape{0};
            shape.insert(shape.end(), c.row_shape.begin(), c.row_shape.end());
            EXPECT_EQ(reader.read(g.name, c.name).shape, shape);
        }
}

TEST(RunLog, ResumeDropsRowsAfterTheCheckpointAndAppends) {
    TempDir dir;
    const std::string path = dir.file("metrics.h5");
    write_log(path, 99, 10);
    {
        auto log = RunLog::resume(path, test_groups(), 57, {{"config_yaml", "model:\n  n_layer: 3\n"}},
                                  {{"world_size", 2}});
        {
            RunLogReader mid(path);  // what a reader sees right after the resume: nothing after step 57
            for (const std::string& g : kGroups) EXPECT_EQ(check_group(mid, g), last_logged(g, 57)) << g;
        }
        for (int64_t s = 58; s <= 80; s++) append_step(*log, s);
        log->close();
    }
    RunLogReader reader(path);
    for (const std::string& g : kGroups) EXPECT_EQ(check_group(reader, g), last_logged(g, 80)) << g;
    // The attributes the resume gives replace the file's; the others survive it.
    EXPECT_EQ(reader.num_attr("world_size"), 2.0);
    EXPECT_EQ(reader.str_attr("config_yaml"), "model:\n  n_layer: 3\n");
    EXPECT_EQ(reader.num_attr("flops_per_token"), 1.5e9);
    EXPECT_EQ(reader.str_attr("note"), "ünïcödé ✓");
    EXPECT_FALSE(std::filesystem::exists(path + ".resume"));

    // A checkpoint beyond the last row keeps every row.
    RunLog::resume(path, test_groups(), 1000)->close();
    EXPECT_EQ(check_group(RunLogReader(path), "scalars"), 80);

    if (!h5py_available()) GTEST_SKIP() << "h5py is not installed for /usr/bin/python3; our reader's checks passed";
    const PythonResult py = h5py_dump(path, false);
    ASSERT_EQ(py.rc, 0) << py.out;
    const nlohmann::json dump = py.json();
    for (const std::string& g : kGroups) {
        EXPECT_EQ(check_dump_group(dump, g), last_logged(g, 80)) << g;
        // No leftover rows after the resume: h5py's raw datasets end at the last row.
        EXPECT_EQ(dump.at("datasets").at("/" + g + "/step").at("shape").at(0).get<int64_t>(),
                  every(g) ? 80 / every(g) + 1 : 0);
    }
}

// Resume reads every row it keeps, so that damage stops the resume before training: here a compressed chunk past
// the first megavalue of its column (the reads go a slab at a time) is damaged.
TEST(RunLog, ResumeFindsADamagedChunkPastTheFirstSlab) {
    TempDir dir;
    const std::string path = dir.file("metrics.h5");
    const std::vector<GroupSpec> groups{{"big", {{"step", {}, true}, {"map", {1, 64, 64}, false}}}};
    constexpr int64_t kRows = 300;  // x 4096 values: more than one slab of 2^20
    {
        auto log = RunLog::create(path, groups, {}, {});
        for (int64_t s = 0; s < kRows; s++) {
            std::vector<double> map(4096);
            for (size_t i = 0; i < map.size(); i++) map[i] = expected("big", "map", s, int64_t(i));
            log->append("big", {{"step", {double(s)}}, {"map", map}});
        }
        log->close();
    }
    haddr_t address = 0;
    hsize_t bytes = 0;
    {
        h5::Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
        h5::Id map(H5Dopen2(file.get(), "/big/map", H5P_DEFAULT), H5Dclose);
        ASSERT_TRUE(map.valid());
        const hsize_t last_row[4] = {hsize_t(kRows - 1), 0, 0, 0};
        unsigned filters = 0;
        ASSERT_GE(H5Dget_chunk_info_by_coord(map.get(), last_row, &filters, &address, &bytes), 0);
        ASSERT_GT(bytes, 64u);
    }
    const std::string damaged = dir.file("damaged.h5");
    std::filesystem::copy_file(path, damaged);
    {
        std::fstream file(damaged, std::ios::in | std::ios::out | std::ios::binary);
        file.seekp(std::streamoff(address + bytes / 2));
        file.write("\xde\xad\xbe\xef\xde\xad\xbe\xef", 8);
    }
    const std::string before = read_file(damaged);

    const std::string message = error_of([&] { RunLog::resume(damaged, groups, kRows); });
    expect_contains(message, "damaged");
    expect_contains(message, "/big/map");
    EXPECT_EQ(read_file(damaged), before) << "the refused resume changed the file";
    EXPECT_FALSE(std::filesystem::exists(damaged + ".resume"));

    RunLog::resume(path, groups, kRows)->close();  // the same file undamaged resumes
    EXPECT_EQ(RunLogReader(path).read("big", "step").shape, (std::vector<int64_t>{kRows}));
}

TEST(RunLog, ResumeRefusesAnotherSchemaAndKeepsTheFile) {
    TempDir dir;
    const std::string path = dir.file("metrics.h5");
    write_log(path, 30, 10);

    auto with = [](auto edit) {
        std::vector<GroupSpec> groups = test_groups();
        edit(groups);
        return groups;
    };
    const auto fewer_columns = with([](auto& g) { g[0].columns.pop_back(); });
    expect_contains(error_of([&] { RunLog::resume(path, fewer_columns, 20); }),
                    "dataset /scalars/x that this run does not log");
    const auto other_shape = with([](auto& g) { g[1].columns[1].row_shape = {4}; });
    expect_contains(error_of([&] { RunLog::resume(path, other_shape, 20); }),
                    "/shapes/v3 has rows of shape [3], this run logs rows of shape [4]");
    const auto other_type = with([](auto& g) { g[0].columns[2].integer = true; });
    expect_contains(error_of([&] { RunLog::resume(path, other_type, 20); }), "/scalars/x holds non-integer values");
    const std::string message = error_of([&] { RunLog::resume(path, other_type, 20); });
    expect_contains(message, path);
    expect_contains(message, "start a new run");

    // Every refused resume left the file as it was.
    RunLogReader reader(path);
    for (const std::string& g : kGroups) EXPECT_EQ(check_group(reader, g), last_logged(g, 30)) << g;
    EXPECT_FALSE(std::filesystem::exists(path + ".resume"));
}

// A run continued by a newer sinklab that logs more: its new columns and groups are added, and the rows logged
// before read as missing in them (NaN, -1 for integers).
TEST(RunLog, ResumeUnderANewerSchemaAddsItsColumns) {
    TempDir dir;
    const std::string path = dir.file("metrics.h5");
    write_log(path, 30, 10);
    std::vector<GroupSpec> newer = test_groups();
    newer[0].columns.push_back({"extra", {2}, false, true});
    newer[0].columns.push_back({"unit", {}, true, true});
    newer.push_back({"new", {{"step", {}, true, true}, {"z", {}, false, true}}});
    auto log = RunLog::resume(path, newer, 20);
    for (int64_t step = 21; step <= 22; step++) {
        log->append("scalars", {{"step", {double(step)}},
                                {"count", {expected("scalars", "count", step, 0)}},
                                {"x", {expected("scalars", "x", step, 0)}},
                                {"extra", {0.5, double(step)}},
                                {"unit", {7.0}}});
        log->append("new", {{"step", {double(step)}}, {"z", {-double(step)}}});
    }
    log->close();

    RunLogReader reader(path);
    const Dataset extra = reader.read("scalars", "extra"), unit = reader.read("scalars", "unit");
    ASSERT_EQ(extra.shape, (std::vector<int64_t>{23, 2}));  // steps 0..22
    ASSERT_EQ(unit.shape, (std::vector<int64_t>{23}));
    for (size_t row = 0; row <= 20; row++) {
        EXPECT_TRUE(std::isnan(extra.data[2 * row]) && std::isnan(extra.data[2 * row + 1])) << row;
        EXPECT_EQ(unit.data[row], -1.0) << row;
    }
    EXPECT_EQ(extra.data[2 * 22 + 1], 22.0);
    EXPECT_EQ(unit.data[21], 7.0);
    EXPECT_EQ(reader.read("new", "step").data, (std::vector<double>{21, 22}));
    EXPECT_EQ(reader.read("new", "z").data, (std::vector<double>{-21, -22}));
    for (const std::string& g : kGroups) EXPECT_EQ(check_group(reader, g), g == "scalars" ? 22 : last_logged(g, 20))
        << g;
}

// Only the columns a later sinklab added may be missing: a file without another one (a column deleted, a damaged
// file) is refused, named, and left as it was, not given a column of missing values.
TEST(RunLog, ResumeRefusesAFileWithoutAColumnThatWasNeverAdded) {
    TempDir dir;
    const std::string path = dir.file("metrics.h5");
    write_log(path, 30, 10);
    std::vector<GroupSpec> newer = test_groups();
    newer[0].columns.push_back({"extra", {2}, false});  // not marked added
    const std::string before = read_file(path);
    const std::string error = error_of([&] { RunLog::resume(path, newer, 20); });
    EXPECT_NE(error.find("it has no dataset /scalars/extra, which this run logs"), std::string::npos) << error;
    EXPECT_EQ(read_file(path), before);
}

TEST(RunLog, ErrorsNamePathAndRemedyWithoutHdf5Trace) {
    TempDir dir;
    const std::string good = dir.file("metrics.h5");
    write_log(good, 5, 10);
    const std::string text = dir.file("notes.txt"), empty = dir.file("empty.h5"), cut = dir.file("cut.h5");
    std::ofstream(text) << "this is not HDF5\n";
    std::ofstream(empty).flush();
    {
        std::ifstream in(good, std::ios::binary);
        std::string head(2048, '\0');
        in.read(head.data(), std::streamsize(head.size()));
        std::ofstream(cut, std::ios::binary).write(head.data(), std::streamsize(head.size()));
    }

    testing::internal::CaptureStderr();
    std::vector<std::pair<std::string, std::string>> cases;  // message, what it must say
    auto create = [&](const std::string& p) { return error_of([&] { RunLog::create(p, test_groups(), {}, {}); }); };
    cases.emplace_back(create(dir.file("no/such/folder/metrics.h5")), "does not exist");
    cases.emplace_back(create(text + "/metrics.h5"), "not a folder");
    cases.emplace_back(create("/proc/metrics.h5"), "writable");  // a folder no one may create files in
    cases.emplace_back(create(good), "already exists");
    auto read = [&](const std::string& p) { return error_of([&] { RunLogReader{p}; }); };
    cases.emplace_back(read(dir.file("missing.h5")), "does not exist");
    cases.emplace_back(read(text), "not an HDF5 file");
    cases.emplace_back(read(empty), "not an HDF5 file");
    cases.emplace_back(read(cut), "damaged");
    auto resume = [&](const std::string& p) { return error_of([&] { RunLog::resume(p, test_groups(), 3); }); };
    cases.emplace_back(resume(dir.file("missing.h5")), "start the run without --resume");
    cases.emplace_back(resume(text), "not an HDF5 file");
    cases.emplace_back(resume(cut), "damaged");
    RunLogReader reader(good);
    cases.emplace_back(error_of([&] { reader.read("scalars", "nope"); }),
                       "no dataset /scalars/nope (its columns: step, count, x)");
    cases.emplace_back(error_of([&] { reader.read("nope", "step"); }),
                       "no group /nope (it has: scalars, shapes, big, empty)");
    cases.emplace_back(error_of([&] { reader.num_attr("nope"); }), "no attribute 'nope' (it has: config_yaml");
    cases.emplace_back(error_of([&] { reader.num_attr("note"); }), "'note' is not a number");
    cases.emplace_back(error_of([&] { reader.str_attr("world_size"); }), "'world_size' is not a text");
    const std::string stderr_text = testing::internal::GetCapturedStderr();

    for (const auto& [message, part] : cases) {
        expect_contains(message, part);
        EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
        EXPECT_TRUE(message.find(dir.path()) != std::string::npos || message.find("/proc/") != std::string::npos)
            << "names the file: " << message;
    }
    EXPECT_EQ(stderr_text, "") << "HDF5 printed its error stack";
    EXPECT_FALSE(std::filesystem::exists(dir.file("cut.h5.resume")));
}

TEST(RunLog, AppendRejectsMalformedRows) {
    TempDir dir;
    auto log = RunLog::create(dir.file("metrics.h5"), test_groups(), {}, {});
    const std::vector<RowValue> ok{{"step", {5}}, {"count", {1}}, {"x", {0.5}}};
    EXPECT_THROW(log->append("nope", ok), Error);
    EXPECT_THROW(log->append("scalars", {{"step", {5}}, {"count", {1}}}), Error);                   // column missing
    EXPECT_THROW(log->append("scalars", {{"step", {5}}, {"count", {1}}, {"y", {0.5}}}), Error);     // unknown column
    EXPECT_THROW(log->append("scalars", {{"step", {5}}, {"count", {1, 2}}, {"x", {0.5}}}), Error);  // wrong size
    EXPECT_THROW(log->append("scalars", {{"step", {5}}, {"count", {1.5}}, {"x", {0.5}}}), Error);   // not an integer
    log->append("scalars", ok);
    EXPECT_THROW(log->append("scalars", ok), Error);  // the same step twice
    log->close();
    EXPECT_EQ(RunLogReader(dir.file("metrics.h5")).read("scalars", "step").data, (std::vector<double>{5}));
}

// The cost of logging at the scale of the paper's model (L = H = 12): every step a /train and a /sink row, a
// /heavy row every 100 steps, a flush every 10 steps.
TEST(RunLog, FlushCostAtPaperScale) {
    TempDir dir;
    const std::string path = dir.file("metrics.h5");
    const int L = 12, H = 12, P = 4, Tp = 64, steps = 1000;
    const std::vector<GroupSpec> groups = run_log_groups(L, H, P, Tp);
    auto log = RunLog::create(path, groups, {}, {});
    double flush_s = 0, worst_s = 0;
    for (int s = 1; s <= steps; s++) {
        for (const GroupSpec& g : groups) {
            if (g.name == "val" || (g.name == "heavy" && s % 100 != 0)) continue;
            std::vector<RowValue> row;
            for (const ColumnSpec& c : g.columns) {
                int64_t n = 1;
                for (int64_t d : c.row_shape) n *= d;
                std::vector<double> values(static_cast<size_t>(n));
                for (int64_t i = 0; i < n; i++)
                    values[size_t(i)] = c.name == "step" ? s : c.integer ? double(i) : 1.0 / double(i + s);
                row.push_back({c.name, values});
            }
            log->append(g.name, row);
        }
        if (s % 10 == 0) {
            const auto t0 = std::chrono::steady_clock::now();
            log->flush();
            const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            flush_s += dt;
            worst_s = std::max(worst_s, dt);
        }
    }
    log->close();
    const double mean_ms = 1e3 * flush_s / (steps / 10);
    std::cout << fmt::format("[ info ] {} steps: flush mean {:.2f} ms, worst {:.2f} ms; file {:.1f} MiB\n", steps,
                             mean_ms, 1e3 * worst_s, double(std::filesystem::file_size(path)) / (1 << 20));
    EXPECT_LT(mean_ms, 50.0) << "flushing 10 steps of rows should take milliseconds";
    const RunLogReader reader(path);
    EXPECT_EQ(reader.read("sink", "attn_mass").shape, (std::vector<int64_t>{steps, L, H, P}));
    EXPECT_EQ(reader.read("heavy", "attn_map").shape, (std::vector<int64_t>{steps / 100, L, 64, 64}));
}

}  // namespace
}  // namespace sinklab::test
