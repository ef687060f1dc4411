// Only one `sinklab train` at a time in a run folder. Two starts of one run (a job submitted twice, a requeued job
// whose first instance still runs) would interleave their checkpoints and metrics.h5 rows, and --overwrite's moves.
// Rank 0 takes this lock before it looks at the folder and holds it until the process ends.
#pragma once
#include <string>

namespace sinklab {

class RunLock {
public:
    // Locks run folder `run_dir` through the hidden file .NAME.lock beside it (the folder itself may not exist yet),
    // creating the parent folder if needed. Throws sinklab::Error naming the holder when another process holds it.
    // Where the file system has no flock (some network mounts) the run goes on unlocked, and note() says so.
    explicit RunLock(const std::string& run_dir);
    ~RunLock();  // removes the lock file, then lets go
    RunLock(const RunLock&) = delete;
    RunLock& operator=(const RunLock&) = delete;

    const std::string& note() const { return note_; }

private:
    std::string path_;
    int fd_ = -1;
    std::string note_;
};

}  // namespace sinklab
