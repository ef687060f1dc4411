// The run log (metrics.h5): one HDF5 file per run, one group per kind of row (/train, /val, /sink, /heavy),
// one extendible dataset per column, one row per logged step. See DESIGN.md "HDF5 run log".
//
// Crash safety and live reading come from HDF5's SWMR mode (single writer, multiple readers): the file is
// built completely, then switched to SWMR writing before it appears under its name, and every flush() leaves
// it consistent for readers. So:
//  - a writer killed at any moment (kill -9 included) leaves a file holding at least every row of its last
//    completed flush(); each row of a flush it was in the middle of is either complete or absent;
//  - readers may open it while the run is writing it.
//
// Reading from Python (h5py):
//    h5py.File(path, "r", swmr=True)   # always works: finished, live and killed runs
//    h5py.File(path, "r")              # finished runs, and killed runs once resumed; a run that is still
//                                      # writing or was killed refuses it ("file is already open for write")
// h5py shows a killed run's datasets raw: a flush cut short may have left rows whose step is -1 (never
// written), or columns longer than `step`. The rows are those before the first step < 0, at most len(step)
// of them; RunLogReader does this for you. Groups are flushed one after another, so /train may hold a few
// steps more than /sink after a kill; a resume from a checkpoint (taken after a flush) evens them out.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sinklab {

// One dataset of a group, of shape [n, row_shape...]: int64 when `integer`, else float32.
struct ColumnSpec {
    std::string name;
    std::vector<int64_t> row_shape;
    bool integer = false;
    // Logged since a later sinklab than the first: a resume adds it to a file without it (its earlier rows missing).
    // A file without any other column is damaged.
    bool added = false;
};

// Every group has an integer scalar column "step", strictly increasing from row to row.
struct GroupSpec {
    std::string name;
    std::vector<ColumnSpec> columns;
};

// One column of a row: values.size() == prod(row_shape), row-major.
struct RowValue {
    std::string name;
    std::vector<double> values;
};

class RunLog {
public:
    // Creates a new file (refusing to replace an existing one) with root attributes and every group and
    // dataset of `groups`; all datasets exist from the start, even if no row is ever written.
    static std::unique_ptr<RunLog> create(const std::string& path, const std::vector<GroupSpec>& groups,
                                          const std::vector<std::pair<std::string, std::string>>& str_attrs,
                                          const std::vector<std::pair<std::string, double>>& num_attrs);

    // Reopens a run's file to continue after a checkpoint at step `through_step`: rows of every group whose
    // step is > through_step are dropped, so a resumed run has no duplicate rows. Works on files left by a
    // killed writer. The file's groups and columns must be those of `groups`, but for ones a newer sinklab added
    // (which are added, their earlier rows missing). The given attributes replace the file's (what the resumed
    // run is now: its config, its number of ranks); the others stay. The file is repaired and truncated in a copy
    // that replaces it only once complete, so a resume that fails or is killed leaves the file as it was.
    static std::unique_ptr<RunLog> resume(const std::string& path, const std::vector<GroupSpec>& groups,
                                          int64_t through_step,
                                          const std::vector<std::pair<std::string, std::string>>& str_attrs = {},
                                          const std::vector<std::pair<std::string, double>>& num_attrs = {});

    // Buffers one row of `group`; every column of the group must be given once, with prod(row_shape) values.
    void append(const std::string& group, const std::vector<RowValue>& row);

    // Writes the buffered rows and makes them visible to readers; they survive the process being killed
    // (not the machine losing power: there is no fsync, which costs seconds on network file systems).
    void flush();
    // flush(), then fsync: the rows survive the machine crashing too. Before a checkpoint, whose resume relies on
    // every row up to its step.
    void sync();
    // The step of the last row of `group` (written or buffered), -1 when it has none.
    int64_t last_step(const std::string& group) const;

    // Flushes and closes, leaving a file that any HDF5 reader opens without SWMR; reports failures.
    void close();

    // Closes if close() was not called; errors are logged, not thrown.
    ~RunLog();

    RunLog(const RunLog&) = delete;
    RunLog& operator=(const RunLog&) = delete;

    struct State;

private:
    explicit RunLog(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

}  // namespace sinklab
