#include "train/checkpoint.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "config/schema.h"
#include "core/check.h"
#include "core/checksum.h"
#include "core/file_writer.h"
#include "core/folder_lock.h"
#include "data/mapped_file.h"
#include "train/run_folder.h"
#include "train/safetensors.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sinklab {

namespace {

constexpr const char* kFormat = "sinklab-checkpoint-1";
constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kConfigFile = "config.yaml";
constexpr const char* kStateFile = "state.json";
constexpr const char* kStepPrefix = "step_";

// Keys a resumed run may change: they change how it runs, not what it computes; and the learning rate, its floor
// and the gradient clip, which only scale or bound the updates from the resumed step on (nothing stored depends on
// them), so that a run that diverged can continue from its last good checkpoint with gentler updates. The global
// batch may change as well: the ranks may (with tokens_per_step 0 they set it), and setting tokens_per_step is how
// a run resumed on other ranks keeps its batch. The data's paths may change (the folder moved): the trainer holds
// the tokens of data.train and data.val to the checkpoint's counts and checksums.
const std::vector<std::string> kResumeMayChange = {
    "run.name",         "run.out_dir",      "run.threads",        "train.max_steps",   "train.log_every",
    "checkpoint.every", "checkpoint.keep",  "metrics.flush_every", "fault.nan_policy", "fault.spike_zscore",
    "fault.check_every", "fault.hang_timeout", "data.missing",     "backend",          "train.shard_optimizer",
    "train.lr",         "train.min_lr",     "train.grad_clip",    "attention.ds_scratch_mib", "train.tokens_per_step",
    "data.train",       "data.val"};

std::string step_folder(int64_t step) { return fmt::format("{}{:08d}", kStepPrefix, step); }

}  // namespace

std::optional<int64_t> folder_step(const std::string& name) {
    const std::string prefix = kStepPrefix;
    constexpr size_t kMostDigits = 18;  // below 2^63
    if (name.size() <= prefix.size() || name.size() > prefix.size() + kMostDigits ||
        name.compare(0, prefix.size(), prefix) != 0)
        return std::nullopt;
    int64_t step = 0;
    for (size_t i = prefix.size(); i < name.size(); i++) {
        if (name[i] < '0' || name[i] > '9') return std::nullopt;
        step = step * 10 + (name[i] - '0');
    }
    if (name != step_folder(step)) return std::nullopt;
    return step;
}

namespace {

// Complete checkpoints of a checkpoints folder, oldest first.
std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& root) {
    std::vector<std::pair<int64_t, fs::path>> found;
    std::error_code ec;
    if (!fs::is_directory(root, ec)) return found;
    for (const auto& entry : fs::directory_iterator(root)) {
        const auto step = folder_step(entry.path().filename().string());
        if (!step) continue;
        // Passed over, it left a resume to go on from an older checkpoint and fail at the step of its name.
        SL_REQUIRE(entry.is_directory(ec), "{} is named like the checkpoint of step {} but is no folder; move it away "
                   "(mv {} {}.bad)",
                   entry.path().string(), *step, entry.path().string(), entry.path().string());
        found.emplace_back(*step, entry.path());
    }
    std::sort(found.begin(), found.end());
    return found;
}

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Writes named tensors of backend memory (or, with `in_host_memory`, f32 host memory) as fp32, staging through
// the host where the backend needs it.
WrittenFile write_tensors(const fs::path& path, Backend& be, const NamedTensors& tensors,
                          const std::vector<std::pair<std::string, std::string>>& metadata,
                          bool in_host_memory = false) {
    std::vector<TensorSpec> specs;
    for (const auto& [name, t] : tensors) specs.push_back({name, "F32", {t.shape.begin(), t.shape.begin() + t.ndim}});
    SafetensorsWriter w(path.string(), specs, metadata);
    std::vector<float> host;
    for (const auto& [name, t] : tensors) {
        if ((in_host_memory || be.host_memory()) && t.dtype == DType::F32) {
            w.write_next(t.data);
            continue;
        }
        host.resize(size_t(t.numel()));
        be.read(host.data(), DType::F32, t);
        w.write_next(host.data());
    }
    return w.finish();
}

