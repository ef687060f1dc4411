#include "train/suite.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <filesystem>
#include <regex>
#include <set>

#include "config/schema.h"
#include "config/sources.h"
#include "config/suggest.h"
#include "core/check.h"
#include "core/read_file.h"

namespace sinklab {
namespace fs = std::filesystem;
namespace {

const std::regex kRunNamePattern("(.+)-s([0-9]+)");

// Where a node sits in the suite file, for messages: "experiments/x/suite.yaml:12".
struct Where {
    std::string file;
    std::string at(const YAML::Node& node) const {
        return node.Mark().line >= 0 ? fmt::format("{}:{}", file, node.Mark().line + 1) : file;
    }
};

// yaml-cpp keeps every pair of a map but looks keys up to the first: a key written twice must not look set.
// `inside`: the nodes this one is nested in, so that an alias of one of them (a node holding itself) is refused
// rather than followed forever.
void check_unique_keys(const YAML::Node& node, const Where& w, std::vector<YAML::Node>& inside) {
    for (const YAML::Node& outer : inside)
        SL_REQUIRE(!node.is(outer), "{}: an alias (*name) inside the node it names; a suite cannot hold itself",
                   w.at(node));
    inside.push_back(node);
    if (node.IsSequence())
        for (const YAML::Node& item : node) check_unique_keys(item, w, inside);
    if (node.IsMap()) {
        std::set<std::string> seen;
        for (const auto& kv : node) {
            const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
            SL_REQUIRE(key.empty() || seen.insert(key).second, "{}: {}: the key appears twice in one map; keep one",
                       w.at(kv.first), key);
            check_unique_keys(kv.second, w, inside);
        }
    }
    inside.pop_back();
}

// The keys a map may hold; the first unknown one is an error that lists them.
void check_keys(const YAML::Node& map, const std::vector<std::string>& allowed, const std::string& what,
                const Where& w) {
    for (const auto& kv : map) {
        const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
        if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
        fail("{}: unknown key '{}' in {}; it may hold {} (see experiments/README.md)", w.at(kv.first), key, what,
             fmt::join(allowed, ", "));
    }
}

std::string scalar(const YAML::Node& node, const std::string& key, const Where& w) {
    SL_REQUIRE(node.IsScalar() && !node.Scalar().empty(), "{}: {}: expected a text value, got {}", w.at(node), key,
               config::describe(node));
    return node.Scalar();
}

std::string checked_name(const YAML::Node& node, const std::string& key, const Where& w) {
    const std::string name = scalar(node, key, w);
    SL_REQUIRE(config::is_folder_name(name), "{}: {}: '{}' is not a usable folder name; {}", w.at(node), key, name,
               config::kFolderNameRule);
    return name;
}

std::vector<std::string> string_list(const YAML::Node& node, const std::string& key, const Where& w) {
    SL_REQUIRE(node.IsSequence(), "{}: {}: expected a list of text lines, got {}", w.at(node), key,
               config::describe(node));
    std::vector<std::string> out;
    for (const YAML::Node& item : node) out.push_back(scalar(item, key, w));
    return out;
}

// A value as the text of a --set override that reads back to the same YAML: a scalar as it is when it reads
// back unchanged (so that commands stay readable), else double-quoted ("", "null", "*.bin", " x"); lists and
// maps in flow style.
std::string override_text(const YAML::Node& value) {
    if (value.IsScalar()) {
        const std::string& text = value.Scalar();
        try {
            const YAML::Node back = YAML::Load(text);
            if (!text.empty() && text.front() != ' ' && text.back() != ' ' && back.IsScalar() && back.Scalar() == text)
                return text;
        } catch (const YAML::Exception&) {
            // not plain YAML on its own: quoted below
        }
    }
    YAML::Emitter out;
    out << YAML::Flow;
    if (value.IsScalar())
        out << YAML::DoubleQuoted << value.Scalar();
    else
        out << value;
    return out.c_str();
}

// Flattens a set: map (dotted keys or nested sections) into "key.path=value" overrides, checking each key
// against the config schema so that a typo is reported at its line, with suggestions.
void flatten_set(const YAML::Node& map, const std::string& prefix, const std::string& what, bool suite_wide,
                 const Where& w, std::set<std::string>& seen, std::vector<Override>& out) {
    SL_REQUIRE(map.IsMap(), "{}: {}: expected a map of config keys (attention.variant: headnorm), got {}", w.at(map),
               what, config::describe(map));
    for (const auto& kv : map) {
        const std::string key = scalar(kv.first, what, w);
        const std::string path = prefix.empty() ? key : prefix + "." + key;
        const std::string at = w.at(kv.first);
        SL_REQUIRE(path != "run.name" && path != "run.seed",
                   "{}: {}: {} is set by the sweep (each run is <variant>-s<seed> with run.seed = its seed); use the "
                   "suite's name: and seeds: instead",
                   at, what, path);
        SL_REQUIRE(path != "run.out_dir" || suite_wide,
                   "{}: {}: run.out_dir holds every run of the suite; set it in the suite-wide set:, not in a variant",
                   at, what);
        if (config::find_field(path)) {
            SL_REQUIRE(seen.insert(path).second, "{}: {}: {} is set twice; keep one", at, what, path);
            out.push_back({path + "=" + override_text(kv.second), at});
        } else if (config::is_section(path)) {
            flatten_set(kv.second, path, what, suite_wide, w, seen, out);
        } else {
            const std::vector<std::string> close = config::suggest_keys(path);
            fail("{}: {}: unknown config key '{}'; {} Every key is listed in configs/base.yaml", at, what, path,
                 close.empty() ? "no key is close." : fmt::format("did you mean {}?", fmt::join(close, " or ")));
        }
    }
}

std::vector<Override> read_set(const YAML::Node& map, const std::string& what, bool suite_wide, const Where& w) {
    std::set<std::string> seen;
    std::vector<Override> out;
    flatten_set(map, "", what, suite_wide, w, seen, out);
    return out;
}

std::vector<uint64_t> read_seeds(const YAML::Node& node, const Where& w) {
    SL_REQUIRE(node.IsSequence() && node.size() > 0, "{}: seeds: expected a list of integers like [1, 2, 3], got {}",
               w.at(node), config::describe(node));
    std::vector<uint64_t> seeds;
    for (const YAML::Node& item : node) {
        const std::string text = item.IsScalar() ? item.Scalar() : "";
        uint64_t seed = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seed);
        SL_REQUIRE(!text.empty() && ec == std::errc() && end == text.data() + text.size(),
                   "{}: seeds: {} is not a non-negative integer; write seeds: [1, 2, 3]", w.at(item),
                   config::describe(item));
        SL_REQUIRE(std::find(seeds.begin(), seeds.end(), seed) == seeds.end(),
                   "{}: seeds: {} appears twice; each seed runs once per variant", w.at(item), seed);
        seeds.push_back(seed);
    }
    return seeds;
}

SuiteVariant read_variant(const YAML::Node& node, const Where& w) {
    SL_REQUIRE(node.IsMap(),
               "{}: variants: each entry is a map like {{name: headnorm, set: {{attention.variant: "
               "headnorm}}}}, got {}",
               w.at(node), config::describe(node));
    check_keys(node, {"name", "set"}, "a variant", w);
    SL_REQUIRE(node["name"], "{}: variants: an entry has no name:; give it one (its runs are <name>-s<seed>)",
               w.at(node));
    SuiteVariant v;
    v.name = checked_name(node["name"], "variants: name", w);
    std::string variant;
    uint64_t seed = 0;
    SL_REQUIRE(!split_run_name(v.name, variant, seed),
               "{}: variants: name '{}' ends like a seed suffix (-s<digits>), which would make its runs ambiguous; "
               "rename it",
               w.at(node["name"]), v.name);
    if (node["set"]) v.overrides = read_set(node["set"], fmt::format("variant {}: set", v.name), false, w);
    return v;
}

SuiteSlurm read_slurm(const YAML::Node& node, const Where& w) {
    SL_REQUIRE(node.IsMap(), "{}: slurm: expected a map with sbatch:, launcher:, setup:, got {}", w.at(node),
               config::describe(node));
    check_keys(node, {"sbatch", "launcher", "setup"}, "slurm:", w);
    SuiteSlurm s;
    if (node["sbatch"]) s.sbatch = string_list(node["sbatch"], "slurm: sbatch", w);
    if (node["launcher"]) s.launcher = scalar(node["launcher"], "slurm: launcher", w);
    if (node["setup"]) s.setup = string_list(node["setup"], "slurm: setup", w);
    for (const std::string& opt : s.sbatch)
        SL_REQUIRE(opt.starts_with("-"),
                   "{}: slurm: sbatch: '{}' is not an sbatch option; write it like --time=2:00:00",
                   w.at(node["sbatch"]), opt);
    return s;
}

YAML::Node required(const YAML::Node& root, const char* key, const char* example, const Where& w) {
    const YAML::Node node = root[key];
    SL_REQUIRE(node, "{}: {}: missing; add it, e.g. {}", w.file, key, example);
    return node;
}

}  // namespace

