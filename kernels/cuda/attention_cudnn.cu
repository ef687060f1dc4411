// Causal softmax attention through cuDNN's fused flash attention (attention.impl: cudnn), so that our kernels are
// measured against NVIDIA's in the same run.
//
// Built directly on the cuDNN 9 backend (graph) API, with no cudnn_frontend: each direction is one operation graph
// of matmuls, pointwise ops and row reductions in the form cuDNN's fused-attention engines recognize (the graph that
// cudnn_frontend's composite SDPA nodes lower to, written out here), planned on first use and cached per shape.
// Every cuDNN status is checked and a failure names the call, cuDNN's reason and our file:line.
//
// Layouts: q, k and v are read in place from the fused qkv [B, T, (H + 2 Hkv) hd] through strides (k also as K^T),
// o and dout are [B, T, H, hd], and the backward writes dq, dk, dv through the same strides into dqkv. The forward's
// Stats output is max_j z_j + log sum_j exp(z_j - max) over the scaled, causally masked scores z of each row, in
// f32: the natural-log row LSE [B, H, T] that our kernels save and the sink metrics read (cuDNN's documentation:
// Stats is the log-sum-exp of the softmax input, f32, [b, h, s_q, 1]).
#include <cudnn.h>

#include <array>
#include <limits>
#include <map>
#include <source_location>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/attention_cudnn.h"
#include "kernels/cuda/cuda_kernels.cuh"

namespace sinklab::cuda {
namespace {

using Loc = std::source_location;

void check_cudnn(cudnnStatus_t st, std::string_view what, const Loc& loc) {
    if (st == CUDNN_STATUS_SUCCESS) return;
    char detail[1024] = "";
    cudnnGetLastErrorString(detail, sizeof(detail));
    fail_internal(loc.file_name(), int(loc.line()),
                  fmt::format("{} failed: {} ({})", what, cudnnGetErrorString(st), detail));
}

}  // namespace
}  // namespace sinklab::cuda

#define CUDNN_CHECK(call) ::sinklab::cuda::check_cudnn((call), #call, ::sinklab::cuda::Loc::current())

namespace sinklab::cuda {
namespace {

using Tdesc = cudnnBackendDescriptor_t;
using Dims = std::array<int64_t, 4>;

constexpr cudnnDataType_t kF32 = CUDNN_DATA_FLOAT, kBF16 = CUDNN_DATA_BFLOAT16;

// An owned backend descriptor. Its calls check every status and name the caller's file:line.
class Desc {
public:
    explicit Desc(cudnnBackendDescriptorType_t type, Loc loc = Loc::current()) {
        check_cudnn(cudnnBackendCreateDescriptor(type, &d_), fmt::format("creating a descriptor of type {}", int(type)),
                    loc);
    }
    Desc(Desc&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
    Desc(const Desc&) = delete;
    Desc& operator=(const Desc&) = delete;
    Desc& operator=(Desc&&) = delete;
    ~Desc() {
        if (d_) cudnnBackendDestroyDescriptor(d_);
    }

    Tdesc get() const { return d_; }

    template <typename V>
    Desc& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, const V* values, int64_t n,
              Loc loc = Loc::current()) {
        check_cudnn(cudnnBackendSetAttribute(d_, name, type, n, values), fmt::format("setting attribute {}", int(name)),
                    loc);
        return *this;
    }
    template <typename V>
    Desc& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, const V& value,
              Loc loc = Loc::current()) {
        return set(name, type, &value, 1, loc);
    }
    void finalize(Loc loc = Loc::current()) {
        check_cudnn(cudnnBackendFinalize(d_), "cudnnBackendFinalize", loc);
    }

private:
    Tdesc d_ = nullptr;
};

// Tensors the caller binds at execution; intermediates get uids from kFirstVirtual on.
enum Uid : int64_t {
    kQ = 1, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV, kScale, kLowest, kOne, kSoftmaxSum, kDQAccum, kFirstVirtual = 100
};

// A planned graph: every descriptor it references (kept alive with it) and the plan to execute.
struct Plan {
    std::vector<Desc> descs;
    Tdesc exec = nullptr;
    int64_t workspace = 0;
};

// One operation graph under construction: its tensors, and its operations in topological order. cuDNN checks each
// operation's shapes when it is finalized; a refusal names the line of the graph that added it.
class GraphBuilder {
public:
    // A tensor bound to memory at execution.
    Tdesc tensor(int64_t uid, cudnnDataType_t type, Dims dims, Dims strides) {
        return make_tensor(uid, type, dims, strides, false, false);
    }
    // An f32 scalar passed by value (a host pointer in the variant pack).
    Tdesc scalar(int64_t uid) { return make_tensor(uid, kF32, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true); }
    // An intermediate that never reaches memory.
    Tdesc virt(cudnnDataType_t type, Dims dims, Dims strides) {
        return make_tensor(next_uid_++, type, dims, strides, true, false);
    }

