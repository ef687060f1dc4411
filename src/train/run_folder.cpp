#include "train/run_folder.h"

#include <filesystem>
#include <set>

#include "core/file_writer.h"
#include "metrics/eval.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace sinklab {

namespace {

// What sinklab writes into a run folder: --overwrite replaces these and nothing else, so that files of the user's
// (or a folder holding other runs) never go with the old run. Evals of the old model go too, under whatever --out
// name they were written (an eval's file is recognised by its content). The hidden folders below are no such
// entry: they hold an old run on its way out, and no start moves one into another.
bool written_by_sinklab(const fs::path& entry) {
    static const std::set<std::string> names = {"config.yaml", "metrics.h5", "train.log", "checkpoints", "hf"};
    const std::string name = entry.filename().string();
    return names.contains(name) || (name.starts_with("nonfinite_step_") && name.ends_with(".json")) ||
           (name.starts_with("metrics.restart") && name.ends_with(".h5")) ||
           (name.ends_with(".h5") && is_eval_file(entry.string()));
}

// metrics.h5 of a run that restarts at step 0 (no checkpoint to resume) as metrics.restart<k>.h5, the first k free;
// returns the new name.
std::string keep_aside(const fs::path& run) {
    fs::path aside;
    for (int k = 1; fs::exists(aside = run / fmt::format("metrics.restart{}.h5", k)); k++) {
    }
    fs::rename(run / "metrics.h5", aside);
    return aside.filename().string();
}

// What a resume replaces whole, and keeps second names of in kReplacedRun until the start stands.
constexpr const char* kResumeReplaces[] = {"config.yaml", "metrics.h5"};

// Where keep_files_a_start_replaces copies `name` before renaming the copy into kReplacedRun: hidden, beside it.
std::string kept_copy_name(const std::string& name) { return "." + name + ".kept.partial"; }

// The set-aside folder (kReplacedRun) once the new run stands, renamed before it is deleted: a deletion cut short
// must never pass for an old run to put back over the new one.
constexpr const char* kDeleting = ".replaced.deleting";

// The entries of a folder, listed before any of them moves (a folder changed while it is read may skip some).
std::vector<fs::path> entries_of(const fs::path& folder, std::error_code& ec) {
    std::vector<fs::path> found;
    for (fs::directory_iterator it(folder, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
        found.push_back(it->path());
    return found;
}

// Puts the old run of run/.replaced back, each entry over a new one of its name, and removes the emptied folder;
// returns what failed, "" when nothing did. Safe to repeat after a kill on the way, for a start writes its new files
// only once the whole old run is aside: an entry of the run folder named like one still aside is a new one.
std::string put_old_run_back(const fs::path& run) {
    const fs::path aside = run / kReplacedRun;
    std::error_code ec;
    const std::vector<fs::path> entries = entries_of(aside, ec);
    if (ec) return fmt::format("{}: {}", aside.string(), ec.message());
    for (const fs::path& entry : entries) {
        const fs::path back = run / entry.filename();
        fs::remove_all(back, ec);
        if (!ec) fs::rename(entry, back, ec);
        if (ec) return fmt::format("moving {} back: {}", entry.string(), ec.message());
    }
    fs::remove(aside, ec);
    return ec ? fmt::format("{}: {}", aside.string(), ec.message()) : "";
}

}  // namespace

std::string run_entry(const std::string& dir, const std::string& name) {
    std::error_code ec;
    const fs::path aside = fs::path(dir) / kReplacedRun / name;
    return (fs::exists(aside, ec) ? aside : fs::path(dir) / name).string();
}

void require_log_with_checkpoints(const std::string& dir, const std::string& remedy) {
    std::error_code ec;
    if (fs::exists(run_entry(dir, "metrics.h5"), ec)) return;
    const std::string newest = latest_checkpoint(fs::path(run_entry(dir, "checkpoints")).parent_path().string());
    SL_REQUIRE(newest.empty(), "run folder {} holds checkpoints (the newest {}) but no metrics.h5, the run log they "
               "continue; {}", dir, newest, remedy);
}

RunFolder::RunFolder(const std::string& dir, const TrainOptions& opt) : dir_(dir), opt_(opt) {
    lock_ = std::make_unique<FolderLock>(dir_, "run folder", "train", "pick another name with --set run.name=NAME");
    const fs::path d(dir_);
    std::error_code ec;
    SL_REQUIRE(!fs::exists(d, ec) || fs::is_directory(d, ec),
               "run folder {} is a file, not a folder; move it away or pick another name with --set run.name=NAME",
               dir_);
    // A link whose target is gone (a scratch disk not mounted) would otherwise be replaced by a local folder.
    SL_REQUIRE(fs::exists(d, ec) || !fs::is_symlink(d, ec),
               "run folder {} is a link to {}, which does not exist (a disk not mounted?); mount or create it, or "
               "remove the link",
               dir_, fs::read_symlink(d, ec).string());
    SL_REQUIRE(!fs::exists(d / "sweep.yaml", ec),
               "run folder {} is a sweep's suite folder (it holds sweep.yaml and the suite's runs); pick another "
               "name with --set run.name=NAME",
               dir_);
    finish_unfinished_replace();
    remove_stale_replacements((d / "config.yaml").string());
    // Else found only at the first checkpoint, after training to it (and a resume saw no checkpoint at all).
    SL_REQUIRE(opt_.overwrite || !fs::exists(d / "checkpoints", ec) || fs::is_directory(d / "checkpoints", ec),
               "run folder {}: its entry 'checkpoints' is not a folder, where the run's checkpoints go; move it away",
               dir_);
    if (!opt_.overwrite)
        require_log_with_checkpoints(dir_, "put metrics.h5 back and continue with --resume, or replace the run with "
                                           "--overwrite (which deletes the checkpoints)");
    const bool holds_run = fs::exists(d / "metrics.h5", ec);
    if (opt_.resume) {
        resume_from_ = latest_checkpoint(dir_);
        // Without a checkpoint the run starts at step 0 (a job script's first start, or a requeued job that ended
        // before its first checkpoint); rows logged before are kept aside, not dropped.
        restart_over_ = resume_from_.empty() && holds_run;
    } else if (holds_run) {
        SL_REQUIRE(opt_.overwrite,
                   "run folder {} already holds a run; continue it with --resume, replace it with --overwrite, or "
                   "pick another name with --set run.name=NAME",
                   dir_);
    }
}

std::vector<std::string> RunFolder::notes() const {
    std::vector<std::string> notes;
    if (!put_back_note_.empty()) notes.push_back(put_back_note_);
    if (!lock_->note().empty()) notes.push_back(lock_->note());
    return notes;
}

// What a start killed while replacing the run left behind. An old run still set aside goes back, as a start that
// fails puts it back (so --resume continues it and --overwrite replaces it again); one whose deletion was cut short
// once the new run stood is deleted.
void RunFolder::finish_unfinished_replace() {
    const fs::path d(dir_), aside = d / kReplacedRun;
    std::error_code ec;
    if (fs::exists(aside, ec)) {
        const std::string failed = put_old_run_back(d);
        SL_REQUIRE(failed.empty(),
                   "run folder {}: a start that replaced its run did not finish and left the old run in {}, and "
                   "putting it back failed ({}); move the entries of {} back into {} by hand",
                   dir_, aside.string(), failed, aside.string(), dir_);
        put_back_note_ = fmt::format("put back the run's files that an unfinished start (--overwrite or --resume) had "
                                     "left in {}",
                                     aside.string());
        // A killed restart had renamed metrics.h5 to metrics.restart<k>.h5, now a second name of the one put back.
        for (const fs::path& entry : entries_of(d, ec)) {
            const std::string name = entry.filename().string();
            if (name.starts_with("metrics.restart") && fs::equivalent(entry, d / "metrics.h5", ec))
                fs::remove(entry, ec);
        }
    }
    for (const char* name : kResumeReplaces) fs::remove(d / kept_copy_name(name), ec);
    fs::remove_all(d / kDeleting, ec);
    SL_REQUIRE(!ec, "cannot delete {} (a replaced run that an earlier start did not finish deleting): {}; delete it "
               "by hand", (d / kDeleting).string(), ec.message());
}

void RunFolder::prepare(const Config& cfg) {
    const fs::path d(dir_);
    std::error_code ec;
    made_dir_ = !fs::exists(d, ec);
    if (opt_.overwrite && !made_dir_)
        set_old_run_aside();
    else if (!made_dir_)
        keep_files_a_start_replaces();
    if (restart_over_) kept_aside_ = keep_aside(d);
    fs::create_directories(d, ec);
    SL_REQUIRE(!ec && fs::is_directory(d), "cannot create the run folder {}: {}; check run.out_dir", dir_,
               ec.message());
    // Replaced whole: a resume that fails on a full disk must not leave the run's config cut short.
    replace_file_durably((d / "config.yaml").string(), dump_config(cfg));
}

void RunFolder::set_old_run_aside() {
    const fs::path d(dir_), aside = d / kReplacedRun;
    std::error_code ec;
    std::vector<fs::path> old;
    for (const fs::path& entry : entries_of(d, ec))
        if (written_by_sinklab(entry)) old.push_back(entry);
    SL_REQUIRE(!ec, "cannot read the run folder {}: {}", dir_, ec.message());
    if (old.empty()) return;
    fs::create_directory(aside, ec);
    SL_REQUIRE(!ec, "cannot create {} to set the old run aside: {}; check permissions", aside.string(), ec.message());
    old_run_ = Aside::partly;
    for (const fs::path& entry : old) {
        fs::rename(entry, aside / entry.filename(), ec);
        SL_REQUIRE(!ec, "cannot move {} into {}: {}", entry.string(), aside.string(), ec.message());
    }
    old_run_ = Aside::wholly;
}

// A resume replaces config.yaml and metrics.h5 (cut back to the checkpoint's step) whole: second names of the two in
// kReplacedRun keep them as they were, for undo and for the next start after a kill to put back over the new ones. A
// hard link costs neither time nor space; where the file system has none, a copy, made under a temporary name and
// renamed into place whole, since whatever kReplacedRun holds is put back over the run's own file.
void RunFolder::keep_files_a_start_replaces() {
    const fs::path d(dir_), aside = d / kReplacedRun;
    std::error_code ec;
    for (const char* name : kResumeReplaces) {
        if (!fs::is_regular_file(d / name, ec)) continue;
        fs::create_directory(aside, ec);
        SL_REQUIRE(!ec, "cannot create {} to keep the run's {} until the start stands: {}; check permissions",
                   aside.string(), name, ec.message());
        old_run_ = Aside::linked;
        fs::create_hard_link(d / name, aside / name, ec);
        if (!ec) continue;
        const fs::path partial = d / kept_copy_name(name);
        fs::copy_file(d / name, partial, fs::copy_options::overwrite_existing, ec);
        if (!ec) fs::rename(partial, aside / name, ec);
        if (ec) {
            std::error_code ignored;
            fs::remove(partial, ignored);
        }
        SL_REQUIRE(!ec, "cannot keep a copy of {} until the start stands: {}; check free disk space",
                   (d / name).string(), ec.message());
    }
}

// The set-aside folder is renamed first, still inside the setup that puts the old run back on a failure; deleting
// it afterwards may fail without harming the new run.
std::string RunFolder::commit() {
    made_dir_ = false;
    if (old_run_ == Aside::none) return "";
    const fs::path d(dir_);
    std::error_code ec;
    fs::rename(d / kReplacedRun, d / kDeleting, ec);
    SL_REQUIRE(!ec, "cannot rename {} to {}: {}", (d / kReplacedRun).string(), (d / kDeleting).string(), ec.message());
    old_run_ = Aside::none;
    fs::remove_all(d / kDeleting, ec);
    if (!ec) return "";
    return fmt::format("could not delete the replaced run in {} ({}); delete it by hand, or the next start of this "
                       "run will", (d / kDeleting).string(), ec.message());
}

void RunFolder::undo(const std::exception_ptr& failure) {
    const fs::path d(dir_), aside = d / kReplacedRun;
    std::error_code ec;
    if (made_dir_) fs::remove_all(d, ec);
    if (old_run_ == Aside::none) return;
    // With the whole old run aside, whatever sinklab wrote in the folder is the new run's; what cannot be deleted is
    // left (put_old_run_back replaces an entry of the old run's name).
    if (old_run_ == Aside::wholly)
        for (const fs::path& entry : entries_of(d, ec))
            if (written_by_sinklab(entry)) fs::remove_all(entry, ec);
    const std::string failed = put_old_run_back(d);
    // A restart's metrics.restart<k>.h5 is now a second name of the metrics.h5 put back.
    if (failed.empty() && old_run_ == Aside::linked && !kept_aside_.empty()) fs::remove(d / kept_aside_, ec);
    old_run_ = Aside::none;
    if (!failed.empty())
        fail("{}; and the old run could not be put back ({}): its files are in {}; move them back into {} by hand",
             message_of(failure), failed, aside.string(), dir_);
}

}  // namespace sinklab
