// Checkpoints: everything a run needs to continue exactly where it stopped, written atomically.
//
// Layout: <run folder>/checkpoints/step_00001000/ (the step zero-padded to 8 digits):
//   model.safetensors      the weights in fp32 (the model's master copy), one tensor per parameter under its
//                          parameter-table name and shape: wte [V, C], norm_f [C], and per block l
//                          layers.l.attn_norm [C], layers.l.wqkv [(H + 2 Hkv) hd, C] (rows: the H query heads,
//                          then the Hkv key heads, then the Hkv value heads, each hd rows; RoPE rotates the
//                          interleaved channel pairs (2i, 2i+1) of q and k), layers.l.wo [C, H hd],
//                          layers.l.ffn_norm [C], layers.l.w13 [2F, C] (rows: w1, the SiLU gate, then w3, the
//                          up projection), layers.l.w2 [C, F], and where the variant has them layers.l.q_norm
//                          [hd], layers.l.k_norm [hd], layers.l.sink [H], layers.l.headnorm [H, hd] or [hd],
//                          layers.l.wgate [H hd or H, C]. Every matrix is [out, in]: y = x W^T. The embedding is
//                          tied (the LM head is wte). __metadata__: format "pt", sinklab_version, step and
//                          config_yaml (the resolved config).
//   optimizer.safetensors  AdamW's moments in fp32: exp_avg.<name> (m) and exp_avg_sq.<name> (v) per parameter.
//   config.yaml            the resolved config of the run at this step.
//   state.json             step, AdamW's update count, the training data position (epoch, window cursor), the
//                          run-log step, the world size, the config hash, the fault guard (loss window, skip
//                          counts), and the size and Checksum64 of each file above. Nothing else is random: init
//                          and data order are functions of run.seed.
// A checkpoint is written into .step_00001000.tmp/ (every file fsynced), which is renamed to its final name
// (and the checkpoints folder fsynced) only when complete: a folder named step_* is a complete checkpoint, and
// a kill or a full disk at any moment leaves the older checkpoints as they were. Then all but the
// checkpoint.keep newest are removed. Reading verifies every file's size and checksum and refuses, naming the
// file, a checkpoint that does not match (it never falls back silently to an older one).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "data/dataloader.h"
#include "model/model.h"
#include "train/optimizer.h"
#include "train/update_guard.h"

namespace sinklab {

// What a checkpoint holds besides the tensors.
struct TrainState {
    int64_t step = 0;             // optimizer steps done
    int64_t tokens = 0;           // training tokens through `step` (the tokens per step change with the ranks);
                                  // -1 when read from a checkpoint of a sinklab that did not record them
    int64_t run_log_step = 0;     // metrics.h5 holds the rows through this step (synced before writing)
    std::string run_id;           // run_identity of that metrics.h5; empty: not recorded
    int64_t optimizer_steps = 0;  // AdamW's update count (steps minus skipped updates)
    LoaderPosition train_data;    // where the next training batch starts
    int64_t data_tokens = -1;     // tokens in data.train's shards, whose windows train_data counts; -1: not recorded
    std::string data_checksum;    // DataLoader::fingerprint of those shards; empty: not recorded
    int64_t val_tokens = -1;      // the same of data.val's shards; -1 and empty: no data.val, or not recorded
    std::string val_checksum;
    int world_size = 1;
    // Validation read the same windows on any number of ranks; false for a checkpoint of a sinklab before 2026-12,
    // whose ranks each read metrics.val_batches micro-batches of their own.
    bool shared_validation = true;
    uint64_t config_hash = 0;
    GuardState guard;
};

// The state as the JSON of state.json (without the file list and checksum), and back; `origin` names it in errors.
// decode_state checks the fields against the file's state_checksum where it has one.
std::string encode_state(const TrainState& s);
TrainState decode_state(const std::string& json, const std::string& origin);

// Writes the checkpoint of `state` under run_dir/checkpoints and keeps the `keep` newest; returns its folder.
// Only one process of a run may call it (rank 0), with the optimizer's whole moments (AdamW::gather_moments).
// Unfinished .tmp folders of earlier attempts are removed.
std::string write_checkpoint(const std::string& run_dir, const Config& cfg, Model& model,
                             const WholeMoments& moments, const TrainState& state, int keep);

// The step of a complete checkpoint folder's name, exactly as the checkpoint writer makes it ("step_00001000"), or
// nothing for any other name (a copy named by hand, "step_1", or a number of more digits than a step has).
std::optional<int64_t> folder_step(const std::string& name);

// The newest complete checkpoint folder of a run, or "" when it has none; its step, or -1.
std::string latest_checkpoint(const std::string& run_dir);
int64_t latest_checkpoint_step(const std::string& run_dir);
// `checkpoint` when given, else the newest of `run_dir`; a clear error when there is none. A command whose output
// goes into the run folder (`into_run`) is refused a `checkpoint` outside run_dir/checkpoints: what it writes would
// be filed there as that run's.
std::string checkpoint_to_read(const std::string& run_dir, const std::string& checkpoint, bool into_run);
// Runs `read`, which reads the checkpoint `ckpt`. A training run still writing the run deletes its older checkpoints
// (checkpoint.keep): an error raised once `ckpt` is gone says so, the reader's own in parentheses (alone it read as
// a damaged checkpoint).
void reading_checkpoint(const std::string& ckpt, const std::function<void()>& read);

// What a checkpoint is read for: a resume of its run, or eval and export (whose errors advise --checkpoint).
enum class CheckpointUse { resume, read };
// Checks every file of a checkpoint folder against the sizes and checksums its state.json recorded; errors
// name the file (and say how to fall back to an older checkpoint).
void verify_checkpoint(const std::string& dir, CheckpointUse use);

// Verifies the checkpoint folder `dir` and loads its weights into model.truth() and its moments into `moments`
// (AdamW::moment_buffers; the caller syncs the compute weights and keeps the optimizer's shard). `cfg` must equal
// the checkpoint's config except for keys that do not change what is computed (threads, max_steps, intervals,
// sharding, ...) and the learning rate and gradient clip; errors name the file or the keys.
TrainState load_checkpoint(const std::string& dir, const Config& cfg, Model& model, WholeMoments& moments);

// Verifies the checkpoint folder `dir` and loads only its weights into model.truth() (for evaluation; the
// model's parameter table must match the checkpoint's); returns the checkpoint's step.
int64_t load_weights(const std::string& dir, Model& model);

// The config a checkpoint folder was written with.
Config checkpoint_config(const std::string& dir, ConfigUse use = ConfigUse::train);
// "key (old -> new)" for each key that `cfg` changes from a checkpoint's config `trained` and load_checkpoint accepts.
std::vector<std::string> resume_changes(const Config& trained, const Config& cfg);

}  // namespace sinklab
