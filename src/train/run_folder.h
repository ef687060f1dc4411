// A run's folder as a training start changes it, on rank 0: locked against a second start, checked before anything
// is written, an old run (--overwrite) set aside rather than deleted until the new run stands (the trainer commits
// once every rank has run the first step's passes), and left as it was when the start fails before (no data, too
// little memory, a full disk, ...).
#pragma once
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/folder_lock.h"
#include "train/trainer.h"

namespace sinklab {

// Where an --overwrite start sets the old run aside, inside the run folder: its entries moved one rename each
// (atomic, and no disk space needed), deleted only once the new run stands, so that a start that fails can put
// them back. A start killed meanwhile leaves it there, and the next start puts it back. A --resume keeps second
// names (hard links, or whole copies) of the config.yaml and metrics.h5 it replaces there the same way.
constexpr const char* kReplacedRun = ".replaced";

// The run's entry `name` (metrics.h5, config.yaml, checkpoints) as the next start of `dir` will find it: in
// kReplacedRun, left by a start killed before its run stood (the next start puts its entries back first), else in
// `dir`.
std::string run_entry(const std::string& dir, const std::string& name);

// Refuses a run folder (as run_entry finds it) whose checkpoints have lost their run log: --resume cannot continue
// the run without its rows, and a start among them would prune the old run's checkpoints and collide with them.
// `remedy` says what to do, in the words of the command that refuses it.
void require_log_with_checkpoints(const std::string& dir, const std::string& remedy);

class RunFolder {
public:
    // Locks and checks the folder `dir` (a start refused here leaves it as it was, but for what an earlier start
    // killed while replacing the run left behind, which is finished first); with --resume, finds the checkpoint.
    RunFolder(const std::string& dir, const TrainOptions& opt);

    // The checkpoint --resume continues from; "" = from step 0.
    const std::string& resume_from() const { return resume_from_; }
    // Where the metrics.h5 of a run that --resume starts over (it had no checkpoint) went: metrics.restart<k>.h5.
    const std::string& kept_aside() const { return kept_aside_; }
    // For the run's log: an old run put back, a lock that could not be taken the usual way.
    std::vector<std::string> notes() const;

    // Only now is the folder written: the old run set aside (--overwrite) or the files a resume replaces given second
    // names there, a restarted run's rows kept aside, the resolved config written.
    void prepare(const Config& cfg);
    // Once the new run stands: the old run goes for good. Returns a note when deleting it failed (harmless: the next
    // start deletes it).
    std::string commit();
    // When the start fails after prepare and before commit (setup, the first validation or step), with the new run's
    // files closed: the folder as it was. Only when putting the old run back fails too does it throw, `failure`'s
    // message extended by where the old run is.
    void undo(const std::exception_ptr& failure);

private:
    void finish_unfinished_replace();
    void set_old_run_aside();
    void keep_files_a_start_replaces();

    std::unique_ptr<FolderLock> lock_;  // first: released last
    std::string dir_;
    TrainOptions opt_;
    std::string resume_from_;
    bool restart_over_ = false;  // --resume found a run but no checkpoint, so it starts at step 0
    std::string kept_aside_;
    // How much of the run that --overwrite replaces is in .replaced; linked: second names of the files a resume
    // replaces.
    enum class Aside { none, partly, wholly, linked };
    Aside old_run_ = Aside::none;
    bool made_dir_ = false;        // this start created the run folder, so a failed one removes it
    std::string put_back_note_;    // an old run that an unfinished start had set aside, put back
};

}  // namespace sinklab
