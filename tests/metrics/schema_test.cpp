// run_log_groups against the table of DESIGN.md "HDF5 run log (metrics.h5)", copied here by hand, and the columns
// README adds to it. Unmarked: the columns of the first run logs a resume can continue (those of the first sinklab
// that wrote checkpoints, /train/skipped included); each column added since is marked `added`, so that a --resume of
// a run logged before it adds the column (unmarked, the resume is refused: the column is missing). A new column goes
// in here marked so.
#include <gtest/gtest.h>

#include <map>

#include "metrics/schema.h"

namespace sinklab {
namespace {

TEST(RunLogSchema, MatchesDesign) {
    const int L = 3, H = 5, P = 2, Tp = 7;
    struct Want {
        std::vector<int64_t> row;
        bool integer;
        bool added = false;
    };
    const std::vector<std::pair<std::string, std::vector<std::pair<std::string, Want>>>> design{
        {"train",
         {{"step", {{}, true}},
          {"tokens", {{}, true}},
          {"loss", {{}, false}},
          {"lr", {{}, false}},
          {"grad_norm", {{}, false}},
          {"step_time_s", {{}, false}},
          {"tokens_per_s", {{}, false}},
          {"mfu", {{}, false}},
          {"skipped", {{}, true}}}},
        {"val", {{"step", {{}, true}}, {"loss", {{}, false}}}},
        {"sink",
         {{"step", {{}, true}},
          {"attn_mass", {{L, H, P}, false}},
          {"sink_rate", {{L}, false}},
          {"wo_input_std", {{L, Tp}, false}},
          // Beyond DESIGN.md's table: the same std before HeadNorm (README, "Sink metrics").
          {"attn_out_std", {{L, Tp}, false, true}},
          {"dominance", {{L}, false}},
          {"massive", {{L}, false}},
          {"token0_norm_ratio", {{L}, false}},
          {"ffn_max_act", {{L, 2}, false}},
          {"ffn_top_channel", {{L}, true}}}},  // a channel index: integer
        {"heavy",
         {{"step", {{}, true}},
          {"effective_rank", {{L}, false}},
          {"attn_map", {{L, 64, 64}, false}},
          // Beyond DESIGN.md's table: the super neurons of REFERENCE.md by their weights (README, "Sink metrics").
          {"ffn_gate_norm", {{L, 2}, false, true}},
          {"ffn_up_norm", {{L, 2}, false, true}},
          {"ffn_top_unit", {{L, 2}, true, true}}}},  // unit indices: integer
    };
    const std::vector<GroupSpec> groups = run_log_groups(L, H, P, Tp);
    ASSERT_EQ(groups.size(), design.size());
    for (size_t g = 0; g < design.size(); g++) {
        EXPECT_EQ(groups[g].name, design[g].first);
        ASSERT_EQ(groups[g].columns.size(), design[g].second.size()) << design[g].first;
        for (size_t c = 0; c < design[g].second.size(); c++) {
            const auto& [name, want] = design[g].second[c];
            EXPECT_EQ(groups[g].columns[c].name, name) << design[g].first;
            EXPECT_EQ(groups[g].columns[c].row_shape, want.row) << design[g].first << "/" << name;
            EXPECT_EQ(groups[g].columns[c].integer, want.integer) << design[g].first << "/" << name;
            EXPECT_EQ(groups[g].columns[c].added, want.added) << design[g].first << "/" << name;
        }
    }
}

}  // namespace
}  // namespace sinklab
