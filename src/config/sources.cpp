#include "config/sources.h"

#include <filesystem>
#include <set>

#include "config/schema.h"
#include "core/check.h"
#include "core/read_file.h"

namespace sinklab::config {
namespace fs = std::filesystem;
namespace {

// Later entries win; a key keeps its first-seen place so that dumps of the sources read top-down.
void put(std::vector<Entry>& entries, Entry e) {
    for (Entry& old : entries) {
        if (old.path == e.path) {
            old = std::move(e);
            return;
        }
    }
    entries.push_back(std::move(e));
}

std::string join_path(const std::string& prefix, const std::string& key) {
    return prefix.empty() ? key : prefix + "." + key;
}

// Where one file's values come from; overrides have no lines.
struct Source {
    std::string name;  // file name as the user wrote it, or where an override was written ("--set")
    bool has_lines;

    std::string at(const YAML::Mark& mark) const {
        return has_lines && mark.line >= 0 ? fmt::format("{}:{}", name, mark.line + 1) : name;
    }
};

// Maps are sections and are walked into, except where the schema has a key of that name: the value then
// stays whole so that its type error names the key ("expected an integer, got a map"). The root's
// inherit: is the file reader's business.
void flatten(const YAML::Node& node, const std::string& path, const Source& src, const std::string& origin,
             std::vector<Entry>& out) {
    if (node.IsNull() && is_section(path)) return;  // a section whose keys are all commented out
    if (!node.IsMap() || find_field(path)) {
        out.push_back({path, node, origin});
        return;
    }
    std::set<std::string> seen;
    for (const auto& kv : node) {
        const std::string key_origin = src.at(kv.first.Mark());
        SL_REQUIRE(kv.first.IsScalar() && !kv.first.Scalar().empty(),
                   "{}: under '{}': a key must be a plain name, got {}; write key: value", key_origin, path,
                   describe(kv.first));
        const std::string& key = kv.first.Scalar();
        SL_REQUIRE(seen.insert(key).second, "{}: {}: the key appears twice; keep one", key_origin,
                   join_path(path, key));
        if (path.empty() && key == "inherit") continue;
        flatten(kv.second, join_path(path, key), src, key_origin, out);
    }
}

// One file's (or one override's) entries. flatten() refuses a key written twice in one map; this also refuses
// one key reached by two spellings ("train.lr:" and "train: {lr:}"), of which the later would silently win.
std::vector<Entry> entries_of(const YAML::Node& node, const std::string& path, const Source& src) {
    std::vector<Entry> own;
    flatten(node, path, src, src.name, own);
    for (size_t i = 0; i < own.size(); i++)
        for (size_t j = 0; j < i; j++)
            SL_REQUIRE(own[i].path != own[j].path, "{}: {}: the key appears twice (also at {}); keep one",
                       own[i].origin, own[i].path, own[j].origin);
    return own;
}

std::string read_text(const fs::path& file, const std::string& wanted_by) {
    SL_REQUIRE(!fs::is_directory(file), "config file '{}'{} is a folder; give a YAML file such as configs/tiny.yaml",
               file.string(), wanted_by);
    SL_REQUIRE(fs::exists(file), "config file '{}' not found{}; check the path{}", file.string(), wanted_by,
               wanted_by.empty() ? "" : " (inherit: paths are relative to the including file)");
    SL_REQUIRE(fs::is_regular_file(file), "config file '{}'{} is not a regular file (a pipe or a device?); give a YAML "
               "file such as configs/tiny.yaml", file.string(), wanted_by);
    return read_whole_file(file.string(), "check the config file's permissions");
}

void read_chain(const fs::path& file, const std::string& wanted_by, std::vector<fs::path>& chain,
                std::vector<Entry>& entries) {
    const std::string name = file.lexically_normal().string();
    const std::string text = read_text(file, wanted_by);
    const fs::path canonical = fs::weakly_canonical(file);
    for (size_t i = 0; i < chain.size(); i++) {
        if (chain[i] != canonical) continue;
        std::vector<std::string> cycle;
        for (size_t j = i; j < chain.size(); j++) cycle.push_back(chain[j].filename().string());
        cycle.push_back(file.filename().string());
        fail("{}: inherit cycle {}; remove one of these inherit: lines", name, fmt::join(cycle, " -> "));
    }
    const YAML::Node root = parse_one_document(text, name, "a config file");
    // An empty file is more likely cut short or the wrong file than a wish for every default.
    SL_REQUIRE(!root.IsNull(),
               "{}: the file is empty or holds only comments; write the keys to set in it (configs/base.yaml lists "
               "every key) or pass a preset from configs/",
               name);
    SL_REQUIRE(root.IsMap(), "{}: the top level must be sections like 'model:', got {}; see configs/base.yaml", name,
               describe(root));

    for (const auto& kv : root) {
        if (!kv.first.IsScalar() || kv.first.Scalar() != "inherit") continue;
        const std::string where = fmt::format("{}:{}", name, kv.first.Mark().line + 1);
        SL_REQUIRE(kv.second.IsScalar() && !kv.second.Scalar().empty(),
                   "{}: inherit: expected a file name, got {}; write inherit: base.yaml", where,
                   describe(kv.second));
        chain.push_back(canonical);
        read_chain(file.parent_path() / kv.second.Scalar(), fmt::format(" (inherited by {})", where), chain, entries);
        chain.pop_back();
        break;
    }
    for (Entry& e : entries_of(root, "", Source{name, true})) put(entries, std::move(e));
}

std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

std::vector<Entry> read_config_file(const std::string& file) {
    std::vector<fs::path> chain;
    std::vector<Entry> entries;
    read_chain(file, "", chain, entries);
    return entries;
}

YAML::Node parse_one_document(const std::string& text, const std::string& name, const std::string& what) {
    std::vector<YAML::Node> documents;
    try {
        documents = YAML::LoadAll(text);
    } catch (const YAML::ParserException& e) {
        fail("{}:{}: YAML syntax error: {}; fix the YAML at that line", name, e.mark.line + 1, e.msg);
    }
    std::erase_if(documents, [](const YAML::Node& d) { return d.IsNull(); });
    SL_REQUIRE(documents.size() <= 1,
               "{}: holds {} YAML documents separated by '---', but {} is one document; merge them into one or "
               "remove the '---' lines",
               name, documents.size(), what);
    return documents.empty() ? YAML::Node() : documents[0];
}

void apply_override(std::vector<Entry>& entries, const std::string& assignment, const std::string& origin) {
    const size_t eq = assignment.find('=');
    SL_REQUIRE(eq != std::string::npos, "--set '{}': missing '='; write --set key.path=value", assignment);
    const std::string path = trim(assignment.substr(0, eq));
    const std::string text = trim(assignment.substr(eq + 1));
    SL_REQUIRE(!path.empty() && path.front() != '.' && path.back() != '.' && path.find("..") == std::string::npos,
               "--set '{}': '{}' is not a key path; write --set section.key=value", assignment, path);
    YAML::Node value;
    try {
        value = YAML::Load(text);
    } catch (const YAML::ParserException&) {
        // Not YAML ("*.bin" reads as an alias): take the text as it is; a key that wants a number or a list
        // then says so with the text in its message.
        value = YAML::Node(text);
    }
    for (Entry& e : entries_of(value, path, Source{origin, false})) put(entries, std::move(e));
}

}  // namespace sinklab::config