    // y = mode(x[, b[, t]]), computed in `prec`; axis only for GEN_INDEX.
    void pointwise(cudnnPointwiseMode_t mode, std::initializer_list<Tdesc> in, Tdesc y, cudnnDataType_t prec = kF32,
                   int64_t axis = -1, Loc loc = Loc::current()) {
        SL_ASSERT(in.size() >= 1 && in.size() <= 3, "{} pointwise inputs", in.size());
        Desc& pw = descs_.emplace_back(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
        pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, mode);
        pw.set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, prec);
        if (mode == CUDNN_POINTWISE_GEN_INDEX) pw.set(CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, axis);
        pw.finalize();
        const Tdesc pw_d = pw.get();
        Desc& op = descs_.emplace_back(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
        op.set(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, pw_d);
        const cudnnBackendAttributeName_t ports[3] = {CUDNN_ATTR_OPERATION_POINTWISE_XDESC,
                                                      CUDNN_ATTR_OPERATION_POINTWISE_BDESC,
                                                      CUDNN_ATTR_OPERATION_POINTWISE_TDESC};
        int i = 0;
        for (Tdesc x : in) op.set(ports[i++], CUDNN_TYPE_BACKEND_DESCRIPTOR, x);
        op.set(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, y);
        add_op(op, loc);
    }
    // c = a b over the last two dims, f32 accumulation.
    void matmul(Tdesc a, Tdesc b, Tdesc c, Loc loc = Loc::current()) {
        Desc& mm = descs_.emplace_back(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
        mm.set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, kF32);
        mm.finalize();
        const Tdesc mm_d = mm.get();
        Desc& op = descs_.emplace_back(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
        op.set(CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, a);
        op.set(CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, b);
        op.set(CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, c);
        op.set(CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, mm_d);
        add_op(op, loc);
    }
    // y = reduction of x over the dims where y has extent 1.
    void reduce(cudnnReduceTensorOp_t how, Tdesc x, Tdesc y, Loc loc = Loc::current()) {
        Desc& rd = descs_.emplace_back(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
        rd.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, how);
        rd.set(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, kF32);
        rd.finalize();
        const Tdesc rd_d = rd.get();
        Desc& op = descs_.emplace_back(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
        op.set(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, x);
        op.set(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, y);
        op.set(CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, rd_d);
        add_op(op, loc);
    }
    // y = x seen through y's dims and strides (a transpose, here).
    void reshape(Tdesc x, Tdesc y, Loc loc = Loc::current()) {
        Desc& op = descs_.emplace_back(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
        op.set(CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, x);
        op.set(CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, y);
        add_op(op, loc);
    }

    // The causal mask: x where row >= column, else the lowest float (exp gives 0 there).
    Tdesc causal(Tdesc x, Tdesc lowest, Dims dims, Dims strides) {
        Tdesc row = virt(CUDNN_DATA_INT32, dims, strides), col = virt(CUDNN_DATA_INT32, dims, strides);
        pointwise(CUDNN_POINTWISE_GEN_INDEX, {x}, row, kF32, 2);
        pointwise(CUDNN_POINTWISE_GEN_INDEX, {x}, col, kF32, 3);
        Tdesc keep = virt(CUDNN_DATA_BOOLEAN, dims, strides);
        pointwise(CUDNN_POINTWISE_CMP_GE, {row, col}, keep, CUDNN_DATA_BOOLEAN);
        Tdesc y = virt(kF32, dims, strides);
        pointwise(CUDNN_POINTWISE_BINARY_SELECT, {x, lowest, keep}, y);
        return y;
    }

    // Plans the graph on the first engine, in the order cuDNN's heuristics rank them, that accepts it.
    Plan plan(cudnnHandle_t h, const std::string& what) && {
        Plan p;
        p.descs = std::move(descs_);
        Desc& graph = p.descs.emplace_back(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
        graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ops_.data(), int64_t(ops_.size()));
        graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, h);
        graph.finalize();
        const Tdesc graph_d = graph.get();
        std::string refusals;
        for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
            Desc& heur = p.descs.emplace_back(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
            heur.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, graph_d);
            heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, mode);
            if (!accepted(cudnnBackendFinalize(heur.get()), fmt::format("heuristics mode {}", int(mode)), refusals))
                continue;
            const Tdesc heur_d = heur.get();
            int64_t n = 0;
            CUDNN_CHECK(cudnnBackendGetAttribute(heur_d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                                 0, &n, nullptr));
            // The results are written into engine-config descriptors that must exist beforehand.
            std::vector<Tdesc> cfgs;
            for (int64_t i = 0; i < n; i++)
                cfgs.push_back(p.descs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR).get());
            int64_t got = 0;
            CUDNN_CHECK(cudnnBackendGetAttribute(heur_d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                                 n, &got, cfgs.data()));
            for (int64_t i = 0; i < got; i++) {
                Desc& plan = p.descs.emplace_back(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
                plan.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, h);
                plan.set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, cfgs[size_t(i)]);
                if (!accepted(cudnnBackendFinalize(plan.get()), fmt::format("engine config {}", i), refusals)) continue;
                p.exec = plan.get();
                int64_t count = 0;
                CUDNN_CHECK(cudnnBackendGetAttribute(p.exec, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                                     CUDNN_TYPE_INT64, 1, &count, &p.workspace));
                return p;
            }
        }
        fail("cuDNN {} has no fused-attention engine for {} ({}); use attention.impl: sinklab", cudnnGetVersion(),
             what, refusals.empty() ? "its heuristics offered none" : refusals);
    }

