#include "metrics/compare.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <tuple>

#include "config/schema.h"
#include "core/check.h"
#include "metrics/runlog_format.h"
#include "metrics/runlog_reader.h"
#include "metrics/sink_metrics.h"
#include "train/run_folder.h"
#include "train/suite.h"

namespace sinklab {
namespace fs = std::filesystem;
namespace {

std::string folder_name(const fs::path& dir) {
    const fs::path p = dir.lexically_normal();
    return (p.has_filename() ? p : p.parent_path()).filename().string();
}

double mean(const std::vector<double>& v) {
    return v.empty() ? NAN : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

// train.max_steps, model.seq_len and the intervened positions of the run's config (the file's config_yaml attribute;
// a resume changes neither the model nor an intervention).
void read_config_attr(const RunLogReader& log, RunCurves& r) {
    if (!log.has_attr("config_yaml")) return;
    try {
        const YAML::Node cfg = YAML::Load(log.str_attr("config_yaml"));
        if (cfg["train"] && cfg["train"]["max_steps"]) r.max_steps = cfg["train"]["max_steps"].as<int64_t>();
        if (cfg["model"] && cfg["model"]["seq_len"]) r.seq_len = cfg["model"]["seq_len"].as<int64_t>();
        if (const YAML::Node iv = cfg["intervention"]) {
            if (iv["isolate"]) r.intervention.isolate = iv["isolate"].as<std::vector<int>>();
            if (iv["amplify"] && iv["amplify"]["position"])
                r.intervention.amplify.position = iv["amplify"]["position"].as<int>();
        }
    } catch (const YAML::Exception& e) {
        fail("{}: its config_yaml attribute is not readable YAML ({}); the file is damaged or was not written by "
             "sinklab train",
             log.path(), e.what());
    }
}

// The key positions of /sink/attn_mass's columns, in their order: the file's sink_positions attribute. It is not
// metrics.positions: the trainer puts 0 first, drops repeats and adds the interventions' positions.
std::vector<int> read_positions(const RunLogReader& log) {
    SL_REQUIRE(log.has_attr("sink_positions"),
               "{}: no sink_positions attribute; the file is damaged or was not written by sinklab train", log.path());
    try {
        return YAML::Load(log.str_attr("sink_positions")).as<std::vector<int>>();
    } catch (const YAML::Exception& e) {
        fail("{}: its sink_positions attribute '{}' is no list of positions ({}); the file is damaged", log.path(),
             config::clipped(log.str_attr("sink_positions")), e.what());
    }
}

// [L] first_vs_rest of each layer's row of a [L, Tp] column, at the last /sink row, without the positions `skip`.
std::vector<double> position0_ratios(const RunLogReader& log, const std::string& column,
                                     const std::vector<int>& skip) {
    const Dataset last = log.read_last("sink", column);  // [1, L, Tp]
    const int64_t L = last.shape.at(1), Tp = last.shape.at(2);
    std::vector<double> ratio;
    for (int64_t l = 0; l < L; l++) ratio.push_back(first_vs_rest(last.data.data() + l * Tp, Tp, skip));
    return ratio;
}

void read_sink(const RunLogReader& log, RunCurves& r) {
    const std::vector<int>& positions = r.positions;
    if (!log.has("sink", "step")) return;
    const Dataset steps = log.read_last("sink", "step");  // the group's columns have this many rows, 0 or 1
    if (steps.shape.at(0) == 0) return;
    r.sink_step = int64_t(steps.data.back());

    const Dataset mass = log.read_last("sink", "attn_mass");  // [1, L, H, P]
    const int64_t L = mass.shape.at(1), H = mass.shape.at(2), P = mass.shape.at(3);
    SL_REQUIRE(P == int64_t(positions.size()),
               "{}: /sink/attn_mass tracks {} positions but its sink_positions attribute lists {}; the file is "
               "damaged",
               log.path(), P, positions.size());
    const std::vector<double>& last = mass.data;  // [L, H, P]
    for (int64_t p = 0; p < P; p++) {
        std::vector<double>& by_layer = r.mass[positions[size_t(p)]];
        for (int64_t l = 0; l < L; l++) {
            double sum = 0;
            for (int64_t h = 0; h < H; h++) sum += last[size_t((l * H + h) * P + p)];
            by_layer.push_back(sum / double(H));
        }
    }
    r.sink_rate = log.read_last("sink", "sink_rate").data;
    r.dominance = log.read_last("sink", "dominance").data;
    const std::vector<int> intervened = r.intervention.positions();
    r.var_ratio = position0_ratios(log, "wo_input_std", intervened);
    if (log.has("sink", "attn_out_std")) r.att_ratio = position0_ratios(log, "attn_out_std", intervened);  // or none
}

// The effective rank of each layer's block output at the last /heavy row (the paper's table gives its mean over
// layers); none before the first metrics.heavy_every step.
void read_heavy(const RunLogReader& log, RunCurves& r) {
    if (!log.has("heavy", "effective_rank")) return;
    const Dataset rank = log.read_last("heavy", "effective_rank");  // [1, L], or no row
    if (rank.shape.at(0) > 0) r.effective_rank = rank.data;
}

// [L] mean ± sd over `runs` of each layer's value, `of` giving a run's [L] values (nullptr or empty: none); as many
// layers as the deepest run has.
std::vector<Stat> layer_stats(const std::vector<const RunCurves*>& runs,
                              const std::function<const std::vector<double>*(const RunCurves&)>& of) {
    size_t L = 0;
    for (const RunCurves* r : runs)
        if (const std::vector<double>* v = of(*r)) L = std::max(L, v->size());
    std::vector<Stat> stats;
    for (size_t l = 0; l < L; l++) {
        std::vector<double> layer;
        for (const RunCurves* r : runs) {
            const std::vector<double>* v = of(*r);
            layer.push_back(v && l < v->size() ? (*v)[l] : NAN);
        }
        stats.push_back(stat_of(layer));
    }
    return stats;
}

// Config keys in which the seeds of one variant may differ: the seed and where the run lives, and keys that change
// neither what is trained nor what compare reads (threads, backend and kernel, file flushes, checkpoints, the
// cross-rank check and the hang watchdog, the fallback for missing data). Not among them: train.max_steps (it sets
// the LR schedule), the log and metric cadences (they decide which steps compare's final values come from), and
// fault.nan_policy and fault.spike_* (they skip updates).
const std::set<std::string> kSeedsMayDiffer = {
    "run.name", "run.out_dir", "run.seed", "run.threads", "backend", "attention.impl", "attention.ds_scratch_mib",
    "train.shard_optimizer", "metrics.flush_every", "checkpoint.every", "checkpoint.keep", "fault.check_every",
    "fault.hang_timeout", "data.missing"};

// "data.train tokens (checksum A vs B)" for each of the two runs' data whose logged checksums differ.
std::vector<std::string> data_differences(const RunCurves& a, const RunCurves& b) {
    std::vector<std::string> out;
    for (const auto& [key, x, y] : {std::tuple{"data.train", a.train_checksum, b.train_checksum},
                                    std::tuple{"data.val", a.val_checksum, b.val_checksum}})
        if (!x.empty() && !y.empty() && x != y) out.push_back(fmt::format("{} tokens (checksum {} vs {})", key, x, y));
    return out;
}

// A group's config: that of its first run with a loadable config.yaml (its seeds agree, checked before); nullptr
// when none has one.
const Config* group_config(const std::vector<const RunCurves*>& runs) {
    for (const RunCurves* r : runs)
        if (r->config) return &*r->config;
    return nullptr;
}

// A group's checksum of its data (&RunCurves::train_checksum or val_checksum): that of its first run which logged
// one (its seeds agree, checked before); empty when none did.
std::string group_checksum(const std::vector<const RunCurves*>& runs, std::string RunCurves::*checksum) {
    for (const RunCurves* r : runs)
        if (!(r->*checksum).empty()) return r->*checksum;
    return "";
}

// A note for each group validated on other tokens than the baseline: other data.val files (their logged checksums
// differ), or other windows of them. Validation reads the first val_batches x micro_batch windows of seq_len tokens,
// so that runs of another micro-batch validate on the same tokens only with val_batches scaled to match.
void validation_notes(Comparison& c, const std::vector<std::vector<const RunCurves*>>& members, size_t base) {
    const auto val_checksum = [&](size_t g) { return group_checksum(members[g], &RunCurves::val_checksum); };
    const auto validated = [&](size_t g) {
        return std::any_of(members[g].begin(), members[g].end(),
                           [](const RunCurves* r) { return !r->val_loss.empty(); });
    };
    const std::string base_val = val_checksum(base);
    const Config* base_config = group_config(members[base]);
    for (size_t g = 0; g < c.groups.size(); g++) {
        const std::string theirs = val_checksum(g);
        if (!theirs.empty() && !base_val.empty() && theirs != base_val) {
            c.notes.push_back(fmt::format("{} was validated on other tokens than {} (data.val checksum {} vs {}): "
                                          "their val losses do not compare",
                                          c.groups[g].name, c.baseline, theirs, base_val));
            continue;
        }
        const Config* config = group_config(members[g]);
        if (g == base || !base_config || !config || !validated(g) || !validated(base)) continue;
        const auto windows = [](const Config& cfg) { return int64_t(cfg.metrics.val_batches) * cfg.train.micro_batch; };
        if (windows(*config) != windows(*base_config) || config->model.seq_len != base_config->model.seq_len)
            c.notes.push_back(fmt::format(
                "{} was validated on other windows of data.val than {} (the first metrics.val_batches x "
                "train.micro_batch = {} windows of {} tokens vs {} of {}): their val losses do not compare",
                c.groups[g].name, c.baseline, windows(*config), config->model.seq_len, windows(*base_config),
                base_config->model.seq_len));
    }
}

// What a group's config differs from the baseline's in, beyond the variant: keys that change what its numbers mean.
struct KeyNote {
    std::set<std::string> keys;
    const char* differs;  // "<group> <differs> than <baseline> (the keys, <baseline>'s first): <meaning>"
    const char* meaning;
};
const KeyNote kKeyNotes[] = {
    {{"train.lr", "train.min_lr", "train.warmup_steps", "train.max_steps", "train.schedule", "train.decay_steps",
      "train.wsd_decay_frac"},
     "was trained on another learning-rate schedule",
     "its tokens to target and speed-up measure the schedule as well as the variant"},
    {{"data.tokenizer"},
     "was trained with another tokenizer",
     "its losses are per token of another vocabulary: neither they nor tokens to target compare"},
    {{"model.seq_len"},
     "was trained on sequences of another length",
     "its losses are over other contexts, and its attention masses spread over another number of keys (uniform "
     "attention puts 1/T on each), so neither compares directly"},
    {{"metrics.sink_eps", "metrics.wo_std_positions"},
     "measured its sinks with other settings",
     "its sink rate (sink_eps) or var and att ratios (wo_std_positions) are other measures"},
};

// A note for each group whose config differs from the baseline's in the keys of a KeyNote, and for each trained on
// other tokens (data.train's logged checksums differ, whatever the globs say).
void training_notes(Comparison& c, const std::vector<std::vector<const RunCurves*>>& members, size_t base) {
    const Config* base_config = group_config(members[base]);
    const std::string base_train = group_checksum(members[base], &RunCurves::train_checksum);
    for (size_t g = 0; g < c.groups.size(); g++) {
        if (g == base) continue;
        const std::string theirs = group_checksum(members[g], &RunCurves::train_checksum);
        if (!theirs.empty() && !base_train.empty() && theirs != base_train)
            c.notes.push_back(fmt::format("{} was trained on other tokens than {} (data.train checksum {} vs {}): its "
                                          "losses and tokens to target measure the data as well as the variant",
                                          c.groups[g].name, c.baseline, theirs, base_train));
        const Config* config = group_config(members[g]);
        if (!base_config || !config) continue;
        const std::vector<std::string> changed = changed_keys(*base_config, *config);
        for (const KeyNote& note : kKeyNotes) {
            std::set<std::string> others;
            for (const std::string& key : changed)
                if (!note.keys.contains(key)) others.insert(key);
            const std::vector<std::string> differ = config_differences(*base_config, *config, others);
            if (!differ.empty())
                c.notes.push_back(fmt::format("{} {} than {} ({}, {}'s first): {}", c.groups[g].name, note.differs,
                                              c.baseline, fmt::join(differ, ", "), c.baseline, note.meaning));
        }
    }
}

// A note for each isolated position a group tracks: its mass counts the isolated row's own weight, all of it on the
// position, which adds 1/n to the mean over the n rows that see it (those from k on, but later isolated rows, which
// see only themselves). From the metrics.h5 files, like the ratios that leave those positions out: a run folder
// without its config.yaml still gets the note.
void isolation_notes(Comparison& c, const std::vector<std::vector<const RunCurves*>>& members) {
    for (size_t g = 0; g < c.groups.size(); g++) {
        const auto said = std::find_if(members[g].begin(), members[g].end(),
                                       [](const RunCurves* r) { return r->seq_len > 0; });
        if (said == members[g].end()) continue;
        const RunCurves& r = **said;
        const std::vector<int>& isolated = r.intervention.isolate;
        for (int k : isolated) {
            if (k <= 0 || k >= r.seq_len) continue;
            const auto later = std::count_if(isolated.begin(), isolated.end(),
                                             [&](int j) { return j > k && j < r.seq_len; });
            const int64_t rows = int64_t(r.seq_len) - k - later;
            c.notes.push_back(fmt::format("{}: its tok{} mass counts row {}'s own weight on itself (it is isolated), "
                                          "1/{} = {:.4f} (one of the {} rows that see it) in every layer: take that "
                                          "off to read attention drawn to token {}",
                                          c.groups[g].name, k, k, rows, 1.0 / double(rows), rows, k));
        }
    }
}

// Refuses a group whose runs were trained with different configs, or on other tokens, so that no mean over them
// passes for a seed mean; a run whose config.yaml is missing or does not load is left out of the config check with a
// note.
void check_same_config(const std::string& group, const std::vector<const RunCurves*>& runs,
                       std::vector<std::string>& notes) {
    const RunCurves* first = nullptr;
    for (const RunCurves* r : runs) {
        if (!r->config_error.empty() && runs.size() > 1)
            notes.push_back(fmt::format("{}: its config.yaml {}; it is averaged as a seed of variant {} without "
                                        "checking that it was trained alike",
                                        r->dir, r->config_error, group));
        if (!r->config) continue;
        if (!first) {
            first = r;
            continue;
        }
        const std::vector<std::string> differ = config_differences(*first->config, *r->config, kSeedsMayDiffer);
        SL_REQUIRE(differ.empty(),
                   "{} and {} are grouped as seeds of variant {} by their folder names, but their configs differ: "
                   "{}; compare them in separate commands, or give runs of different configs different names "
                   "(<variant>-s<seed>)",
                   first->dir, r->dir, group, fmt::join(differ, ", "));
    }
    for (size_t i = 0; i < runs.size(); i++)  // each pair: a run without checksums is checked against none
        for (size_t j = i + 1; j < runs.size(); j++) {
            SL_REQUIRE(runs[i]->run_id.empty() || runs[i]->run_id != runs[j]->run_id,
                       "{} and {} are grouped as seeds of variant {} by their folder names, but they are one run (the "
                       "same run_id {}: one folder is a copy of the other), which would count twice; compare one of "
                       "them",
                       runs[i]->dir, runs[j]->dir, group, runs[i]->run_id);
            const std::vector<std::string> differ = data_differences(*runs[i], *runs[j]);
            SL_REQUIRE(differ.empty(),
                       "{} and {} are grouped as seeds of variant {} by their folder names, but they ran on other "
                       "data: {} (shards prepared again between the runs?); compare them in separate commands",
                       runs[i]->dir, runs[j]->dir, group, fmt::join(differ, ", "));
        }
}

// For each run, the shortest end of its suite folder's path that no other suite folder shares: "s1" for runs/s1 and
// runs/s2, "runs/s1" and "runs-new/s1" for those two, so that their seeds are never pooled as one variant's.
std::vector<std::string> suite_names(const std::vector<RunCurves>& runs) {
    std::vector<std::vector<std::string>> parts;  // each suite folder's path components, innermost first
    size_t depth = 0;
    for (const RunCurves& r : runs) {
        fs::path folder = fs::absolute(r.dir).lexically_normal();
        if (!folder.has_filename()) folder = folder.parent_path();
        std::vector<std::string> p;
        for (const fs::path& part : folder.parent_path()) p.insert(p.begin(), part.string());
        depth = std::max(depth, p.size());
        parts.push_back(std::move(p));
    }
    std::vector<std::string> names(runs.size());
    for (size_t k = 1; k <= depth; k++) {
        std::map<std::string, std::set<std::vector<std::string>>> folders_of;  // name -> the folders it names
        for (size_t i = 0; i < runs.size(); i++) {
            const size_t n = std::min(k, parts[i].size());
            fs::path name;
            for (size_t j = n; j-- > 0;) name /= parts[i][j];
            names[i] = name.string();
            folders_of[names[i]].insert(parts[i]);
        }
        if (std::all_of(folders_of.begin(), folders_of.end(), [](const auto& f) { return f.second.size() == 1; }))
            break;
    }
    return names;
}

}  // namespace

RunCurves read_run(const std::string& dir) {
    RunCurves r;
    r.dir = dir;
    r.name = folder_name(dir);
    uint64_t seed = 0;
    if (!split_run_name(r.name, r.variant, seed)) r.variant = r.name;
    // A start that replaces the run keeps the old one in .replaced until its first step has run, and one that failed
    // before (on another rank, which ends the job before rank 0 can put the old run back) leaves it there for the
    // next start: the run is what is there. One folder for all its files, and the run folder where the start stands
    // by the time the file opens.
    fs::path from = fs::path(run_entry(dir, "metrics.h5")).parent_path();
    std::optional<RunLogReader> opened;
    try {
        opened.emplace((from / "metrics.h5").string());
    } catch (const Error&) {
        if (from == fs::path(dir)) throw;
        from = dir;
        opened.emplace((from / "metrics.h5").string());
    }
    const RunLogReader& log = *opened;
    read_config_attr(log, r);
    r.positions = read_positions(log);
    r.step = log.read("train", "step").data;
    r.tokens = log.read("train", "tokens").data;
    r.loss = log.read("train", "loss").data;
    if (log.has("val", "loss")) r.val_loss = log.read("val", "loss").data;
    read_sink(log, r);
    read_heavy(log, r);
    if (log.has_attr("data_train_checksum")) r.train_checksum = log.str_attr("data_train_checksum");
    if (log.has_attr("data_val_checksum")) r.val_checksum = log.str_attr("data_val_checksum");
    if (log.has_attr(runlog::kRunIdAttr)) r.run_id = log.str_attr(runlog::kRunIdAttr);
    // A config.yaml that is gone or no longer loads (written by an older sinklab) only leaves this run out of the
    // config check.
    const fs::path cfg = from / "config.yaml";
    if (!fs::exists(cfg)) {
        r.config_error = "is missing";
    } else {
        try {
            r.config = load_config(cfg.string());
            r.max_steps = r.config->train.max_steps;
        } catch (const Error& e) {
            r.config_error = fmt::format("does not load ({})", e.what());
        }
    }
    return r;
}

std::vector<std::string> find_runs(const std::vector<std::string>& args, std::vector<std::string>& notes) {
    std::vector<std::string> runs;
    std::set<fs::path> seen;  // "runs/a", "runs/a/" and "/abs/runs/a" are one run
    auto add = [&](const fs::path& dir) {
        fs::path d = dir.lexically_normal();
        if (!d.has_filename() && d.has_parent_path()) d = d.parent_path();
        if (seen.insert(fs::weakly_canonical(d)).second) runs.push_back(d.string());
    };
    for (const std::string& arg : args) {
        const fs::path p(arg);
        SL_REQUIRE(fs::exists(p), "{}: no such file or folder; give run folders or suite folders (runs/<suite>)", arg);
        if (fs::is_regular_file(p) && p.filename() == "metrics.h5") {
            add(p.parent_path().empty() ? fs::path(".") : p.parent_path());
            continue;
        }
        SL_REQUIRE(fs::is_directory(p), "{}: not a run folder, a suite folder or a metrics.h5 file", arg);
        // A run folder, or one whose run waits in .replaced (a suite folder holds sweep.yaml).
        const bool waiting = !fs::exists(p / "sweep.yaml") && fs::exists(run_entry(arg, "metrics.h5"));
        if (fs::exists(p / "metrics.h5") || waiting) {
            add(p);
            continue;
        }
        std::map<std::string, size_t> order;  // variant -> its place in the suite
        if (fs::exists(p / "sweep.yaml")) {
            try {
                const YAML::Node variants = YAML::LoadFile((p / "sweep.yaml").string())["variants"];
                for (size_t i = 0; variants && i < variants.size(); i++)
                    order.emplace(variants[i].as<std::string>(), i);
            } catch (const YAML::Exception& e) {
                fail("{}: not readable ({}); delete it (sinklab sweep writes it again) or fix it",
                     (p / "sweep.yaml").string(), e.what());
            }
        }
        std::vector<std::tuple<size_t, std::string, uint64_t, fs::path>> found;
        for (const fs::directory_entry& e : fs::directory_iterator(p)) {
            const std::string name = e.path().filename().string();
            // A hidden folder is no run of the suite: the old run that `train --overwrite` sets aside in a run
            // folder (.replaced) while the new one starts, .git, ...
            if (!e.is_directory() || name.starts_with('.')) continue;
            if (!fs::exists(run_entry(e.path().string(), "metrics.h5"))) {
                if (fs::exists(e.path() / "config.yaml"))
                    notes.push_back(fmt::format("{}: no metrics.h5 yet (the run has not started logging); left out",
                                                e.path().string()));
                continue;
            }
            std::string variant = name;
            uint64_t seed = 0;
            split_run_name(name, variant, seed);
            const auto it = order.find(variant);
            found.emplace_back(it == order.end() ? order.size() : it->second, variant, seed, e.path());
        }
        SL_REQUIRE(!found.empty(),
                   "{}: holds no run (no metrics.h5 in it or in its subfolders); give run folders or a "
                   "suite folder",
                   arg);
        std::sort(found.begin(), found.end());
        for (const auto& f : found) add(std::get<3>(f));
    }
    return runs;
}

std::vector<double> trailing_mean(const std::vector<double>& v, int n) {
    SL_ASSERT(n >= 1, "smoothing window {}", n);
    // A step whose loss is not finite (fault.nan_policy: skip went on past it) counts in no window, and the curve
    // is undefined (NaN) at that step itself: a diverged run's final value is NaN, not the mean of what came before.
    std::vector<double> out(v.size());
    double sum = 0;
    size_t finite = 0;
    for (size_t i = 0; i < v.size(); i++) {
        if (std::isfinite(v[i])) sum += v[i], finite++;
        if (i >= size_t(n) && std::isfinite(v[i - size_t(n)])) sum -= v[i - size_t(n)], finite--;
        out[i] = std::isfinite(v[i]) ? sum / double(finite) : NAN;
    }
    return out;
}

double tokens_to_reach(const std::vector<double>& tokens, const std::vector<double>& curve, double target) {
    SL_ASSERT(tokens.size() == curve.size(), "{} tokens for {} points", tokens.size(), curve.size());
    for (size_t i = 0; i < curve.size(); i++) {
        if (!(curve[i] <= target)) continue;
        if (i == 0 || !std::isfinite(curve[i - 1])) return tokens[i];  // nothing to interpolate from
        const double frac = (curve[i - 1] - target) / (curve[i - 1] - curve[i]);
        return tokens[i - 1] + frac * (tokens[i] - tokens[i - 1]);
    }
    return NAN;
}

Stat stat_of(const std::vector<double>& values) {
    Stat s;
    s.of = int(values.size());
    double sum = 0;
    for (double v : values)
        if (std::isfinite(v)) {
            sum += v;
            s.n++;
        }
    if (s.n == 0) return s;
    s.mean = sum / s.n;
    if (s.n < 2) return s;
    double sq = 0;
    for (double v : values)
        if (std::isfinite(v)) sq += (v - s.mean) * (v - s.mean);
    s.sd = std::sqrt(sq / (s.n - 1));
    return s;
}

Comparison compare_runs(const std::vector<RunCurves>& runs, const std::string& baseline, int smooth) {
    SL_REQUIRE(smooth >= 1, "--smooth {}: the window must hold at least 1 logged step", smooth);
    SL_REQUIRE(!runs.empty(), "no runs to compare");
    // Group names; the same run name twice within a variant means several suites: qualify by folder.
    std::map<std::string, std::set<std::string>> names_of;
    bool qualify = false;
    for (const RunCurves& r : runs) qualify |= !names_of[r.variant].insert(r.name).second;
    const std::vector<std::string> suites = qualify ? suite_names(runs) : std::vector<std::string>(runs.size());
    std::vector<std::string> group_of;
    for (size_t i = 0; i < runs.size(); i++)
        group_of.push_back(qualify ? suites[i] + "/" + runs[i].variant : runs[i].variant);

    Comparison c;
    c.smooth = smooth;
    std::vector<std::vector<const RunCurves*>> members;
    for (size_t i = 0; i < runs.size(); i++) {
        auto it =
            std::find_if(c.groups.begin(), c.groups.end(), [&](const GroupRow& g) { return g.name == group_of[i]; });
        if (it == c.groups.end()) {
            c.groups.emplace_back();
            c.groups.back().name = group_of[i];
            members.emplace_back();
            it = c.groups.end() - 1;
        }
        it->runs.push_back(runs[i].name);
        members[size_t(it - c.groups.begin())].push_back(&runs[i]);
    }
    for (size_t g = 0; g < c.groups.size(); g++) check_same_config(c.groups[g].name, members[g], c.notes);
    c.baseline = baseline.empty() ? c.groups.front().name : baseline;
    const auto base =
        std::find_if(c.groups.begin(), c.groups.end(), [&](const GroupRow& g) { return g.name == c.baseline; });
    if (base == c.groups.end()) {
        std::vector<std::string> names;
        for (const GroupRow& g : c.groups) names.push_back(g.name);
        fail("--baseline '{}' is none of the variants compared: {}", baseline, fmt::join(names, ", "));
    }
    validation_notes(c, members, size_t(base - c.groups.begin()));
    training_notes(c, members, size_t(base - c.groups.begin()));
    isolation_notes(c, members);

    // Each run's smoothed train loss and the tokens it takes to reach the target, by group, computed once.
    std::vector<std::vector<std::vector<double>>> smoothed(c.groups.size());
    for (size_t g = 0; g < c.groups.size(); g++)
        for (const RunCurves* r : members[g]) smoothed[g].push_back(trailing_mean(r->loss, smooth));
    const size_t b = size_t(base - c.groups.begin());
    std::vector<double> base_final;
    for (const std::vector<double>& s : smoothed[b])
        if (!s.empty()) base_final.push_back(s.back());
    c.baseline_runs = int(base_final.size());
    c.target_loss = mean(base_final);
    std::vector<std::vector<double>> reach(c.groups.size());
    for (size_t g = 0; g < c.groups.size(); g++)
        for (size_t i = 0; i < members[g].size(); i++)
            reach[g].push_back(std::isfinite(c.target_loss)
                                   ? tokens_to_reach(members[g][i]->tokens, smoothed[g][i], c.target_loss)
                                   : NAN);
    // The baseline's own tokens to the target, by the same crossing rule as every variant: on a flat tail a
    // smoothed curve crosses its final level before the end, and the baseline must not look faster than itself.
    c.baseline_tokens = stat_of(reach[b]).mean;

    std::set<int> positions;
    for (const RunCurves& r : runs) positions.insert(r.positions.begin(), r.positions.end());
    c.positions.assign(positions.begin(), positions.end());

    for (size_t g = 0; g < c.groups.size(); g++) {
        GroupRow& row = c.groups[g];
        std::vector<double> train, val, speed, rate, dom, ratio, att_ratio, rank;
        row.step_min = INT64_MAX;
        for (size_t i = 0; i < members[g].size(); i++) {
            const RunCurves* r = members[g][i];
            const int64_t last = r->step.empty() ? 0 : int64_t(r->step.back());
            row.step_min = std::min(row.step_min, last);
            row.step_max = std::max(row.step_max, last);
            row.max_steps = std::max(row.max_steps, r->max_steps);
            train.push_back(smoothed[g][i].empty() ? NAN : smoothed[g][i].back());
            val.push_back(r->val_loss.empty() ? NAN : r->val_loss.back());
            speed.push_back(c.baseline_tokens / reach[g][i]);
            rate.push_back(mean(r->sink_rate));
            dom.push_back(mean(r->dominance));
            ratio.push_back(mean(r->var_ratio));
            att_ratio.push_back(mean(r->att_ratio));
            rank.push_back(mean(r->effective_rank));
        }
        row.train_loss = stat_of(train);
        row.val_loss = stat_of(val);
        row.tokens_to_target = stat_of(reach[g]);
        row.speedup = stat_of(speed);
        row.sink_rate = stat_of(rate);
        row.dominance = stat_of(dom);
        row.var_ratio = stat_of(ratio);
        row.att_ratio = stat_of(att_ratio);
        row.effective_rank = stat_of(rank);
        for (int p : c.positions) {
            std::vector<double> over_layers;
            for (const RunCurves* r : members[g]) {
                const auto it = r->mass.find(p);
                over_layers.push_back(it == r->mass.end() ? NAN : mean(it->second));
            }
            row.mass[p] = stat_of(over_layers);
            row.mass_by_layer[p] = layer_stats(members[g], [p](const RunCurves& r) {
                const auto it = r.mass.find(p);
                return it == r.mass.end() ? nullptr : &it->second;
            });
        }
        row.var_ratio_by_layer = layer_stats(members[g], [](const RunCurves& r) { return &r.var_ratio; });
        row.att_ratio_by_layer = layer_stats(members[g], [](const RunCurves& r) { return &r.att_ratio; });
    }
    return c;
}

}  // namespace sinklab
