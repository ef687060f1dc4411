// AdamW over the model's flat buffers: one call per parameter tensor (each has its own decay flag),
// global-norm clipping from one reduction over the flat gradient. With train.shard_optimizer (ZeRO-1) each rank
// keeps the moments of one contiguous shard of the flat buffer, updates only that shard's weights, and the ranks
// then gather the weights: the same update as unsharded, with 1/world of the moment memory.
#pragma once
#include <memory>
#include <vector>

#include "dist/comm.h"
#include "model/model.h"

namespace sinklab {

// AdamW's moments laid out like the flat weights, whole (checkpoints read and write them so): views of the
// optimizer's own backend buffers when it holds every parameter's; f32 host buffers when it is sharded, so that a
// checkpoint costs the GPU no memory beyond the shard.
class WholeMoments {
public:
    WholeMoments(Tensor m, Tensor v) : m(m), v(v) {}
    explicit WholeMoments(int64_t n);
    WholeMoments(const WholeMoments&) = delete;
    WholeMoments& operator=(const WholeMoments&) = delete;

    bool on_host() const { return on_host_; }
    // Copies both from rank `root` to every rank of `comm`.
    void broadcast(Backend& backend, Communicator& comm, int root);

    Tensor m, v;  // [n]: the wide dtype in backend memory, or f32 in host memory when on_host()

private:
    bool on_host_ = false;
    std::vector<float> host_m_, host_v_;
};

class AdamW {
public:
    // `shard_over`: the communicator whose ranks share the moments when train.shard_optimizer is on (the one for
    // backend buffers); without it, or on one rank, this rank keeps every moment.
    AdamW(Model& model, const TrainConfig& train, const PrecisionConfig& precision, uint64_t seed,
          Communicator* shard_over = nullptr);

    // Global L2 norm of the gradient buffer (call after the all-reduce).
    double grad_norm();
    // One update with learning rate lr; gradients are first multiplied by grad_scale (clipping). Sharded, every
    // rank must call it: it ends by gathering the weights.
    void step(double lr, double grad_scale);
    int64_t steps_taken() const { return t_; }
    void set_steps_taken(int64_t t) { t_ = t; }
    bool sharded() const { return comm_ != nullptr; }

    // The whole moments for a checkpoint; sharded, every rank must call it (the shards are gathered).
    std::unique_ptr<WholeMoments> gather_moments();
    // Whole-size buffers to load a checkpoint's moments into, then keep_shard() of them.
    std::unique_ptr<WholeMoments> moment_buffers();
    void keep_shard(const WholeMoments& whole);

private:
    Model& model_;
    TrainConfig train_;
    bool stochastic_round_;
    uint64_t seed_;
    Communicator* comm_ = nullptr;  // set when sharded
    std::vector<int64_t> bounds_;   // [world + 1] shard bounds in the flat buffer
    int64_t lo_ = 0, hi_ = 0;       // this rank's shard
    Allocations moments_;
    Tensor m_, v_;                  // [hi - lo], the wide dtype, held by moments_
    int64_t t_ = 0;
};

}  // namespace sinklab
