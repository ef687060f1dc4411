#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"

namespace sinklab {

WholeMoments::WholeMoments(int64_t n) : on_host_(true), host_m_(size_t(n)), host_v_(size_t(n)) {
    m = Tensor(host_m_.data(), DType::F32, {n});
    v = Tensor(host_v_.data(), DType::F32, {n});
}

void WholeMoments::broadcast(Backend& backend, Communicator& comm, int root) {
    for (const Tensor& t : {m, v}) {
        if (on_host_) comm.broadcast(t.data, t.bytes(), root);
        else comm.broadcast(backend, t, root);
    }
}

AdamW::AdamW(Model& model, const TrainConfig& train, const PrecisionConfig& precision, uint64_t seed,
             Communicator* shard_over)
    : model_(model), train_(train), stochastic_round_(precision.rounding == "stochastic"), seed_(seed),
      moments_(model.backend()) {
    Backend& be = model_.backend();
    const int64_t n = model_.table().total();
    if (train.shard_optimizer && shard_over && shard_over->world() > 1) comm_ = shard_over;
    bounds_ = shard_bounds(n, comm_ ? comm_->world() : 1);
    const int rank = comm_ ? comm_->rank() : 0;
    lo_ = bounds_[size_t(rank)];
    hi_ = bounds_[size_t(rank) + 1];
    const DType wd = be.wide();
    m_ = moments_.add(wd, {hi_ - lo_});
    v_ = moments_.add(wd, {hi_ - lo_});
}

double AdamW::grad_norm() { return std::sqrt(model_.backend().sum_squares(model_.grads())); }

void AdamW::step(double lr, double grad_scale) {
    Backend& be = model_.backend();
    t_++;
    AdamWStep h;
    h.lr = float(lr);
    h.beta1 = train_.beta1;
    h.beta2 = train_.beta2;
    h.eps = train_.eps;
    h.grad_scale = float(grad_scale);
    h.t = t_;
    h.stochastic_round = stochastic_round_;
    const uint64_t step_seed = splitmix64(seed_ ^ splitmix64(uint64_t(t_)));  // fresh rounding noise every update
    const bool narrow = !model_.master().empty();
    // Each tensor's part in this rank's shard, as flat views (all of every tensor when unsharded).
    for (const ParamInfo& p : model_.table().all()) {
        const int64_t a = std::max(lo_, p.offset), b = std::min(hi_, p.offset + p.numel);
        if (a >= b) continue;
        h.weight_decay = p.decay ? train_.weight_decay : 0.f;
        // The kernel hashes (seed, index) as seed + golden * (index + 1): offsetting the seed by the part's place
        // in the flat buffer gives every weight of the model its own random bits, however the buffer is sharded.
        h.seed = step_seed + 0x9e3779b97f4a7c15ull * uint64_t(a);
        auto part = [&](const Tensor& flat) { return flat.rows(a, b - a); };
        be.adamw(narrow ? part(model_.master()) : Tensor(), part(model_.weights()), m_.rows(a - lo_, b - a),
                 v_.rows(a - lo_, b - a), part(model_.grads()), h);
    }
    if (!comm_) return;
    comm_->all_gather(be, model_.weights(), bounds_);
    if (narrow) comm_->all_gather(be, model_.master(), bounds_);
}

std::unique_ptr<WholeMoments> AdamW::moment_buffers() {
    if (!comm_) return std::make_unique<WholeMoments>(m_, v_);
    return std::make_unique<WholeMoments>(bounds_.back());
}

std::unique_ptr<WholeMoments> AdamW::gather_moments() {
    auto whole = moment_buffers();
    if (!comm_) return whole;
    Backend& be = model_.backend();
    for (auto [host, shard] : {std::pair{whole->m, m_}, std::pair{whole->v, v_}}) {
        be.read(static_cast<float*>(host.data) + lo_, DType::F32, shard);
        comm_->all_gather(host.data, sizeof(float), bounds_);
    }
    return whole;
}

void AdamW::keep_shard(const WholeMoments& whole) {
    if (!comm_) return;
    Backend& be = model_.backend();
    be.write(m_, static_cast<const float*>(whole.m.data) + lo_, DType::F32);
    be.write(v_, static_cast<const float*>(whole.v.data) + lo_, DType::F32);
}

}  // namespace sinklab
