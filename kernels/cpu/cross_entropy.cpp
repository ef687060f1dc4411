// Fused softmax cross-entropy: loss and dlogits in one visit of each row of logits.
#include <cmath>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu_kernels.h"

namespace sinklab::cpu {

// loss [N] (the wide dtype); dlogits [N, V] (=, may alias logits, may be null); logits [N, V]; targets [N]
template <typename T>
void cross_entropy(T* loss, T* dlogits, const T* logits, const int32_t* targets, int64_t N, int64_t V,
                   float scale) {
    // Model::forward tells the user of a bad target; this keeps a direct call in bounds, before the parallel loop.
    for (int64_t n = 0; n < N; n++) SL_ASSERT(targets[n] < V, "target {} of row {} outside [0, {})", targets[n], n, V);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const T* l = logits + n * V;
        T* dl = dlogits ? dlogits + n * V : nullptr;
        const int32_t tgt = targets[n];
        if (tgt < 0) {
            loss[n] = 0.f;
            if (dl)
                for (int64_t j = 0; j < V; j++) dl[j] = T(0);
            continue;
        }
        const T mx = max_of(l, V);
        const double lt = double(l[tgt]);  // read before dl, which may alias l, is written
        double sum = 0;
        if (dl) {
            // dl holds exp(l - mx) until the scaling pass below.
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < V; j++) {
                const T e = exp_v(l[j] - mx);
                dl[j] = e;
                sum += double(e);
            }
        } else {
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < V; j++) sum += double(exp_v(l[j] - mx));
        }
        loss[n] = T(std::log(sum) + double(mx) - lt);
        if (dl) {
            const T f = T(double(scale) / sum);
#pragma omp simd
            for (int64_t j = 0; j < V; j++) dl[j] *= f;
            dl[tgt] -= T(scale);
        }
    }
}

#define SL_INSTANTIATE(T) template void cross_entropy<T>(T*, T*, const T*, const int32_t*, int64_t, int64_t, float);
SL_INSTANTIATE(float)
SL_INSTANTIATE(double)
#undef SL_INSTANTIATE

}  // namespace sinklab::cpu
