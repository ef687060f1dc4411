#include "train/optimizer.h"

#include <cmath>

#include "core/rng.h"

namespace sinklab {

AdamW::AdamW(Model& model, const TrainConfig& train, const PrecisionConfig& precision, uint64_t seed)
    : model_(model), train_(train), stochastic_round_(precision.rounding == "stochastic"), seed_(seed) {
    Backend& be = model_.backend();
    const int64_t n = model_.table().total();
    m_ = Tensor(be.alloc(size_t(n) * dtype_size(be.wide())), be.wide(), {n});
    v_ = Tensor(be.alloc(size_t(n) * dtype_size(be.wide())), be.wide(), {n});
}

AdamW::~AdamW() {
    model_.backend().release(m_.data);
    model_.backend().release(v_.data);
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
    for (const ParamInfo& p : model_.table().all()) {
        h.weight_decay = p.decay ? train_.weight_decay : 0.f;
        // The kernel hashes (seed, index within the tensor): offsetting by the tensor's place in the flat
        // buffer gives every weight of the model its own random bits.
        h.seed = step_seed + 0x9e3779b97f4a7c15ull * uint64_t(p.offset);
        const Tensor master = narrow ? ParamTable::view(p, model_.master()) : Tensor();
        be.adamw(master, ParamTable::view(p, model_.weights()), ParamTable::view(p, m_), ParamTable::view(p, v_),
                 ParamTable::view(p, model_.grads()), h);
    }
}

}  // namespace sinklab