private:
    Tdesc make_tensor(int64_t uid, cudnnDataType_t type, Dims dims, Dims strides, bool is_virtual, bool by_value) {
        Desc& t = descs_.emplace_back(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
        t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, type);
        t.set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, dims.data(), 4);
        t.set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, strides.data(), 4);
        t.set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, uid);
        t.set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, int64_t(16));
        t.set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, is_virtual);
        if (by_value) t.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, true);
        t.finalize();
        return t.get();
    }
    void add_op(Desc& op, const Loc& loc) {
        op.finalize(loc);
        ops_.push_back(op.get());
    }
    // Records why cuDNN refused a step; true when it did not.
    static bool accepted(cudnnStatus_t st, const std::string& step, std::string& refusals) {
        if (st == CUDNN_STATUS_SUCCESS) return true;
        char detail[512] = "";
        cudnnGetLastErrorString(detail, sizeof(detail));
        if (!refusals.empty()) refusals += "; ";
        refusals += fmt::format("{}: {} {}", step, cudnnGetErrorString(st), detail);
        return false;
    }

    std::vector<Desc> descs_;  // grows only; descriptors are handles, so moving them keeps every Tdesc valid
    std::vector<Tdesc> ops_;
    int64_t next_uid_ = kFirstVirtual;
};

// The shapes of one spec, in cuDNN's [b, h, s, d] order over our memory.
struct Shapes {
    int64_t B, T, H, G, D, W;
    Dims q, q_st;     // q (and dq) inside qkv, k and v likewise with G heads
    Dims kv, kv_st;
    Dims kvT, kvT_st; // k or v as [b, g, d, s]
    Dims o, o_st;     // o, dout: [B, T, H, hd]
    Dims row, row_st; // lse and other per-row values [B, H, T, 1]
    Dims sq, sq_st;   // scores [B, H, T, T]
    Dims sqT_st;      // scores read transposed
    Dims hd_st;       // a packed [B, H, T, hd] intermediate

