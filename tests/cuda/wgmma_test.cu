// The two wgmma forms of the attention kernels (wgmma_products.cuh) against float64 products, on an sm_90 GPU and
// on the emulator (as emu.CudaWgmma.*). The emulator reads matrix descriptors as the PTX ISA lays them out; this is
// where the hardware says whether it agrees. Besides random operands, each of six runs makes one operand's
// elements equal to their row or their column index (exact in bf16) and the other two identities, so that a wrong
// element names what the hardware read: in the run "B = its row index", S[m][n] holds the row of B it paired with
// column n of S. The failure lines of those runs are the map to fix the descriptors or the fragment layouts by.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cuda/wgmma_products.cuh"
#include "test_util.h"

namespace sinklab::test {
namespace {

using cuda::bf16;
using Matrix = std::vector<bf16>;  // [64][64] row-major

// Empty when the wgmma kernels can run here, else why not.
std::string wgmma_unavailable() {
#if defined(SINKLAB_EMU)
    return "";
#elif !defined(SINKLAB_WGMMA)
    return "built without sm_90a code (SINKLAB_CUDA_ARCH lacks 90a)";
#else
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) return "no CUDA device";
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    if (prop.major != 9 || prop.minor != 0)
        return "wgmma needs an sm_90 device; device 0 is sm_" + std::to_string(prop.major * 10 + prop.minor);
    return "";
#endif
}

Matrix matrix(double (*f)(int r, int c)) {
    Matrix m(64 * 64);
    for (int r = 0; r < 64; r++)
        for (int c = 0; c < 64; c++) m[r * 64 + c] = __float2bfloat16_rn(float(f(r, c)));
    return m;
}
double identity(int r, int c) { return r == c; }
double row_index(int r, int) { return r; }
double column_index(int, int c) { return c; }
double f64(bf16 x) { return double(__bfloat162float(x)); }

// Up to 4 failures per product, so that a wrong layout shows its pattern without flooding the log.
void expect_products(const std::string& run, const Matrix& A, const Matrix& B, const Matrix& V, double tol) {
    const WgmmaProducts got = run_wgmma_products(A, B, V);
    int wrong_s = 0, wrong_o = 0;
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 64; j++) {
            double s = 0, o = 0;  // O from the S the GPU computed, so that O judges the second product alone
            for (int k = 0; k < 64; k++) {
                s += f64(A[i * 64 + k]) * f64(B[j * 64 + k]);
                o += f64(__float2bfloat16_rn(got.S[i * 64 + k])) * f64(V[k * 64 + j]);
            }
            const float gs = got.S[i * 64 + j], go = got.O[i * 64 + j];
            if (!(std::fabs(gs - s) <= tol) && wrong_s++ < 4)
                ADD_FAILURE() << run << ": S[" << i << "][" << j << "] = " << gs << ", expected " << s;
            if (!(std::fabs(go - o) <= 10 * tol) && wrong_o++ < 4)
                ADD_FAILURE() << run << ": O[" << i << "][" << j << "] = " << go << ", expected " << o;
        }
    if (wrong_s > 4 || wrong_o > 4)
        ADD_FAILURE() << run << ": " << wrong_s << " elements of S and " << wrong_o << " of O wrong in all";
}

TEST(CudaWgmma, ComputesBothOperandFormsOfRandomTiles) {
    if (const std::string why = wgmma_unavailable(); !why.empty()) GTEST_SKIP() << why;
    Rng rng(5);
    Matrix A(64 * 64), B(64 * 64), V(64 * 64);
    for (Matrix* m : {&A, &B, &V})
        for (bf16& x : *m) x = __float2bfloat16_rn(float(rng.uniform()));
    expect_products("random tiles", A, B, V, 1e-4);
}

TEST(CudaWgmma, ReadsEachOperandWhereTheLayoutPutsIt) {
    if (const std::string why = wgmma_unavailable(); !why.empty()) GTEST_SKIP() << why;
    const Matrix I = matrix(identity), rows = matrix(row_index), columns = matrix(column_index);
    // A by its rows and columns (through S = A I^T = A), B likewise (S = I B^T = B^T), then the register operand
    // bf16(S) (O = S I), which the first four runs also check, and V (O = I V = V).
    expect_products("A = its row index, B = V = I", rows, I, I, 0);
    expect_products("A = its column index, B = V = I", columns, I, I, 0);
    expect_products("B = its row index, A = V = I", I, rows, I, 0);
    expect_products("B = its column index, A = V = I", I, columns, I, 0);
    expect_products("V = its row index, A = B = I", I, I, rows, 0);
    expect_products("V = its column index, A = B = I", I, I, columns, 0);
}

}  // namespace
}  // namespace sinklab::test