// Into backend memory, or with `in_host_memory` into f32 host memory.
// Every tensor of the file must be one of `tensors`: a file with more was written for a larger model (more layers,
// HeadNorm, QK-norm, ...), and loading only some of it would evaluate another model than the one trained.
void load_tensors(const SafetensorsFile& file, Backend& be, const NamedTensors& tensors, bool in_host_memory = false) {
    std::set<std::string> wanted;
    for (const auto& [name, t] : tensors) {
        const StoredTensor& st = file.get(name, "F32", {t.shape.begin(), t.shape.begin() + t.ndim});
        if (in_host_memory) std::memcpy(t.data, st.data, t.bytes());
        else be.write(t, st.data, DType::F32);
        wanted.insert(name);
    }
    for (const StoredTensor& st : file.tensors())
        SL_REQUIRE(wanted.count(st.name), "{} has a tensor {} that this config's model lacks; it was written for "
                   "another model (check the config)", file.path(), st.name);
}

NamedTensors named(const ParamTable& table, const Tensor& flat, const std::string& prefix) {
    NamedTensors out;
    for (const ParamInfo& p : table.all()) out.emplace_back(prefix + p.name, ParamTable::view(p, flat));
    return out;
}

NamedTensors moments(const ParamTable& table, const WholeMoments& whole) {
    auto out = named(table, whole.m, "exp_avg.");
    for (auto& t : named(table, whole.v, "exp_avg_sq.")) out.push_back(std::move(t));
    return out;
}

json file_entry(const WrittenFile& f) { return {{"bytes", f.bytes}, {"checksum", f.checksum}}; }

// A checkpoint folder given as "step_00000100" or "step_00000100/": the folder itself.
fs::path folder_of(const fs::path& dir) { return dir.has_filename() ? dir : dir.parent_path(); }

// How to get past a damaged checkpoint `dir`: the one before it, or when there is none, a new start. A resume
// takes the newest, so this one must go aside; eval and export take --checkpoint (and a new start would delete the
// run they read).
std::string move_aside_hint(const fs::path& dir, CheckpointUse use) {
    const fs::path d = folder_of(dir);
    const std::optional<int64_t> step = folder_step(d.filename().string());
    const auto all = list_checkpoints(d.parent_path());
    const auto older = std::find_if(all.rbegin(), all.rend(), [&](const auto& c) { return step && c.first < *step; });
    if (older != all.rend())
        return use == CheckpointUse::resume
                   ? fmt::format("to resume from the checkpoint before it, move this one aside (mv {} {}.bad)",
                                 dir.string(), dir.string())
                   : fmt::format("read the checkpoint before it with --checkpoint {}", older->second.string());
    return use == CheckpointUse::resume
               ? "there is no older checkpoint to resume from: start the run again with --overwrite, or train under "
                 "another run.name to keep this folder"
               : "the run has no older checkpoint to read instead";
}

// Checks a checkpoint file against the size and checksum its state.json recorded.
void verify_file(const fs::path& dir, const std::string& name, const json& files, CheckpointUse use) {
    const fs::path path = dir / name;
    SL_REQUIRE(files.contains(name), "{}/{} lists no file {}; the checkpoint is damaged; {}", dir.string(), kStateFile,
               name, move_aside_hint(dir, use));
    const uint64_t bytes = files[name].at("bytes").get<uint64_t>();
    const std::string sum = files[name].at("checksum").get<std::string>();
    SL_REQUIRE(fs::is_regular_file(path), "checkpoint file {} is missing; {}", path.string(),
               move_aside_hint(dir, use));
    const MappedFile f(path.string());
    SL_REQUIRE(f.size() == bytes, "checkpoint file {} has {} bytes, the checkpoint recorded {}: it was truncated or "
               "changed; {}", path.string(), f.size(), bytes, move_aside_hint(dir, use));
    Checksum64 c;
    c.update(f.data(), f.size());
    SL_REQUIRE(c.hex() == sum, "checkpoint file {} is corrupt: its checksum is {}, the checkpoint recorded {}; {}",
               path.string(), c.hex(), sum, move_aside_hint(dir, use));
}

