#include "train/fault_inject.h"

#include <algorithm>
#include <csignal>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string_view>
#include <thread>

#include "core/rng.h"

namespace sinklab {

namespace {

constexpr const char* kVariable = "SINKLAB_FAULT_INJECT";
constexpr std::string_view kKinds[] = {"throw", "kill", "signal", "spike", "nan", "desync", "setup", "stop", "hang"};

int64_t parse_int(const std::string& text, const std::string& item) {
    char* end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    SL_REQUIRE(!text.empty() && *end == '\0' && v >= 0, "{}: '{}' in '{}' is not a number", kVariable, text, item);
    return v;
}

}  // namespace

FaultInjection FaultInjection::from_env(int rank) {
    FaultInjection f;
    const char* value = std::getenv(kVariable);
    if (!value) return f;
    std::stringstream items(value);
    for (std::string item; std::getline(items, item, ',');) {
        if (item.starts_with("slow=")) {
            f.slow_s_ = std::atof(item.c_str() + 5);
            continue;
        }
        const size_t at = item.find('@');
        SL_REQUIRE(at != std::string::npos, "{}: '{}' is not KIND@STEP[:RANK] or slow=SECONDS", kVariable, item);
        Fault fault{item.substr(0, at), 0};
        SL_REQUIRE(std::find(std::begin(kKinds), std::end(kKinds), fault.kind) != std::end(kKinds),
                   "{}: unknown fault '{}' in '{}'", kVariable, fault.kind, item);
        const std::string rest = item.substr(at + 1);
        const size_t colon = rest.find(':');
        fault.step = parse_int(rest.substr(0, colon), item);
        SL_REQUIRE(fault.kind != "setup" || fault.step == 0, "{}: '{}': setup comes before step 1; write setup@0",
                   kVariable, item);
        if (colon != std::string::npos && parse_int(rest.substr(colon + 1), item) != rank) continue;
        f.faults_.push_back(fault);
    }
    return f;
}

bool FaultInjection::at(const char* kind, int64_t step) const {
    for (const Fault& f : faults_)
        if (f.step == step && f.kind == kind) return true;
    return false;
}

void FaultInjection::before_step(int64_t step) const {
    if (slow_s_ > 0) std::this_thread::sleep_for(std::chrono::duration<double>(slow_s_));
    SL_REQUIRE(!at("throw", step), "injected failure at step {} ({})", step, kVariable);
    if (at("kill", step)) std::raise(SIGKILL);
    if (at("signal", step)) std::raise(SIGTERM);
    if (at("stop", step)) std::raise(SIGSTOP);
    while (at("hang", step)) std::this_thread::sleep_for(std::chrono::hours(1));
}

void FaultInjection::after_setup() const {
    SL_REQUIRE(!at("setup", 0), "injected failure at the end of setup ({})", kVariable);
}

void FaultInjection::on_targets(int64_t step, int32_t* targets, size_t n, int vocab_size) const {
    if (!at("spike", step)) return;
    Rng rng(uint64_t(step), 0x5b1ce);
    for (size_t i = 0; i < n; i++) targets[i] = int32_t(rng.below(uint64_t(vocab_size)));
}

void FaultInjection::after_backward(int64_t step, Model& model) const {
    if (at("nan", step)) model.backend().scale(model.grads(), std::nanf(""));
}

void FaultInjection::after_update(int64_t step, Model& model) const {
    if (!at("desync", step)) return;
    model.backend().scale(ParamTable::view(model.table().get("norm_f"), model.truth()), 1.001f);
    model.sync_weights();
}

}  // namespace sinklab
