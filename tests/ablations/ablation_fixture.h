// Shared by the ablation-workflow tests (suites, sweep, Slurm, compare, plots): small suite files, run folders
// with metrics.h5 files written through RunLog from values the tests choose, and a writer in a forked process
// for files that are still open.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/check.h"
#include "metrics/runlog.h"
#include "metrics/schema.h"
#include "cli_util.h"
#include "metrics/runlog_fixture.h"
#include "test_util.h"

namespace sinklab::test {

namespace fs = std::filesystem;

inline const std::string kPlotScript = std::string(SINKLAB_SOURCE_DIR) + "/scripts/plot_runs.py";

// What scripts/plot_runs.py needs from /usr/bin/python3.
inline bool plot_deps_available() {
    static const bool available =
        std::system("/usr/bin/python3 -c 'import h5py, matplotlib, numpy' >/dev/null 2>&1") == 0;
    return available;
}

inline void expect_has(const std::string& text, std::initializer_list<std::string> parts) {
    for (const std::string& part : parts)
        EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' not in:\n" << text;
}

// What a run's metrics.h5 holds; every value not given here is written as 0.
struct SinkRow {
    int64_t step = 0;
    std::vector<double> attn_mass;  // [L, H, P]
    std::vector<double> sink_rate;  // [L]
    std::vector<double> wo_std;     // [L, Tp]
    std::vector<double> dominance;  // [L]
};

struct RunSpec {
    int L = 2, H = 2, Tp = 3;
    std::vector<int> positions{0};               // sink_positions: the key positions of attn_mass's columns
    int64_t max_steps = 8;
    int64_t tokens_per_step = 100;
    std::string config_yaml;                      // "" = one naming max_steps
    std::vector<double> loss;                     // /train rows at steps 1, 2, ...
    std::vector<std::pair<int64_t, double>> val;  // (step, loss)
    std::vector<SinkRow> sink;
    std::vector<double> att_std;  // [L, Tp] attn_out_std of every /sink row; empty: wo_std's (a model without HeadNorm)
    std::vector<std::pair<int64_t, std::vector<double>>> effective_rank;  // /heavy rows: (step, [L])
    std::string train_checksum, val_checksum;     // the data's, as root attributes; "" = none written
};

inline std::vector<RowValue> full_row(const GroupSpec& g, const std::map<std::string, std::vector<double>>& given) {
    std::vector<RowValue> row;
    for (const ColumnSpec& c : g.columns) {
        const auto it = given.find(c.name);
        if (it != given.end()) {
            row.push_back({c.name, it->second});
            continue;
        }
        int64_t n = 1;
        for (int64_t d : c.row_shape) n *= d;
        row.push_back({c.name, std::vector<double>(size_t(n), 0.0)});
    }
    return row;
}

inline const GroupSpec& group_of(const std::vector<GroupSpec>& groups, const std::string& name) {
    for (const GroupSpec& g : groups)
        if (g.name == name) return g;
    throw std::runtime_error("no group " + name);
}

// Writes the rows of `spec` whose /train step is in [from, to] (sink and val rows by their own step).
class SpecWriter {
public:
    SpecWriter(const std::string& path, const RunSpec& spec) : spec_(spec) {
        groups_ = run_log_groups(spec.L, spec.H, int(spec.positions.size()), spec.Tp);
        std::string cfg = spec.config_yaml;
        if (cfg.empty()) {
            cfg = fmt::format("train:\n  max_steps: {}\n", spec.max_steps);
        }
        std::vector<std::pair<std::string, std::string>> attrs = {
            {"config_yaml", cfg},
            {"backend", "cpu"},
            {"sink_positions", fmt::format("[{}]", fmt::join(spec.positions, ", "))}};
        if (!spec.train_checksum.empty()) attrs.push_back({"data_train_checksum", spec.train_checksum});
        if (!spec.val_checksum.empty()) attrs.push_back({"data_val_checksum", spec.val_checksum});
        log_ = RunLog::create(path, groups_, attrs, {{"world_size", 1}});
    }
    void write_steps(int64_t from, int64_t to) {
        for (int64_t step = from; step <= to && step <= int64_t(spec_.loss.size()); step++) {
            log_->append("train",
                         full_row(group_of(groups_, "train"), {{"step", {double(step)}},
                                                               {"tokens", {double(step * spec_.tokens_per_step)}},
                                                               {"loss", {spec_.loss[size_t(step - 1)]}}}));
            for (const auto& [vstep, vloss] : spec_.val)
                if (vstep == step)
                    log_->append("val",
                                 full_row(group_of(groups_, "val"), {{"step", {double(step)}}, {"loss", {vloss}}}));
            for (const SinkRow& s : spec_.sink)
                if (s.step == step)
                    log_->append("sink",
                                 full_row(group_of(groups_, "sink"),
                                          {{"step", {double(step)}},
                                           {"attn_mass", s.attn_mass},
                                           {"sink_rate", s.sink_rate},
                                           {"wo_input_std", s.wo_std},
                                           {"attn_out_std", spec_.att_std.empty() ? s.wo_std : spec_.att_std},
                                           {"dominance", s.dominance}}));
            for (const auto& [hstep, rank] : spec_.effective_rank)
                if (hstep == step)
                    log_->append("heavy", full_row(group_of(groups_, "heavy"),
                                                   {{"step", {double(step)}}, {"effective_rank", rank}}));
        }
        log_->flush();
    }
    void close() { log_->close(); }

private:
    RunSpec spec_;
    std::vector<GroupSpec> groups_;
    std::unique_ptr<RunLog> log_;
};

// A run folder holding `spec` as a closed metrics.h5 (and config.yaml when given).
inline void write_run(const fs::path& dir, const RunSpec& spec, const std::string& config_yaml_file = "") {
    fs::create_directories(dir);
    SpecWriter w((dir / "metrics.h5").string(), spec);
    w.write_steps(1, int64_t(spec.loss.size()));
    w.close();
    if (!config_yaml_file.empty()) write_file(dir / "config.yaml", config_yaml_file);
}

// A forked process that writes a run's rows in stages while the test reads them: stage i writes /train
// steps (ends[i-1], ends[i]] (from 1), flushes, tells the parent, and waits for the parent's go before the
// next stage; after the last it waits once more and closes. RunLog's writer thus lives in another process,
// as a training run's does.
class LiveWriter {
public:
    LiveWriter(const std::string& path, const RunSpec& spec, std::vector<int64_t> ends) {
        int up[2], down[2];
        if (pipe(up) != 0 || pipe(down) != 0) throw std::runtime_error("pipe failed");
        pid_ = fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            close(up[0]);
            close(down[1]);
            int rc = 0;
            try {
                SpecWriter w(path, spec);
                int64_t done = 0;
                char go;
                for (int64_t end : ends) {
                    w.write_steps(done + 1, end);
                    done = end;
                    if (write(up[1], "s", 1) != 1 || read(down[0], &go, 1) != 1) _exit(4);
                }
                w.close();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "writer process: %s\n", e.what());
                rc = 3;
            }
            _exit(rc);
        }
        close(up[1]);
        close(down[0]);
        from_child_ = up[0];
        to_child_ = down[1];
    }
    ~LiveWriter() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        close(from_child_);
        close(to_child_);
    }
    // Waits until the current stage is flushed; false when the writer died.
    bool wait_stage() {
        char c;
        return read(from_child_, &c, 1) == 1;
    }
    void next_stage() {
        if (write(to_child_, "g", 1) != 1) throw std::runtime_error("writer process is gone");
    }
    // Lets the writer close the file and returns its exit code.
    int finish() {
        next_stage();
        int status = 0;
        waitpid(pid_, &status, 0);
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }

private:
    pid_t pid_ = -1;
    int from_child_ = -1, to_child_ = -1;
};

}  // namespace sinklab::test