// "key (old -> new)" for every key that differs between the configs and that a resume may (`may_change`) or may
// not change.
std::vector<std::string> config_changes(const Config& old, const Config& now, bool may_change) {
    std::vector<std::string> out;
    for (const std::string& key : changed_keys(old, now)) {
        const bool allowed = std::find(kResumeMayChange.begin(), kResumeMayChange.end(), key) != kResumeMayChange.end();
        if (allowed != may_change) continue;
        out.push_back(config::value_change(key, old, now));
    }
    return out;
}

std::string read_text(const fs::path& path) {
    const MappedFile f(path.string());
    return std::string(f.view());
}

// state.json's state_checksum: of the fields the file holds, but the file list and the checksum itself, in a fixed
// form (json sorts the keys), so that it holds for the file whatever encode_state writes in later versions. The
// prefix names the scheme: a checksum without it (one build of 2026-12-01 checksummed its own encoding) is not
// checked.
constexpr std::string_view kStateChecksumScheme = "f1:";
std::string state_checksum(json fields) {
    fields.erase("files");
    fields.erase("state_checksum");
    const std::string text = fields.dump();
    return fmt::format("{}{:016x}", kStateChecksumScheme, checksum64(text.data(), text.size()));
}

}  // namespace

std::string encode_state(const TrainState& s) {
    nlohmann::ordered_json j = {{"format", kFormat},
              {"step", s.step},
              {"tokens", s.tokens},
              {"run_log_step", s.run_log_step},
              {"optimizer_steps", s.optimizer_steps},
              {"train_data",
               {{"epoch", s.train_data.epoch},
                {"cursor", s.train_data.cursor},
                {"tokens", s.data_tokens},
                {"checksum", s.data_checksum}}},
              {"world_size", s.world_size},
              {"validation", s.shared_validation ? "shared" : "per-rank"},
              {"config_hash", fmt::format("{:016x}", s.config_hash)},
              {"guard",
               {{"losses", s.guard.losses},
                {"skipped_nonfinite", s.guard.skipped_nonfinite},
                {"skipped_spike", s.guard.skipped_spike}}}};
    if (s.val_tokens >= 0) j["val_data"] = {{"tokens", s.val_tokens}, {"checksum", s.val_checksum}};
    if (!s.run_id.empty()) j["run_id"] = s.run_id;
    return j.dump(2);
}

TrainState decode_state(const std::string& text, const std::string& origin) {
    TrainState s;
    try {
        const json j = json::parse(text);
        SL_REQUIRE(j.value("format", "") == kFormat, "{}: format '{}' is not {}; this sinklab cannot read it", origin,
                   j.value("format", ""), kFormat);
        // A count of state.json in [lo, hi]; nlohmann would convert a float or a number beyond int64 silently.
        const auto whole = [&](const json& v, const char* key, int64_t lo, int64_t hi) {
            const bool fits = v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX);
            SL_REQUIRE(fits && v.get<int64_t>() >= lo && v.get<int64_t>() <= hi,
                       "{} is not a valid checkpoint state: {} is {}, not a whole number in [{}, {}]", origin, key,
                       v.dump(), lo, hi);
            return v.get<int64_t>();
        };
        constexpr int64_t kMost = INT64_MAX;
        s.step = whole(j.at("step"), "step", 0, kMost);
        s.tokens = j.contains("tokens") ? whole(j.at("tokens"), "tokens", -1, kMost) : -1;  // -1: not recorded
        s.run_log_step = whole(j.at("run_log_step"), "run_log_step", 0, s.step);
        s.optimizer_steps = whole(j.at("optimizer_steps"), "optimizer_steps", 0, kMost);
        s.train_data.epoch = uint64_t(whole(j.at("train_data").at("epoch"), "epoch", 0, kMost));
        s.train_data.cursor = uint64_t(whole(j.at("train_data").at("cursor"), "cursor", 0, kMost));
        const json& data = j.at("train_data");
        s.data_tokens = data.contains("tokens") ? whole(data.at("tokens"), "train_data.tokens", -1, kMost) : -1;
        s.data_checksum = data.value("checksum", "");
        if (j.contains("val_data")) {
            s.val_tokens = whole(j.at("val_data").at("tokens"), "val_data.tokens", 0, kMost);
            s.val_checksum = j.at("val_data").at("checksum").get<std::string>();
        }
        s.run_id = j.value("run_id", "");
        s.world_size = int(whole(j.at("world_size"), "world_size", 1, INT32_MAX));
        s.shared_validation = j.value("validation", "per-rank") == "shared";
        s.config_hash = std::stoull(j.at("config_hash").get<std::string>(), nullptr, 16);
        s.guard.losses = j.at("guard").at("losses").get<std::vector<double>>();
        s.guard.skipped_nonfinite = whole(j.at("guard").at("skipped_nonfinite"), "guard.skipped_nonfinite", 0, kMost);
        s.guard.skipped_spike = whole(j.at("guard").at("skipped_spike"), "guard.skipped_spike", 0, kMost);
        // Each field is checked above on its own; the checksum (written since 2026-12) catches a value changed within
        // its range: a run_log_step that would cut metrics.h5 short, a data cursor, AdamW's step count.
        const std::string recorded = j.value("state_checksum", "");
        SL_REQUIRE(!recorded.starts_with(kStateChecksumScheme) || recorded == state_checksum(j),
                   "{} was changed since it was written: its fields do not match their state_checksum", origin);
    } catch (const json::exception& e) {
        fail("{} is not a valid checkpoint state: {}", origin, config::clipped(e.what(), 240));  // may quote its bytes
    } catch (const std::logic_error& e) {  // stoull
        fail("{} is not a valid checkpoint state: config_hash: {}", origin, e.what());
    }
    return s;
}

