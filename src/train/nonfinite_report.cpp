#include "train/nonfinite_report.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file_writer.h"

namespace sinklab {

std::string write_nonfinite_report(const std::string& run_dir, const NonFiniteStep& s, Model& model) {
    nlohmann::ordered_json params = nlohmann::ordered_json::array();
    std::vector<double> g;
    for (const ParamInfo& p : model.table().all()) {
        g.resize(size_t(p.numel));
        model.backend().read(g.data(), DType::F64, ParamTable::view(p, model.grads()));
        int64_t nan = 0, inf = 0;
        double finite_sq = 0;
        for (double v : g) {
            if (std::isnan(v)) nan++;
            else if (std::isinf(v)) inf++;
            else finite_sq += v * v;
        }
        if (nan + inf > 0)
            params.push_back({{"name", p.name}, {"nan", nan}, {"inf", inf}, {"finite_norm", std::sqrt(finite_sq)}});
    }
    // JSON has no NaN or Inf: those become the strings "nan", "inf".
    auto number = [](double v) {
        return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(fmt::format("{}", v));
    };
    const nlohmann::ordered_json report = {
        {"step", s.step},
        {"loss", number(s.loss)},
        {"grad_norm", number(s.grad_norm)},
        {"lr", s.lr},
        {"data", {{"epoch", s.data.epoch}, {"cursor", s.data.cursor}}},
        {"last_checkpoint", s.last_checkpoint},
        {"nonfinite_gradients", params}};
    const std::string path =
        (std::filesystem::path(run_dir) / fmt::format("nonfinite_step_{:08d}.json", s.step)).string();
    write_file_durably(path, report.dump(2) + "\n");
    return path;
}

}  // namespace sinklab
