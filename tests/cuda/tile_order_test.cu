// The order in which attention's causal grids take their tiles (kernels/cuda/attention.cuh: tile_shift, tile_grid,
// block_tile): each block of a test kernel records what block_tile gave it, on a GPU and on the emulator (as
// emu.CudaTileOrder.*). The blocks, in the order they start, must be every (tile, head, sequence) once, in groups of
// sequences whose tiles go longest first across the group, and the groups as large as the rule allows. The orders
// and shifts meant are built by sorting and by trying every shift, not by attention.cuh's arithmetic.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <vector>

#include "cuda/cuda_under_test.h"
#include "cuda/device_array.cuh"
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/launch.cuh"

namespace sinklab::test {
namespace {

// out [blocks][3]: rank, head, sequence of block i of the grid's linear order.
__global__ void record_tiles_kernel(int* out, int shift) {
    const cuda::GridTile at = cuda::block_tile(shift);
    const int i = int(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z));
    out[3 * i] = at.rank;
    out[3 * i + 1] = at.head;
    out[3 * i + 2] = at.seq;
}

using Tile = std::array<int, 3>;  // rank (0: the longest tile), head, sequence

// The tiles of the blocks that do not return at once (sequence < B), in the grid's order, and how many do.
std::vector<Tile> recorded(int n, int heads, int B, int shift, int& returning) {
    const dim3 grid = cuda::tile_grid(n, heads, B, shift);
    const size_t blocks = size_t(grid.x) * grid.y * grid.z;
    DeviceArray<int> out(3 * blocks, 0xff);
    CUDA_LAUNCH(record_tiles_kernel, grid, 1, 0, nullptr, out.p, shift);
    std::vector<Tile> all(blocks);
    CUDA_CHECK(cudaMemcpyAsync(all.data(), out.p, 3 * blocks * sizeof(int), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaStreamSynchronize(nullptr));
    std::vector<Tile> kept;
    for (const Tile& t : all)
        if (t[2] < B) kept.push_back(t);
    returning = int(blocks - kept.size());
    return kept;
}

// Sequence b in group b / 2^shift; blocks by group, then rank, then sequence, then head.
std::vector<Tile> meant(int n, int heads, int B, int shift) {
    std::vector<std::array<int, 4>> keys;  // group, rank, sequence, head
    for (int b = 0; b < B; b++)
        for (int h = 0; h < heads; h++)
            for (int rank = 0; rank < n; rank++) keys.push_back({b >> shift, rank, b, h});
    std::sort(keys.begin(), keys.end());
    std::vector<Tile> order;
    for (const auto& [group, rank, b, h] : keys) order.push_back({rank, h, b});
    return order;
}

TEST(CudaTileOrder, GroupsOfSequencesTakeTheirLongestTilesFirst) {
    if (!cuda_under_test()) GTEST_SKIP() << "no CUDA device";
    struct Case {
        int n, heads, B, shift;
    };
    for (const Case c : {Case{8, 4, 5, 1}, {8, 4, 5, 2}, {8, 4, 5, 0}, {5, 3, 8, 3}, {1, 3, 6, 2}, {6, 1, 7, 1}}) {
        int returning = -1;
        EXPECT_EQ(recorded(c.n, c.heads, c.B, c.shift, returning), meant(c.n, c.heads, c.B, c.shift))
            << c.n << " tiles x " << c.heads << " heads x " << c.B << " sequences, shift " << c.shift;
        const int groups = (c.B + (1 << c.shift) - 1) >> c.shift;
        EXPECT_EQ(returning, ((groups << c.shift) - c.B) * c.heads * c.n) << "the last group's blocks past B";
    }
}

// The largest shift whose group's pairs fit kTileGroupBytes, has no more sequences than B and a grid y within CUDA's
// limit; 0 where none does.
TEST(CudaTileOrder, GroupsAreAsLargeAsTheirTilesAndTheGridAllow) {
    struct Case {
        int n, heads, B;
        int64_t pair_bytes;
    };
    const int64_t budget = cuda::kTileGroupBytes;
    for (const Case c : {Case{32, 12, 12, int64_t(1) << 20}, {8, 12, 48, int64_t(256) << 10}, {64, 12, 12, 1 << 20},
                         {16, 12, 48, 1 << 18}, {4, 2, 1000, 1024}, {20000, 1, 64, 64}, {8, 4, 5, 2 * budget},
                         {8, 4, 3, 1}}) {
        int want = 0;
        for (int s = 0; s < 30; s++)
            if ((int64_t(1) << s) * c.heads * c.pair_bytes <= budget && (1 << s) <= c.B &&
                int64_t(c.n) * (1 << s) <= 65535)
                want = s;
        EXPECT_EQ(cuda::tile_shift(c.n, c.heads, c.B, c.pair_bytes), want)
            << c.n << " tiles x " << c.heads << " heads x " << c.B << " sequences of " << c.pair_bytes << " bytes";
    }
}

}  // namespace
}  // namespace sinklab::test