std::string write_checkpoint(const std::string& run_dir, const Config& cfg, Model& model,
                             const WholeMoments& whole_moments, const TrainState& state, int keep) {
    const fs::path root = fs::path(run_dir) / "checkpoints";
    const fs::path final_dir = root / step_folder(state.step);
    const fs::path tmp = root / fmt::format(".{}.tmp", step_folder(state.step));
    try {
        std::error_code ec;
        fs::create_directories(root, ec);
        SL_REQUIRE(!ec, "cannot create the checkpoint folder {}: {}", root.string(), ec.message());
        for (const auto& entry : fs::directory_iterator(root)) {  // left by a write that was killed
            const std::string name = entry.path().filename().string();
            if (name.starts_with(".") && name.ends_with(".tmp")) fs::remove_all(entry.path());
        }
        fs::create_directory(tmp, ec);
        SL_REQUIRE(!ec, "cannot create the checkpoint folder {}: {}", tmp.string(), ec.message());

        Backend& be = model.backend();
        const std::string config_yaml = dump_config(cfg);
        json files;
        {
            FileWriter f((tmp / kConfigFile).string());
            f.write(config_yaml.data(), config_yaml.size());
            f.finish();
            files[kConfigFile] = file_entry({f.path(), f.bytes(), f.checksum().hex()});
        }
        files[kModelFile] = file_entry(write_tensors(tmp / kModelFile, be, named(model.table(), model.truth(), ""),
                                                     {{"format", "pt"},
                                                      {"sinklab_version", SINKLAB_VERSION},
                                                      {"step", std::to_string(state.step)},
                                                      {"config_yaml", config_yaml}}));
        files[kOptimizerFile] = file_entry(write_tensors(
            tmp / kOptimizerFile, be, moments(model.table(), whole_moments),
            {{"format", "pt"}, {"optimizer", "adamw"}, {"adamw_steps", std::to_string(state.optimizer_steps)}},
            whole_moments.on_host()));
        auto j = nlohmann::ordered_json::parse(encode_state(state));
        j["state_checksum"] = state_checksum(json::parse(encode_state(state)));
        j["files"] = files;
        write_file_durably((tmp / kStateFile).string(), j.dump(2) + "\n");
        sync_dir(tmp.string());

        fs::rename(tmp, final_dir, ec);
        SL_REQUIRE(!ec, "cannot rename {} to {}: {}", tmp.string(), final_dir.string(), ec.message());
        sync_dir(root.string());
    } catch (const Error& e) {
        std::error_code ignored;
        fs::remove_all(tmp, ignored);
        fail("{}; the checkpoint of step {} was not written; the older checkpoints in {} are kept", e.what(),
             state.step, root.string());
    } catch (const fs::filesystem_error& e) {
        std::error_code ignored;
        fs::remove_all(tmp, ignored);
        fail("cannot write the checkpoint of step {} in {}: {}; the older checkpoints are kept", state.step,
             root.string(), e.what());
    }

    // A checkpoint that cannot be removed only costs disk space: the run goes on. So does one whose folder also holds
    // a file named like a checkpoint, which list_checkpoints refuses: the next start names it.
    std::vector<std::pair<int64_t, fs::path>> all;
    try {
        all = list_checkpoints(root);
    } catch (const Error&) {
    }
    std::error_code ignored;
    for (size_t i = 0; i + size_t(keep) < all.size(); i++) fs::remove_all(all[i].second, ignored);
    return final_dir.string();
}

