#include "config/config.h"

#include "config/schema.h"
#include "config/sources.h"
#include "config/suggest.h"
#include "config/validate.h"
#include "core/check.h"

namespace sinklab {
namespace {

[[noreturn]] void unknown_key(const config::Entry& e) {
    using config::Field;
    if (config::is_section(e.path)) {
        for (const Field& f : config::schema()) {
            if (f.path.starts_with(e.path + "."))
                fail("{}: {} is a section, got {}; write its keys under it, e.g. {}", e.origin, e.path,
                     config::describe(e.value), f.path);
        }
    }
    const std::vector<std::string> close = config::suggest_keys(e.path);
    const std::string hint = close.empty() ? "no key is close."
                                           : fmt::format("did you mean {}?", fmt::join(close, " or "));
    fail("{}: unknown key '{}' (value {}); {} Every key is listed in configs/base.yaml", e.origin, e.path,
         config::describe(e.value), hint);
}

std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> parts;
    size_t begin = 0;
    for (size_t dot; (dot = path.find('.', begin)) != std::string_view::npos; begin = dot + 1)
        parts.push_back(path.substr(begin, dot - begin));
    parts.push_back(path.substr(begin));
    return parts;
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& overrides, config::Origins* origins_out,
                   ConfigUse use) {
    std::vector<Override> from_command_line;
    for (const std::string& o : overrides) from_command_line.push_back({o, "--set"});
    return load_config_with_sources(path, from_command_line, origins_out, use);
}

Config load_config_with_sources(const std::string& path, const std::vector<Override>& overrides,
                                config::Origins* origins_out, ConfigUse use) {
    std::vector<config::Entry> entries = config::read_config_file(path);
    for (const Override& o : overrides) config::apply_override(entries, o.assignment, o.origin);
    Config c;
    c.source = path;
    config::Origins origins{{}, "default"};
    for (const config::Entry& e : entries) {
        const config::Field* f = config::find_field(e.path);
        if (!f) unknown_key(e);
        config::parse_value(*f, e.value, c, e.origin);
        origins.by_key[e.path] = e.origin;
    }
    config::validate_config(c, origins, use);
    if (origins_out) *origins_out = std::move(origins);
    return c;
}

void validate_config(const Config& c) {
    config::validate_config(c, config::Origins{{}, c.source.empty() ? "config built in code" : c.source});
}

std::string dump_config(const Config& c) {
    constexpr size_t kCommentColumn = 44;
    std::string out = "# sinklab config: every key, in schema order (configs/base.yaml explains each)\n";
    std::vector<std::string_view> open;  // the sections the previous key sat in
    for (const config::Field& f : config::schema()) {
        std::vector<std::string_view> sections = split_path(f.path);
        const std::string_view leaf = sections.back();
        sections.pop_back();
        size_t common = 0;
        while (common < open.size() && common < sections.size() && open[common] == sections[common]) common++;
        if (common == 0) out += "\n";  // a blank line between top-level sections
        open.resize(common);
        for (size_t depth = common; depth < sections.size(); depth++) {
            out += fmt::format("{}{}:\n", std::string(2 * depth, ' '), sections[depth]);
            open.push_back(sections[depth]);
        }
        std::string line = fmt::format("{}{}: {}", std::string(2 * sections.size(), ' '), leaf, format_value(f, c));
        line.resize(std::max(line.size() + 1, kCommentColumn), ' ');
        out += fmt::format("{} # {}", line, f.doc);
        if (!f.limits.choices.empty()) out += fmt::format(" ({})", fmt::join(f.limits.choices, " | "));
        out += "\n";
    }
    return out;
}

uint64_t config_hash(const Config& c) {
    // FNV-1a: the same bytes give the same hash on every rank, compiler and run.
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char ch : dump_config(c)) {
        h ^= ch;
        h *= 0x100000001b3ull;
    }
    return h;
}

std::vector<std::string> changed_keys(const Config& a, const Config& b) {
    std::vector<std::string> keys;
    for (const config::Field& f : config::schema())
        if (config::format_value(f, a) != config::format_value(f, b)) keys.emplace_back(f.path);
    return keys;
}

std::vector<std::string> config_differences(const Config& a, const Config& b, const std::set<std::string>& ignore) {
    std::vector<std::string> out;
    for (const std::string& key : changed_keys(a, b)) {
        if (ignore.contains(key)) continue;
        const config::Field* f = config::find_field(key);
        out.push_back(fmt::format("{} {} vs {}", key, config::format_value(*f, a), config::format_value(*f, b)));
    }
    return out;
}

}  // namespace sinklab
