// Where config values come from: YAML files (following inherit:) and "--set key.path=value" overrides,
// flattened to one entry per key path so that each value remembers the file and line it came from.
#pragma once
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace sinklab::config {

struct Entry {
    std::string path;    // "model.d_model"; not yet checked against the schema
    YAML::Node value;    // a scalar, a sequence, or null (maps are flattened into their keys)
    std::string origin;  // "configs/tiny.yaml:12" or "--set"
};

// The keys of `file` deep-merged over those of the file it inherits (chains allowed, cycles reported),
// in first-seen order.
std::vector<Entry> read_config_file(const std::string& file);
// Applies one "a.b.c=value" override, the value read as YAML ("3", "abc", "[3,7]"); `origin` is where it was
// written, for messages: "--set", or a suite file's line.
void apply_override(std::vector<Entry>& entries, const std::string& assignment, const std::string& origin = "--set");
// The YAML document of `text` (a null node when there is none), for a file of the kind `what` ("a config file").
// A second document would be read by nobody, so its keys must not look set: it is refused. An empty one (a
// trailing '---') holds nothing to lose.
YAML::Node parse_one_document(const std::string& text, const std::string& name, const std::string& what);

}  // namespace sinklab::config