std::string latest_checkpoint(const std::string& run_dir) {
    const auto all = list_checkpoints(fs::path(run_dir) / "checkpoints");
    return all.empty() ? std::string() : all.back().second.string();
}

int64_t latest_checkpoint_step(const std::string& run_dir) {
    const auto all = list_checkpoints(fs::path(run_dir) / "checkpoints");
    return all.empty() ? -1 : all.back().first;
}

void verify_checkpoint(const std::string& dir_text, CheckpointUse use) {
    const fs::path dir(dir_text);
    const fs::path state_path = dir / kStateFile;
    SL_REQUIRE(fs::is_regular_file(state_path), "checkpoint {} has no {}: it is damaged; {}", dir.string(), kStateFile,
               move_aside_hint(dir, use));
    try {
        const json files = json::parse(read_text(state_path)).at("files");
        for (const char* name : {kConfigFile, kModelFile, kOptimizerFile}) verify_file(dir, name, files, use);
    } catch (const json::exception& e) {
        fail("{} is not a valid checkpoint state ({}): the checkpoint is damaged; {}", state_path.string(), e.what(),
             move_aside_hint(dir, use));
    }
}

namespace {

// A checkpoint's state, which must be the step its folder's name says when the name is a step's: resume and pruning
// go by the names.
TrainState read_state(const fs::path& dir, CheckpointUse use) {
    const fs::path state_path = dir / kStateFile;
    TrainState state;
    try {
        state = decode_state(read_text(state_path), state_path.string());
    } catch (const Error& e) {
        fail("{}; the checkpoint is damaged; {}", e.what(), move_aside_hint(dir, use));
    }
    const std::optional<int64_t> named = folder_step(folder_of(dir).filename().string());
    SL_REQUIRE(!named || *named == state.step,
               "{}: its {} holds step {}, its folder's name another; it was renamed or copied by hand: move it aside "
               "(mv {} {}.bad)",
               dir.string(), kStateFile, state.step, dir.string(), dir.string());
    return state;
}

}  // namespace

Config checkpoint_config(const std::string& dir, ConfigUse use) {
    return load_config((fs::path(dir) / kConfigFile).string(), {}, nullptr, use);
}

std::vector<std::string> resume_changes(const Config& trained, const Config& cfg) {
    return config_changes(trained, cfg, true);
}

TrainState load_checkpoint(const std::string& dir_text, const Config& cfg, Model& model, WholeMoments& whole_moments) {
    const fs::path dir(dir_text);
    verify_checkpoint(dir.string(), CheckpointUse::resume);
    const TrainState state = read_state(dir, CheckpointUse::resume);

    const std::vector<std::string> differ = config_changes(checkpoint_config(dir.string()), cfg, false);
    SL_REQUIRE(differ.empty(), "cannot resume from {}: the config differs from the one it was written with in {}; "
               "resume with the same config, or start a new run (another run.name)",
               dir.string(), fmt::join(differ, ", "));

    Backend& be = model.backend();
    load_tensors(SafetensorsFile((dir / kModelFile).string()), be, named(model.table(), model.truth(), ""));
    load_tensors(SafetensorsFile((dir / kOptimizerFile).string()), be, moments(model.table(), whole_moments),
                 whole_moments.on_host());
    return state;
}

int64_t load_weights(const std::string& dir_text, Model& model) {
    const fs::path dir(dir_text);
    verify_checkpoint(dir.string(), CheckpointUse::read);
    const TrainState state = read_state(dir, CheckpointUse::read);
    load_tensors(SafetensorsFile((dir / kModelFile).string()), model.backend(),
                 named(model.table(), model.truth(), ""));
    return state.step;
}