    explicit Shapes(const AttnSpec& s)
        : B(s.B), T(s.T), H(s.H), G(s.Hkv), D(s.hd), W(s.qkv_width()),
          q{B, H, T, D}, q_st{T * W, D, W, 1},
          kv{B, G, T, D}, kv_st{T * W, D, W, 1},
          kvT{B, G, D, T}, kvT_st{T * W, D, 1, W},
          o{B, H, T, D}, o_st{T * H * D, D, H * D, 1},
          row{B, H, T, 1}, row_st{H * T, T, 1, 1},
          sq{B, H, T, T}, sq_st{H * T * T, T * T, T, 1},
          sqT_st{H * T * T, T * T, 1, T},
          hd_st{H * T * D, T * D, D, 1} {}
};

std::string describe(const AttnSpec& s, const char* dir) {
    return fmt::format("causal attention {} B={} T={} H={} Hkv={} hd={} bf16", dir, s.B, s.T, s.H, s.Hkv, s.hd);
}

// o = softmax(mask(scale q k^T)) v, Stats = the row LSE.
GraphBuilder fwd_graph(const AttnSpec& spec) {
    const Shapes x(spec);
    GraphBuilder g;
    Tdesc q = g.tensor(kQ, kBF16, x.q, x.q_st), kT = g.tensor(kK, kBF16, x.kvT, x.kvT_st),
          v = g.tensor(kV, kBF16, x.kv, x.kv_st), o = g.tensor(kO, kBF16, x.o, x.o_st),
          stats = g.tensor(kStats, kF32, x.row, x.row_st), scale = g.scalar(kScale), lowest = g.scalar(kLowest);

    Tdesc s0 = g.virt(kF32, x.sq, x.sq_st), s1 = g.virt(kF32, x.sq, x.sq_st);
    g.matmul(q, kT, s0);
    g.pointwise(CUDNN_POINTWISE_MUL, {s0, scale}, s1);
    Tdesc z = g.causal(s1, lowest, x.sq, x.sq_st);

    Tdesc mx = g.virt(kF32, x.row, x.row_st), shifted = g.virt(kF32, x.sq, x.sq_st), e = g.virt(kF32, x.sq, x.sq_st),
          sum = g.virt(kF32, x.row, x.row_st), log_sum = g.virt(kF32, x.row, x.row_st);
    g.reduce(CUDNN_REDUCE_TENSOR_MAX, z, mx);
    g.pointwise(CUDNN_POINTWISE_SUB, {z, mx}, shifted);
    g.pointwise(CUDNN_POINTWISE_EXP, {shifted}, e);
    g.reduce(CUDNN_REDUCE_TENSOR_ADD, e, sum);
    g.pointwise(CUDNN_POINTWISE_LOG, {sum}, log_sum);
    g.pointwise(CUDNN_POINTWISE_ADD, {mx, log_sum}, stats);
    // P enters the second matmul in the storage type, as the fused engines require.
    Tdesc p = g.virt(kBF16, x.sq, x.sq_st);
    g.pointwise(CUDNN_POINTWISE_DIV, {e, sum}, p);
    g.matmul(p, v, o);
    return g;
}

