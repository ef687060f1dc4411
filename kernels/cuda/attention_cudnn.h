// The host-only entry of attention_cudnn.cu, for code compiled without nvcc (tests). Built only with cuDNN.
#pragma once
#include "backend/backend.h"

namespace sinklab::cuda {

// Builds the forward and backward operation graphs of attention.impl: cudnn for `s` without planning them. cuDNN
// checks the shapes of every operation as it is added, and needs no GPU for that; throws sinklab::Error naming the
// graph line it refused.
void check_cudnn_attention_graphs(const AttnSpec& s);

}  // namespace sinklab::cuda