std::string checkpoint_to_read(const std::string& run_dir, const std::string& checkpoint, bool into_run) {
    const std::string newest = latest_checkpoint(run_dir);
    if (checkpoint.empty()) {
        std::error_code ec;
        SL_REQUIRE(!newest.empty() || !fs::exists(fs::path(run_dir) / "sweep.yaml", ec),
                   "{} is a sweep's suite folder (it holds sweep.yaml): give one of its runs, {}/<variant>-s<seed>",
                   run_dir, run_dir);
        // The old run waits in .replaced while a start that replaces it runs its first step, and after a start that
        // failed on another rank (which ends the job before rank 0 puts it back) until the next start does.
        const std::string aside = (fs::path(run_dir) / kReplacedRun).string();
        if (newest.empty() && !latest_checkpoint(aside).empty()) {
            const std::string starting = folder_lock_holder(run_dir);
            SL_REQUIRE(!starting.empty(),
                       "{} holds no checkpoint of its own now: a start that replaced its run failed before its first "
                       "step (on another rank, say) and left the run in {}; the next start of the run puts it back "
                       "(train it with --resume to continue it), or move the entries of {} back into {} by hand",
                       run_dir, aside, aside, run_dir);
            fail("{} holds no checkpoint of its own now: a start of the run ({}) keeps the old run in {} until its "
                 "first step has run; try again once it has",
                 run_dir, starting, aside);
        }
        SL_REQUIRE(!newest.empty(),
                   "{} holds no checkpoint (checkpoints/step_*); give a run folder whose training wrote one (every "
                   "run writes one at its end), or --checkpoint DIR",
                   run_dir);
        return newest;
    }
    std::error_code ec;
    const std::string example =
        newest.empty() ? (fs::path(run_dir) / "checkpoints" / step_folder(100)).string() : newest;
    SL_REQUIRE(fs::is_directory(checkpoint, ec), "--checkpoint {}: no such folder; give a checkpoint folder, e.g. {}",
               checkpoint, example);
    SL_REQUIRE(fs::is_regular_file(fs::path(checkpoint) / kStateFile, ec),
               "--checkpoint {}: the folder holds no {}, so it is no checkpoint; give a checkpoint folder, e.g. {}",
               checkpoint, kStateFile, example);
    const fs::path parent = fs::canonical(checkpoint, ec).parent_path();
    SL_REQUIRE(!into_run || fs::equivalent(parent, fs::path(run_dir) / "checkpoints", ec),
               "--checkpoint {} is not one of {}'s checkpoints (in {}), and the output would go into that run folder "
               "as its own; give --out elsewhere{}",
               checkpoint, run_dir, (fs::path(run_dir) / "checkpoints").string(),
               parent.filename() == "checkpoints"
                   ? fmt::format(", or the checkpoint's own run folder ({})", parent.parent_path().string())
                   : "");
    return checkpoint;
}

namespace {

// True when a prune may be taking `ckpt` away: a run removes a checkpoint only once a newer one is complete, so
// that a folder without a newer one that lost files is damaged instead. Unknown (a folder that list_checkpoints
// refuses) counts as true.
bool newer_checkpoint_exists(const fs::path& ckpt) {
    const std::optional<int64_t> step = folder_step(ckpt.filename().string());
    try {
        const auto all = list_checkpoints(ckpt.parent_path());
        return !step || std::any_of(all.begin(), all.end(), [&](const auto& c) { return c.first > *step; });
    } catch (const Error&) {
        return true;
    }
}

}  // namespace

void reading_checkpoint(const std::string& ckpt, const std::function<void()>& read) {
    try {
        read();
    } catch (const std::exception& e) {
        std::error_code ec;
        const fs::path folder = folder_of(fs::path(ckpt).lexically_normal());
        if (fs::exists(folder / kStateFile, ec)) throw;
        if (fs::exists(folder, ec) && !newer_checkpoint_exists(folder)) throw;
        fail("checkpoint {} was deleted while it was read: a training run still writing this run keeps only its newest "
             "checkpoints (checkpoint.keep); run the command again, or give --checkpoint one that is kept ({})",
             ckpt, e.what());
    }
}

}  // namespace sinklab
