// The config schema: every key once, with its member, type, one-line doc and limits. Loading, dumping,
// unknown-key detection, validation of limits and the base.yaml completeness test all read this table.
#pragma once
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/config.h"

namespace sinklab::config {

// Limits a key's value must meet; the defaults mean "no limit".
struct Limits {
    double lo = -std::numeric_limits<double>::infinity();
    double hi = std::numeric_limits<double>::infinity();
    bool lo_open = false;  // lo itself is excluded (epsilons, rates)
    bool hi_open = false;  // hi itself is excluded (Adam betas)
    std::vector<std::string_view> choices = {};  // enum-like strings: the allowed values
    bool non_empty = false;                 // strings that must not be ""
    bool folder_name = false;               // strings used as one folder's name (see is_folder_name)
};

// Both accessors come from one generic lambda, so reading and writing can never name different members.
template <typename T>
struct Ref {
    T& (*mut)(Config&);
    const T& (*get)(const Config&);
};
using AnyRef = std::variant<Ref<bool>, Ref<int>, Ref<int64_t>, Ref<uint64_t>, Ref<float>, Ref<std::string>,
                            Ref<std::vector<int>>>;

struct Field {
    std::string_view path;  // "train.lr"
    AnyRef ref;
    std::string_view doc;
    Limits limits;
};

// A name that is one plain folder, the same on every file system and in shell commands: letters, digits and
// . _ + -, starting with a letter or digit (so never ".", "..", a path, or a name with spaces).
bool is_folder_name(std::string_view name);
extern const char* const kFolderNameRule;  // the rule in words, for messages

// Every key in schema order; a section's keys are contiguous.
const std::vector<Field>& schema();
// The field at `path`, or nullptr.
const Field* find_field(std::string_view path);
// True when `path` is a section (a proper prefix of some key), e.g. "attention.headnorm".
bool is_section(std::string_view path);

// The value as YAML text that parse_value reads back to the same value (strings double-quoted, floats in
// their shortest exact form, lists in flow style).
std::string format_value(const Field& f, const Config& c);
// "key (old -> new)": how one key differs between two configs, for messages that list changed keys.
std::string value_change(std::string_view key, const Config& old, const Config& now);
// What a YAML node holds, for "got ..." in messages: 'abc', an empty value, a list [3, 7], a map {...}.
std::string describe(const YAML::Node& node);
// A value as messages show it, on one line: control bytes as \xNN (with `ascii`, every byte above 0x7e too: text that
// should be ASCII may be binary, which would make the line invalid UTF-8), and whole when short, else its start and
// its length (a 20 MB scalar made a 20 MB line).
std::string clipped(const std::string& text, size_t shown = 80, bool ascii = false);
// Reads `node` into the field; a wrong type throws an Error naming `origin`, the key and the value.
void parse_value(const Field& f, const YAML::Node& node, Config& c, std::string_view origin);
// Throws an Error when the field's value breaks its Limits; `origin` says where the value came from.
void check_limits(const Field& f, const Config& c, std::string_view origin);

}  // namespace sinklab::config
