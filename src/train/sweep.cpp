#include "train/sweep.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>

#include "core/check.h"
#include "core/file_writer.h"
#include "core/folder_lock.h"
#include "core/progress.h"
#include "metrics/runlog_reader.h"
#include "train/checkpoint.h"
#include "train/run_folder.h"
#include "train/trainer.h"

namespace sinklab {
namespace fs = std::filesystem;
namespace {

std::string override_key(const std::string& assignment) {
    const std::string key = assignment.substr(0, assignment.find('='));
    const size_t b = key.find_first_not_of(" \t"), e = key.find_last_not_of(" \t");
    return b == std::string::npos ? "" : key.substr(b, e - b + 1);
}

// The overrides without those that a later one of the same key replaces: the same config, and commands (--dry-run,
// the Slurm script, train.log) that name each key once.
std::vector<std::string> last_of_each_key(const std::vector<std::string>& overrides) {
    std::vector<std::string> kept;
    for (size_t i = 0; i < overrides.size(); i++) {
        const std::string key = override_key(overrides[i]);
        const auto same_key = [&](const std::string& later) { return override_key(later) == key; };
        if (std::none_of(overrides.begin() + std::ptrdiff_t(i) + 1, overrides.end(), same_key))
            kept.push_back(overrides[i]);
    }
    return kept;
}

// True when one key is the other or a section holding it: setting either changes the other's value.
bool overlapping(const std::string& a, const std::string& b) {
    return a == b || a.starts_with(b + ".") || b.starts_with(a + ".");
}

// A --set of a key that variants set would give all of them its value under names that say otherwise.
void refuse_sets_of_variant_keys(const Suite& suite, const std::vector<std::string>& cli_overrides) {
    for (const std::string& o : cli_overrides) {
        const std::string key = override_key(o);
        std::vector<std::string> setters;  // one per variant: its name and the first line that sets the key
        for (const SuiteVariant& v : suite.variants) {
            const auto set = std::find_if(v.overrides.begin(), v.overrides.end(), [&](const Override& x) {
                return overlapping(override_key(x.assignment), key);
            });
            if (set != v.overrides.end()) setters.push_back(fmt::format("{} ({})", v.name, set->origin));
        }
        SL_REQUIRE(setters.empty(),
                   "--set {}: variant{} {} set{} {} in the suite; the --set would run {} with its value under names "
                   "that say otherwise. Change the variants in (a copy of) the suite instead",
                   o, setters.size() == 1 ? "" : "s", fmt::join(setters, ", "), setters.size() == 1 ? "s" : "", key,
                   setters.size() == suite.variants.size() ? "every variant" : "them");
    }
}

// Variants whose configs are the same train the same model once per seed under two names, and compare would
// report a difference of nothing. The first seed's runs (one per variant, names differing) are compared: seeds differ
// only in run.seed.
void refuse_identical_variants(const Sweep& sweep) {
    const size_t n = sweep.suite.variants.size();
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            SL_REQUIRE(changed_keys(sweep.runs[i].config, sweep.runs[j].config) != std::vector<std::string>{"run.name"},
                       "{}: variants {} and {} give the same config: both would train the same model under two "
                       "names. Make their set: differ, or remove one",
                       sweep.suite.path, sweep.runs[i].variant, sweep.runs[j].variant);
}

// One line per distinct message, naming the runs it applies to (a variant's error repeats for each seed).
[[noreturn]] void fail_listing(const std::string& headline,
                               const std::vector<std::pair<std::string, std::string>>& errors) {
    std::vector<std::string> order;
    std::map<std::string, std::vector<std::string>> runs_of;
    for (const auto& [run, message] : errors) {
        if (!runs_of.count(message)) order.push_back(message);
        runs_of[message].push_back(run);
    }
    std::string text = headline;
    for (const std::string& m : order) text += fmt::format("\n  {}: {}", fmt::join(runs_of[m], ", "), m);
    throw Error(text);
}

bool interrupted(const ProcessResult& r) {
    // Launchers like mpirun report a child's SIGINT/SIGTERM as 128 + the signal number.
    return r.stop_signal != 0 || r.signal == SIGINT || r.signal == SIGTERM || r.exit_code == 128 + SIGINT ||
           r.exit_code == 128 + SIGTERM;
}

}  // namespace

const char* action_name(RunAction a) {
    switch (a) {
        case RunAction::start:
            return "new run";
        case RunAction::resume:
            return "resume";
        case RunAction::restart:
            return "restart";
        case RunAction::skip:
            return "finished, skip";
    }
    return "?";
}

Sweep expand_sweep(const Suite& suite, const std::vector<std::string>& cli_overrides) {
    for (const std::string& o : cli_overrides) {
        const std::string key = override_key(o);
        SL_REQUIRE(key != "run.name" && key != "run.seed",
                   "--set {}: the sweep sets {} for each run (<variant>-s<seed>, seeds from the suite); change the "
                   "suite's name: or seeds: instead",
                   o, key);
    }
    refuse_sets_of_variant_keys(suite, cli_overrides);
    Sweep sweep;
    sweep.suite = suite;
    std::vector<std::pair<std::string, std::string>> errors;
    for (uint64_t seed : suite.seeds) {
        for (const SuiteVariant& v : suite.variants) {
            SweepRun run;
            run.name = run_name(v.name, seed);
            run.variant = v.name;
            run.seed = seed;
            // Each with where it was written, which a config error names.
            std::vector<Override> written = suite.overrides;
            written.insert(written.end(), v.overrides.begin(), v.overrides.end());
            for (const std::string& o : cli_overrides) written.push_back({o, "--set"});
            try {
                // The suite's folder sits in the run.out_dir the suite and command line give (variants cannot
                // move it), so it is the same for every run.
                const Config plain = load_config_with_sources(suite.base, written);
                sweep.out_dir = (fs::path(plain.run.out_dir) / suite.name).lexically_normal().string();
                const std::string by_sweep = "the sweep";
                written.push_back({"run.out_dir=" + sweep.out_dir, by_sweep});
                written.push_back({"run.name=" + run.name, by_sweep});
                written.push_back({fmt::format("run.seed={}", seed), by_sweep});
                for (const Override& o : written) run.overrides.push_back(o.assignment);
                run.overrides = last_of_each_key(run.overrides);
                run.config = load_config_with_sources(suite.base, written);
                run.dir = run_dir(run.config);
            } catch (const Error& e) {
                errors.emplace_back(run.name, e.what());
            }
            sweep.runs.push_back(std::move(run));
        }
    }
    if (!errors.empty())
        fail_listing(fmt::format("{}: {} of {} runs have config errors; nothing was run", suite.path, errors.size(),
                                 sweep.runs.size()),
                     errors);
    refuse_identical_variants(sweep);
    return sweep;
}

RunState inspect_run(const SweepRun& run) {
    std::error_code ec;
    SL_REQUIRE(!fs::exists(run.dir, ec) || fs::is_directory(run.dir, ec),
               "{} is a file where the run's folder goes; move it away, or send this suite elsewhere with --set "
               "run.out_dir=DIR",
               run.dir);
    const fs::path h5 = run_entry(run.dir, "metrics.h5"), cfg_file = run_entry(run.dir, "config.yaml");
    RunState s;
    s.trained_by = folder_lock_holder(run.dir);
    require_log_with_checkpoints(run.dir, "put metrics.h5 back (the sweep then resumes the run), or remove the folder "
                                          "to redo it");
    if (!fs::exists(h5)) return s;
    if (fs::exists(cfg_file)) {
        const std::vector<std::string> diffs = config_differences(load_config(cfg_file.string()), run.config);
        SL_REQUIRE(diffs.empty(),
                   "{} holds a run of another config (folder vs now: {}); remove the folder to redo it, or send this "
                   "suite elsewhere with --set run.out_dir=DIR",
                   run.dir, fmt::join(diffs, ", "));
    }
    const Dataset steps = RunLogReader(h5.string()).read("train", "step");
    s.step = steps.data.empty() ? 0 : int64_t(steps.data.back());
    s.checkpoint_step = latest_checkpoint_step(fs::path(run_entry(run.dir, "checkpoints")).parent_path().string());
    // Finished means the final checkpoint is there: the last row is logged before it is written, and a kill in
    // between leaves a run that eval and export cannot read at its end.
    const int64_t max_steps = run.config.train.max_steps;
    if (s.step >= max_steps && s.checkpoint_step >= max_steps)
        s.action = RunAction::skip;
    else
        s.action = s.checkpoint_step >= 0 ? RunAction::resume : RunAction::restart;
    return s;
}

void check_suite_folder(const Sweep& sweep) {
    const fs::path folder(sweep.out_dir);
    std::error_code ec;
    for (const char* run_file : {"metrics.h5", "config.yaml"})
        SL_REQUIRE(!fs::exists(folder / run_file, ec),
                   "{}: its suite folder {} is a run's folder (it holds {}); give the suite another name: or send it "
                   "elsewhere with --set run.out_dir=DIR",
                   sweep.suite.path, sweep.out_dir, run_file);
    const fs::path manifest = folder / "sweep.yaml";
    if (!fs::exists(manifest, ec)) return;
    std::vector<std::string> variants, old_variants;
    for (const SuiteVariant& v : sweep.suite.variants) variants.push_back(v.name);
    std::string old_suite;
    try {
        const YAML::Node old = YAML::LoadFile(manifest.string());
        if (old["variants"]) old_variants = old["variants"].as<std::vector<std::string>>();
        if (old["suite"]) old_suite = old["suite"].as<std::string>();
    } catch (const YAML::Exception&) {
        return;  // unreadable: sweep writes it anew
    }
    // Another suite file that still exists is another suite; of one that is gone, the variants tell.
    const bool gone = old_suite.empty() || !fs::exists(old_suite, ec);
    SL_REQUIRE(gone ? old_variants == variants : fs::equivalent(old_suite, sweep.suite.path, ec),
               "{}: its suite folder {} belongs to another suite ({}, variants {}); two suites of one name would mix "
               "their runs: give this one another name: or send it elsewhere with --set run.out_dir=DIR (or, to "
               "have this suite take the folder over, delete {})",
               sweep.suite.path, sweep.out_dir, old_suite.empty() ? "unnamed" : old_suite,
               fmt::join(old_variants, ", "), manifest.string());
}

std::vector<RunState> inspect_sweep(const Sweep& sweep) {
    check_suite_folder(sweep);
    std::vector<RunState> states;
    std::vector<std::pair<std::string, std::string>> errors;
    for (const SweepRun& run : sweep.runs) {
        try {
            states.push_back(inspect_run(run));
        } catch (const Error& e) {
            errors.emplace_back(run.name, e.what());
        }
    }
    if (!errors.empty())
        fail_listing(
            fmt::format("{}: {} run folders cannot be continued; nothing was run", sweep.suite.path, errors.size()),
            errors);
    return states;
}

std::vector<std::string> train_command(const std::vector<std::string>& launcher, const std::string& binary,
                                       const Sweep& sweep, const SweepRun& run, RunAction action) {
    std::vector<std::string> argv = launcher;
    argv.insert(argv.end(), {binary, "train", sweep.suite.base});
    for (const std::string& o : run.overrides) argv.insert(argv.end(), {"--set", o});
    if (action == RunAction::resume) argv.push_back("--resume");
    if (action == RunAction::restart) argv.push_back("--overwrite");
    return argv;
}

void print_dry_run(std::FILE* out, const Sweep& sweep, const std::vector<RunState>& states,
                   const std::vector<std::string>& launcher, const std::string& binary) {
    const Suite& s = sweep.suite;
    fmt::print(out, "# sweep {} ({}): {} variants x {} seeds = {} runs in {}\n", s.name, s.path, s.variants.size(),
               s.seeds.size(), sweep.runs.size(), sweep.out_dir);
    for (size_t i = 0; i < sweep.runs.size(); i++) {
        const SweepRun& run = sweep.runs[i];
        const RunState& st = states[i];
        const int64_t max_steps = run.config.train.max_steps;
        // Its start would be refused by the folder's lock (a run started by hand, or by a task of the suite's Slurm
        // array).
        if (!st.trained_by.empty()) {
            fmt::print(out, "# {}: in training now by {}, at step {}/{}; the sweep cannot run it until that ends\n",
                       run.name, st.trained_by, st.step, max_steps);
            continue;
        }
        switch (st.action) {
            case RunAction::start:
                fmt::print(out, "# {}: new run\n", run.name);
                break;
            case RunAction::resume:
                fmt::print(out, "# {}: stopped at step {}/{}, resume from its newest checkpoint (step {})\n", run.name,
                           st.step, max_steps, st.checkpoint_step);
                break;
            case RunAction::restart:
                fmt::print(out, "# {}: stopped at step {}/{} before its first checkpoint, start again\n", run.name,
                           st.step, max_steps);
                break;
            case RunAction::skip:
                fmt::print(out, "# {}: finished ({}/{} steps), skipped\n", run.name, st.step, max_steps);
                continue;
        }
        fmt::print(out, "{}\n", shell_join(train_command(launcher, binary, sweep, run, st.action)));
    }
}

void write_manifest(const Sweep& sweep) {
    YAML::Emitter y;
    y << YAML::BeginMap;
    y << YAML::Key << "suite" << YAML::Value << fs::absolute(sweep.suite.path).lexically_normal().string();
    y << YAML::Key << "name" << YAML::Value << sweep.suite.name;
    y << YAML::Key << "variants" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const SuiteVariant& v : sweep.suite.variants) y << v.name;
    y << YAML::EndSeq;
    y << YAML::Key << "seeds" << YAML::Value << YAML::Flow << sweep.suite.seeds;
    y << YAML::EndMap;
    std::error_code ec;
    fs::create_directories(sweep.out_dir, ec);
    SL_REQUIRE(!ec, "cannot create the suite folder {}: {}; check run.out_dir and permissions", sweep.out_dir,
               ec.message());
    // Replaced whole, so that a full disk never leaves a suite folder without it. (The suite lock makes what a
    // killed sweep left of an earlier replacement safe to remove.)
    remove_stale_replacements((fs::path(sweep.out_dir) / "sweep.yaml").string());
    replace_file_durably((fs::path(sweep.out_dir) / "sweep.yaml").string(),
                         std::string("# Written by sinklab sweep. sinklab compare orders a suite folder's table by "
                                     "variants: (the first is the baseline).\n") +
                             y.c_str() + "\n");
}