std::string run_name(const std::string& variant, uint64_t seed) { return fmt::format("{}-s{}", variant, seed); }

bool split_run_name(const std::string& name, std::string& variant, uint64_t& seed) {
    std::smatch m;
    if (!std::regex_match(name, m, kRunNamePattern)) return false;
    const std::string digits = m[2].str();
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), seed);
    if (ec != std::errc()) return false;
    variant = m[1].str();
    return true;
}

Suite load_suite(const std::string& path) {
    const Where w{path};
    SL_REQUIRE(fs::is_regular_file(path), "suite file '{}' not found; check the path", path);
    const YAML::Node root =
        config::parse_one_document(read_whole_file(path, "check the suite file's permissions"), path, "a suite");
    std::vector<YAML::Node> inside;
    check_unique_keys(root, w, inside);
    SL_REQUIRE(root.IsMap(),
               "{}: a suite is a map with base:, name:, seeds:, variants: (see experiments/README.md), "
               "got {}",
               path, config::describe(root));
    check_keys(root, {"base", "name", "seeds", "variants", "set", "slurm"}, "a suite", w);

    Suite s;
    s.path = path;
    const YAML::Node base = required(root, "base", "base: ../../configs/tiny.yaml", w);
    s.base = (fs::path(path).parent_path() / scalar(base, "base", w)).lexically_normal().string();
    SL_REQUIRE(fs::is_regular_file(s.base),
               "{}: base: config '{}' not found (base: is relative to the suite file's "
               "folder); check the path",
               w.at(base), s.base);
    s.name = checked_name(required(root, "name", "name: headnorm-vs-baseline", w), "name", w);
    s.seeds = read_seeds(required(root, "seeds", "seeds: [1, 2, 3]", w), w);
    const YAML::Node variants = required(root, "variants",
                                         "variants: [{name: baseline}, {name: headnorm, set: "
                                         "{attention.variant: headnorm}}]",
                                         w);
    SL_REQUIRE(variants.IsSequence() && variants.size() > 0,
               "{}: variants: expected a list of {{name:, set:}} maps, "
               "got {}",
               w.at(variants), config::describe(variants));
    for (const YAML::Node& v : variants) {
        s.variants.push_back(read_variant(v, w));
        for (size_t i = 0; i + 1 < s.variants.size(); i++)
            SL_REQUIRE(s.variants[i].name != s.variants.back().name,
                       "{}: variants: name '{}' appears twice; variant names must differ", w.at(v),
                       s.variants.back().name);
    }
    if (root["set"]) s.overrides = read_set(root["set"], "set", true, w);
    if (root["slurm"]) s.slurm = read_slurm(root["slurm"], w);
    return s;
}

}  // namespace sinklab
