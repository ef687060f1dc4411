// One sinklab process at a time in a folder it writes: two starts of one run (a job submitted twice, a requeued job
// whose first instance still runs) would interleave their checkpoints and metrics.h5 rows, and --overwrite's moves;
// two prepares into one --out would share its staging folder. The writer takes this lock before it looks at the
// folder and holds it until the process ends.
#pragma once
#include <functional>
#include <string>

namespace sinklab {

class FolderLock {
public:
    // Locks `folder` through the hidden file .NAME.lock beside it (the folder itself may not exist yet), creating
    // the parent folder if needed. Throws sinklab::Error naming the holder when another process holds it: "{kind}
    // {folder} is in use by another `sinklab {its command}` (pid ... on host); wait for it to end, or {advice}".
    // Where the lock file cannot be made (the folder above is not writable) or the file system has no flock (some
    // network mounts), the process goes on unlocked, and note() says so. With `on_wait`, a lock held elsewhere is
    // waited for instead: on_wait(the holder, as above) first, then the constructor blocks until it is free.
    FolderLock(const std::string& folder, const std::string& kind, const std::string& command,
               const std::string& advice, const std::function<void(const std::string&)>& on_wait = nullptr);
    ~FolderLock();  // removes the lock file, then lets go
    FolderLock(const FolderLock&) = delete;
    FolderLock& operator=(const FolderLock&) = delete;

    const std::string& note() const { return note_; }

private:
    std::string path_;
    int fd_ = -1;
    std::string note_;
};

// Who holds the lock of `folder` now ("`sinklab prepare` (pid 12 on node3)"), without taking it; "" when no one
// does. For a reader that must not take a writer's half-done folder for a finished one.
std::string folder_lock_holder(const std::string& folder);

}  // namespace sinklab
