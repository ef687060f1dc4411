// AdamW over the model's flat buffers: one call per parameter tensor (each has its own decay flag),
// global-norm clipping from one reduction over the flat gradient.
#pragma once
#include "model/model.h"

namespace sinklab {

class AdamW {
public:
    AdamW(Model& model, const TrainConfig& train, const PrecisionConfig& precision, uint64_t seed);
    ~AdamW();

    // Global L2 norm of the gradient buffer (call after the all-reduce).
    double grad_norm();
    // One update with learning rate lr; gradients are first multiplied by grad_scale (clipping).
    void step(double lr, double grad_scale);
    // Moments in the wide dtype, flat, same layout as the weights (checkpoints save them).
    Tensor m() const { return m_; }
    Tensor v() const { return v_; }
    int64_t steps_taken() const { return t_; }
    void set_steps_taken(int64_t t) { t_ = t; }
    size_t state_bytes() const { return m_.bytes() + v_.bytes(); }

private:
    Model& model_;
    TrainConfig train_;
    bool stochastic_round_;
    uint64_t seed_;
    Tensor m_, v_;
    int64_t t_ = 0;
};

}  // namespace sinklab
