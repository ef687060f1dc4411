// The parameter table: every weight of the model, its shape, where it lives in the one flat buffer, how it
// is initialized and whether AdamW decays it. Names are the checkpoint's tensor names.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/tensor.h"

namespace sinklab {

enum class ParamInit : uint8_t {
    Normal,         // N(0, init_std)
    NormalResidual, // N(0, init_std / sqrt(2 n_layer)): W_O and w2, the residual-stream writers
    Ones,
    Constant,       // `value` (sink logits)
    FirstTokenStd,  // HeadNorm gain from the layer's fresh projection (set by Model::init)
};

struct ParamInfo {
    std::string name;
    std::vector<int64_t> shape;
    int64_t offset = 0;  // elements into the flat buffer
    int64_t numel = 0;
    bool decay = false;
    bool matmul = false;  // a GEMM weight (counts towards FLOPs per token)
    ParamInit init = ParamInit::Normal;
    float value = 0.f;
    int layer = -1;  // -1: not in a block
};

class ParamTable {
public:
    explicit ParamTable(const Config& cfg);

    const std::vector<ParamInfo>& all() const { return params_; }
    const ParamInfo& get(const std::string& name) const;
    const ParamInfo* find(const std::string& name) const;
    int64_t total() const { return total_; }  // flat buffer length (with alignment padding)
    int64_t count() const;                    // real parameters
    // A view of `info` inside a flat buffer of this table's layout (weights or gradients).
    static Tensor view(const ParamInfo& info, const Tensor& flat);

private:
    ParamInfo& add(std::string name, std::vector<int64_t> shape, ParamInit init, bool decay, int layer,
                   float value = 0.f);
    void add_matmul(std::string name, std::vector<int64_t> shape, ParamInit init, int layer);
    std::vector<ParamInfo> params_;
    int64_t total_ = 0;
};

// Names of one block's tensors (so the model and checkpoint code spell them once).
std::string layer_param(int layer, const char* what);

// Splits a flat buffer of n elements into `ranks` contiguous shards (the sharded optimizer's): ranks + 1 bounds
// from 0 to n, each inner bound a multiple of 64 elements (16-byte aligned in every dtype), as even as that allows.
std::vector<int64_t> shard_bounds(int64_t n, int ranks);

}  // namespace sinklab
