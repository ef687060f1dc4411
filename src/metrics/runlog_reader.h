// Reads a run log (metrics.h5) written by RunLog: finished runs, runs still writing (SWMR) and runs whose
// writer was killed. Only complete rows are returned (see runlog_format.h). While a run is writing, a reader is
// a snapshot: a group's row count is fixed at its first read after opening or refresh(), so the columns of a
// group always come back with the same number of rows.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sinklab {

// A column read whole: shape [n, row_shape...], values row-major.
struct Dataset {
    std::vector<int64_t> shape;
    std::vector<double> data;
};

class RunLogReader {
public:
    explicit RunLogReader(const std::string& path);
    ~RunLogReader();
    RunLogReader(RunLogReader&&) noexcept;
    RunLogReader& operator=(RunLogReader&&) noexcept;

    const std::string& path() const;
    std::vector<std::string> groups() const;
    std::vector<std::string> columns(const std::string& group) const;
    bool has(const std::string& group, const std::string& column) const;
    Dataset read(const std::string& group, const std::string& column) const;
    // The last complete row alone, shape [1, row_shape...] ([0, ...] where there is none): compare's final values
    // of a 40,000-step run's [n, L, Tp] columns, without reading hundreds of MB.
    Dataset read_last(const std::string& group, const std::string& column) const;
    // Lets the next reads see the rows a live writer has flushed since.
    void refresh();

    std::string str_attr(const std::string& name) const;
    double num_attr(const std::string& name) const;
    bool has_attr(const std::string& name) const;

private:
    Dataset read_rows(const std::string& group, const std::string& column, bool last_only) const;
    struct State;
    std::unique_ptr<State> state_;
};

// Which run the folder `run_dir` holds now, to tell whether another replaced it (--overwrite) meanwhile: its
// metrics.h5's run_id, or the creation time of a run logged before run_id existed; "" without a metrics.h5, and
// "(unreadable)" where it cannot be read.
std::string run_identity(const std::string& run_dir);

}  // namespace sinklab