// dq, dk, dv from dout, recomputing P from the saved Stats. Two f32 buffers live in our scratch: the row sums
// dout.o and the dq accumulator, which the engine converts to bf16 at the end.
GraphBuilder bwd_graph(const AttnSpec& spec) {
    const Shapes x(spec);
    GraphBuilder g;
    Tdesc q = g.tensor(kQ, kBF16, x.q, x.q_st), kT = g.tensor(kK, kBF16, x.kvT, x.kvT_st),
          vT = g.tensor(kV, kBF16, x.kvT, x.kvT_st), o = g.tensor(kO, kBF16, x.o, x.o_st),
          dO = g.tensor(kDO, kBF16, x.o, x.o_st), stats = g.tensor(kStats, kF32, x.row, x.row_st),
          dq = g.tensor(kDQ, kBF16, x.q, x.q_st), dk = g.tensor(kDK, kBF16, x.kv, x.kv_st),
          dv = g.tensor(kDV, kBF16, x.kv, x.kv_st), softmax_sum = g.tensor(kSoftmaxSum, kF32, x.row, x.row_st),
          dq_accum = g.tensor(kDQAccum, kF32, x.q, x.hd_st), scale = g.scalar(kScale), lowest = g.scalar(kLowest),
          one = g.scalar(kOne);

    // D = rowsum(dout * o)
    Tdesc prod = g.virt(kF32, x.q, x.hd_st), rowsum = g.virt(kF32, x.row, x.row_st);
    g.pointwise(CUDNN_POINTWISE_MUL, {dO, o}, prod);
    g.reduce(CUDNN_REDUCE_TENSOR_ADD, prod, rowsum);
    g.pointwise(CUDNN_POINTWISE_MUL, {rowsum, one}, softmax_sum);

    // P = exp(mask(scale q k^T) - lse)
    Tdesc s0 = g.virt(kF32, x.sq, x.sq_st), s1 = g.virt(kF32, x.sq, x.sq_st), s2 = g.virt(kF32, x.sq, x.sq_st);
    g.matmul(q, kT, s0);
    g.pointwise(CUDNN_POINTWISE_MUL, {s0, scale}, s1);
    g.pointwise(CUDNN_POINTWISE_SUB, {s1, stats}, s2);
    Tdesc masked = g.causal(s2, lowest, x.sq, x.sq_st);
    Tdesc p = g.virt(kF32, x.sq, x.sq_st);
    g.pointwise(CUDNN_POINTWISE_EXP, {masked}, p);

    // The kv-head gradients: dv = P^T dout and dk = dS^T q over the query heads, summed over each group for GQA.
    auto head_grad = [&](Tdesc lhs_T, Tdesc rhs, Tdesc out) {
        if (x.H == x.G) {
            g.matmul(lhs_T, rhs, out);
        } else {
            Tdesc full = g.virt(kBF16, x.q, x.hd_st);
            g.matmul(lhs_T, rhs, full);
            g.reduce(CUDNN_REDUCE_TENSOR_ADD, full, out);
        }
    };
    Tdesc pT = g.virt(kBF16, x.sq, x.sqT_st);
    g.reshape(p, pT);
    head_grad(pT, dO, dv);

    // dS = scale P (dout v^T - D)
    Tdesc dp = g.virt(kF32, x.sq, x.sq_st), dp1 = g.virt(kF32, x.sq, x.sq_st), ds = g.virt(kF32, x.sq, x.sq_st),
          ds1 = g.virt(kF32, x.sq, x.sq_st);
    g.matmul(dO, vT, dp);
    g.pointwise(CUDNN_POINTWISE_SUB, {dp, softmax_sum}, dp1);
    g.pointwise(CUDNN_POINTWISE_MUL, {dp1, p}, ds);
    g.pointwise(CUDNN_POINTWISE_MUL, {ds, scale}, ds1);
    Tdesc dsT = g.virt(kBF16, x.sq, x.sqT_st);
    g.reshape(ds1, dsT);
    head_grad(dsT, q, dk);

    // dq = dS k, accumulated in f32, then stored.
    Tdesc k = g.virt(kF32, x.kv, x.kv_st);
    g.reshape(kT, k);
    g.matmul(ds1, k, dq_accum);
    g.pointwise(CUDNN_POINTWISE_IDENTITY, {dq_accum}, dq);
    return g;
}

Plan build_fwd(cudnnHandle_t h, const AttnSpec& s) { return fwd_graph(s).plan(h, describe(s, "forward")); }
Plan build_bwd(cudnnHandle_t h, const AttnSpec& s) { return bwd_graph(s).plan(h, describe(s, "backward")); }

void execute(cudnnHandle_t h, const Plan& p, const std::vector<std::pair<int64_t, const void*>>& bindings,
             void* workspace) {
    std::vector<int64_t> uids;
    std::vector<void*> ptrs;
    for (const auto& [uid, ptr] : bindings) {
        uids.push_back(uid);
        ptrs.push_back(const_cast<void*>(ptr));  // cuDNN's variant pack takes void*; inputs are only read
    }
    Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, uids.data(), int64_t(uids.size()));
    pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, ptrs.data(), int64_t(ptrs.size()));
    pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, workspace);
    pack.finalize();
    CUDNN_CHECK(cudnnBackendExecute(h, p.exec, pack.get()));
}