std::vector<RunOutcome> run_sweep(std::FILE* out, const Sweep& sweep, const std::vector<RunState>& states,
                                  const SweepOptions& opt) {
    using Clock = std::chrono::steady_clock;
    SL_ASSERT(states.size() == sweep.runs.size(), "{} states for {} runs", states.size(), sweep.runs.size());
    std::vector<RunOutcome> outcomes;
    int to_run = 0, started = 0;
    for (const RunState& s : states) to_run += s.action != RunAction::skip;
    double ran_seconds = 0;
    bool stop = false;
    const auto t_sweep = Clock::now();
    for (size_t i = 0; i < sweep.runs.size(); i++) {
        const SweepRun& run = sweep.runs[i];
        RunOutcome o;
        o.name = run.name;
        RunState state = states[i];
        const std::string tag = fmt::format("[{}/{}] {}", i + 1, sweep.runs.size(), run.name);
        // Looked at again just before it would run: a run started by hand may have moved on since the sweep began,
        // and an --overwrite of what is now a finished run would delete it.
        std::string changed;
        if (state.action != RunAction::skip && !stop) {
            try {
                state = inspect_run(run);
            } catch (const Error& e) {
                changed = e.what();
            }
        }
        o.action = state.action;
        if (!changed.empty()) {
            o.result = "its folder changed since the sweep began: " + changed;
            fmt::print(out, "{}: {}\n", tag, o.result);
            if (!opt.keep_going) stop = true;
        } else if (o.action == RunAction::skip) {
            o.finished = true;
            o.result = "finished before";
            fmt::print(out, "{}: finished before ({} steps), skipped\n", tag, state.step);
        } else if (stop) {
            o.result = "not run";
        } else {
            const double elapsed = std::chrono::duration<double>(Clock::now() - t_sweep).count();
            const std::string left =
                started == 0
                    ? ""
                    : fmt::format(", about {} left", format_duration(ran_seconds / started * (to_run - started)));
            const std::vector<std::string> argv = train_command(opt.launcher, opt.binary, sweep, run, o.action);
            fmt::print(out, "\n{}: {} in {} (sweep: {} elapsed{})\n$ {}\n", tag, action_name(o.action), run.dir,
                       format_duration(elapsed), left, shell_join(argv));
            std::fflush(out);
            // Only a log this launch wrote is worth naming: a restart that failed before logging leaves the
            // earlier attempt's log (or --overwrite puts it back).
            const fs::path log = fs::path(run.dir) / "train.log";
            const auto log_time = [&log] {
                std::error_code ec;
                const fs::file_time_type t = fs::last_write_time(log, ec);
                return ec ? fs::file_time_type::min() : t;
            };
            const fs::file_time_type log_before = log_time();
            const auto t0 = Clock::now();
            const ProcessResult r = opt.launch(argv);
            o.ran = true;
            o.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
            ran_seconds += o.seconds;
            started++;
            if (!r.ok()) {
                o.result = r.describe();
            } else {
                try {
                    const RunState after = inspect_run(run);
                    o.finished = after.action == RunAction::skip;
                    const int64_t max_steps = run.config.train.max_steps;
                    o.result = o.finished ? "finished"
                                          : fmt::format("exited at step {}/{}{}", after.step, max_steps,
                                                        after.step >= max_steps ? " without its final checkpoint" : "");
                } catch (const Error& e) {
                    o.result = fmt::format("exited, but its folder cannot be read: {}", e.what());
                }
            }
            fmt::print(out, "{}: {} after {}\n", tag, o.result, format_duration(o.seconds));
            if (interrupted(r)) {
                fmt::print(out, "sweep interrupted; the same command continues it\n");
                stop = true;
            } else if (!o.finished && !opt.keep_going) {
                fmt::print(out, "sweep stopped: {} did not finish (--keep-going runs the others anyway); {}\n",
                           run.name,
                           log_time() != log_before
                               ? "its log is " + log.string()
                               : std::string("it stopped before writing to its log: its error is above"));
                stop = true;
            }
        }
        outcomes.push_back(std::move(o));
    }
    return outcomes;
}

int print_summary(std::FILE* out, const Sweep& sweep, const std::vector<RunOutcome>& outcomes) {
    size_t width = 3;
    for (const RunOutcome& o : outcomes) width = std::max(width, o.name.size());
    int unfinished = 0;
    fmt::print(out, "\nsweep {}: {} runs in {}\n", sweep.suite.name, outcomes.size(), sweep.out_dir);
    fmt::print(out, "  {:<{}}  {:<15}  {:>7}  {}\n", "run", width, "action", "time", "result");
    for (const RunOutcome& o : outcomes) {
        unfinished += !o.finished;
        fmt::print(out, "  {:<{}}  {:<15}  {:>7}  {}\n", o.name, width, action_name(o.action),
                   o.ran ? format_duration(o.seconds) : "-", o.result);
    }
    return unfinished;
}

}  // namespace sinklab