using ShapeKey = std::array<int, 5>;
ShapeKey key_of(const AttnSpec& s) { return {s.B, s.T, s.H, s.Hkv, s.hd}; }

}  // namespace

struct CudnnAttention::Impl {
    cudnnHandle_t handle = nullptr;
    cudaStream_t stream = nullptr;
    std::map<ShapeKey, Plan> fwd, bwd;

    ~Impl() {
        // Plans refer to the handle: they go first. Teardown must not throw, so the status is ignored.
        fwd.clear();
        bwd.clear();
        if (handle) cudnnDestroy(handle);
    }

    using Builder = Plan (*)(cudnnHandle_t, const AttnSpec&);
    const Plan& plan(std::map<ShapeKey, Plan>& cache, const AttnSpec& s, Builder build) {
        SL_REQUIRE(s.hd % 8 == 0 && s.hd <= 128,
                   "attention.impl: cudnn needs head_dim a multiple of 8 and at most 128, not {}; use "
                   "attention.impl: sinklab",
                   s.hd);
        auto it = cache.find(key_of(s));
        if (it == cache.end()) it = cache.emplace(key_of(s), build(handle, s)).first;
        return it->second;
    }
};

CudnnAttention::CudnnAttention(cudaStream_t st) : impl_(std::make_unique<Impl>()) {
    impl_->stream = st;
    CUDNN_CHECK(cudnnCreate(&impl_->handle));
    CUDNN_CHECK(cudnnSetStream(impl_->handle, st));
}

CudnnAttention::~CudnnAttention() = default;

void check_cudnn_attention_graphs(const AttnSpec& s) {
    fwd_graph(s);
    bwd_graph(s);
}

size_t CudnnAttention::fwd_scratch(const AttnSpec& s) {
    return size_t(impl_->plan(impl_->fwd, s, build_fwd).workspace);
}

void CudnnAttention::fwd(bf16* o, float* lse, const bf16* qkv, const AttnSpec& s, Scratch scratch) {
    const Plan& p = impl_->plan(impl_->fwd, s, build_fwd);
    void* workspace = scratch.take(size_t(p.workspace), "cudnn attention fwd");
    const int64_t Hd = int64_t(s.H) * s.hd, Gd = int64_t(s.Hkv) * s.hd;
    const float scale = s.scale, lowest = std::numeric_limits<float>::lowest();
    execute(impl_->handle, p,
            {{kQ, qkv}, {kK, qkv + Hd}, {kV, qkv + Hd + Gd}, {kO, o}, {kStats, lse}, {kScale, &scale},
             {kLowest, &lowest}},
            workspace);
}

size_t CudnnAttention::bwd_scratch(const AttnSpec& s) {
    return CudnnBwdScratch(s, impl_->plan(impl_->bwd, s, build_bwd).workspace).total;
}

void CudnnAttention::bwd(bf16* dqkv, const bf16* dout, const bf16* o, const float* lse, const bf16* qkv,
                         const AttnSpec& s, Scratch scratch) {
    const Plan& p = impl_->plan(impl_->bwd, s, build_bwd);
    const CudnnBwdScratch at(s, p.workspace);
    char* base = scratch.take<char>(at.total, "cudnn attention bwd");
    // Before cuDNN 9.6 the engine expected a zeroed dq accumulator; later ones clear it themselves.
    if (cudnnGetVersion() < 90600)
        CUDA_CHECK(cudaMemsetAsync(base + at.dq_accum, 0, at.total - at.dq_accum, impl_->stream));
    const int64_t Hd = int64_t(s.H) * s.hd, Gd = int64_t(s.Hkv) * s.hd;
    const float scale = s.scale, lowest = std::numeric_limits<float>::lowest(), one = 1.f;
    execute(impl_->handle, p,
            {{kQ, qkv}, {kK, qkv + Hd}, {kV, qkv + Hd + Gd}, {kO, o}, {kDO, dout}, {kStats, lse}, {kDQ, dqkv},
             {kDK, dqkv + Hd}, {kDV, dqkv + Hd + Gd}, {kSoftmaxSum, base + at.softmax_sum},
             {kDQAccum, base + at.dq_accum}, {kScale, &scale}, {kLowest, &lowest}, {kOne, &one}},
            base);
}

}  // namespace sinklab::cuda
