#include "data/gpt2_tokenizer.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/check.h"
#include "core/read_file.h"
#include "data/gpt2_split.h"
#include "data/unicode.h"

namespace sinklab {

namespace {

// GPT-2 stores each byte as a printable code point: bytes that are printable Latin-1 map to themselves, the
// other 68 to U+0100 + n in byte order (bytes_to_unicode in OpenAI's encoder.py). Index: code point; value: byte.
std::array<int, 324> unicode_to_byte() {
    std::array<int, 324> table;
    table.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        table[printable ? b : 256 + n++] = b;
    }
    return table;
}

// A vocabulary string (GPT-2's printable stand-ins for bytes) -> the bytes it stands for.
std::string to_bytes(std::string_view symbols, const std::string& file) {
    static const std::array<int, 324> table = unicode_to_byte();
    std::string out;
    size_t i = 0;
    while (i < symbols.size()) {
        char32_t cp;
        const int len = utf8_decode(symbols, i, cp);
        SL_REQUIRE(len > 0 && cp < table.size() && table[cp] >= 0,
                   "{}: entry '{}' has a character outside GPT-2's byte alphabet; the file is not a GPT-2 vocabulary",
                   file, symbols);
        out += static_cast<char>(table[cp]);
        i += len;
    }
    return out;
}

constexpr const char* kFetchHint = "run data/fetch_gpt2_vocab.sh to fetch the GPT-2 vocabulary";

// Encodings of recent pieces, per thread (encode() is const and may run on many threads at once).
struct PieceCache {
    static constexpr size_t kMaxPieceBytes = 64;   // longer pieces are rare and not worth the memory
    static constexpr size_t kMaxEntries = 1 << 18;  // then start over (a few tens of MB per thread at most)
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    uint64_t owner = 0;
    std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, Hash, std::equal_to<>> index;  // -> ids span
    std::vector<int32_t> ids;

    void claim(uint64_t instance) {
        if (owner == instance) return;
        owner = instance;
        clear();
    }
    void clear() {
        index.clear();
        ids.clear();
    }
};

std::atomic<uint64_t> next_instance{1};

inline uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

Gpt2Tokenizer::Gpt2Tokenizer(const std::string& dir) : instance_(next_instance++) {
    load_encoder(dir + "/encoder.json");
    load_merges(dir + "/vocab.bpe");
}

void Gpt2Tokenizer::load_encoder(const std::string& path) {
    nlohmann::json encoder;
    try {
        encoder = nlohmann::json::parse(read_whole_file(path, kFetchHint));
    } catch (const nlohmann::json::exception& e) {
        fail("{}: not valid JSON ({}); {}", path, e.what(), kFetchHint);
    }
    SL_REQUIRE(encoder.is_object() && !encoder.empty(), "{}: expected a JSON object of token -> id; {}", path,
               kFetchHint);
    token_bytes_.assign(encoder.size(), {});
    std::vector<bool> seen(encoder.size(), false);
    for (const auto& [symbols, value] : encoder.items()) {
        SL_REQUIRE(value.is_number_integer(), "{}: the id of '{}' is not an integer", path, symbols);
        const int64_t id = value.get<int64_t>();
        SL_REQUIRE(id >= 0 && id < static_cast<int64_t>(encoder.size()) && !seen[id],
                   "{}: id {} of '{}' is out of range or used twice; ids must be 0..{} once each", path, id, symbols,
                   encoder.size() - 1);
        seen[id] = true;
        token_bytes_[id] = to_bytes(symbols, path);
        SL_REQUIRE(id_of_bytes_.emplace(token_bytes_[id], static_cast<int32_t>(id)).second,
                   "{}: two entries stand for the same bytes ('{}')", path, symbols);
    }
    for (int b = 0; b < 256; ++b) {
        const auto it = id_of_bytes_.find(std::string(1, static_cast<char>(b)));
        SL_REQUIRE(it != id_of_bytes_.end(), "{}: no token for byte {}; a byte-level vocabulary needs all 256", path,
                   b);
        byte_id_[b] = it->second;
    }
    const auto eot = id_of_bytes_.find(std::string(kEndOfText));
    SL_REQUIRE(eot != id_of_bytes_.end(), "{}: no {} token", path, kEndOfText);
    eot_ = eot->second;
}

void Gpt2Tokenizer::load_merges(const std::string& path) {
    std::istringstream in(read_whole_file(path, kFetchHint));
    std::vector<bool> made(token_bytes_.size(), false);  // produced by a merge already read
    std::string line;
    int64_t line_no = 0;
    int32_t rank = 0;
    while (std::getline(in, line)) {
        ++line_no;
        if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
        const size_t space = line.find(' ');
        SL_REQUIRE(space != std::string::npos && space > 0 && line.find(' ', space + 1) == std::string::npos,
                   "{}:{}: expected 'LEFT RIGHT', got '{}'", path, line_no, line);
        const std::string left = to_bytes(std::string_view(line).substr(0, space), path);
        const std::string right = to_bytes(std::string_view(line).substr(space + 1), path);
        const auto l = id_of_bytes_.find(left), r = id_of_bytes_.find(right), m = id_of_bytes_.find(left + right);
        SL_REQUIRE(l != id_of_bytes_.end() && r != id_of_bytes_.end() && m != id_of_bytes_.end(),
                   "{}:{}: merge '{}' uses or makes a token that encoder.json lacks; the two files do not belong "
                   "together",
                   path, line_no, line);
        // Merging one pair at a time, lowest rank first, equals encoder.py's "merge every occurrence of the best
        // pair" only when a merge's parts exist before it: check that once here.
        for (const auto& part : {l, r})
            SL_REQUIRE(part->first.size() == 1 || made[part->second],
                       "{}:{}: merge '{}' uses a token that no earlier merge makes", path, line_no, line);
        made[m->second] = true;
        SL_REQUIRE(merges_.emplace(pair_key(l->second, r->second), Merge{rank++, m->second}).second,
                   "{}:{}: merge '{}' appears twice", path, line_no, line);
    }
    SL_REQUIRE(!merges_.empty(), "{}: no merges; {}", path, kFetchHint);
}

void Gpt2Tokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
    const size_t n = piece.size();
    if (n == 1) {
        out.push_back(byte_id_[static_cast<unsigned char>(piece[0])]);
        return;
    }
    // Symbols as a linked list over the piece's bytes; candidate merges in a heap ordered by (rank, position).
    // Entries go stale when a symbol merges; they are recognised by their recorded ids and skipped (a symbol's id
    // only ever changes to a longer token, or to -1 when it is merged into its left neighbour).
    struct Symbol {
        int32_t id;
        int32_t prev, next;  // -1 at the ends
    };
    struct Candidate {
        int32_t rank, pos, left, right;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    thread_local std::vector<Symbol> sym;
    thread_local std::vector<Candidate> heap;  // a min-heap through std::push_heap / pop_heap with greater<>
    sym.resize(n);
    for (size_t i = 0; i < n; ++i)
        sym[i] = {byte_id_[static_cast<unsigned char>(piece[i])], static_cast<int32_t>(i) - 1,
                  i + 1 < n ? static_cast<int32_t>(i + 1) : -1};
    heap.clear();
    const auto push = [&](int32_t pos) {
        if (pos < 0 || sym[pos].next < 0) return;
        const int32_t left = sym[pos].id, right = sym[sym[pos].next].id;
        const auto it = merges_.find(pair_key(left, right));
        if (it == merges_.end()) return;
        heap.push_back({it->second.rank, pos, left, right});
        std::push_heap(heap.begin(), heap.end(), std::greater<>{});
    };
    for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
        const Candidate c = heap.back();
        heap.pop_back();
        Symbol& s = sym[c.pos];
        if (s.id != c.left || s.next < 0 || sym[s.next].id != c.right) continue;  // stale
        const int32_t gone = s.next;
        s.id = merges_.at(pair_key(c.left, c.right)).id;
        s.next = sym[gone].next;
        sym[gone].id = -1;  // merged away: its own candidates are stale now
        if (s.next >= 0) sym[s.next].prev = c.pos;
        push(s.prev);
        push(c.pos);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

std::vector<int32_t> Gpt2Tokenizer::encode(std::string_view text) const {
    thread_local std::vector<std::string_view> pieces;
    thread_local PieceCache cache;
    cache.claim(instance_);
    gpt2_split(text, pieces);
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 16);
    for (const std::string_view piece : pieces) {
        if (piece.size() > PieceCache::kMaxPieceBytes) {
            encode_piece(piece, out);
            continue;
        }
        if (const auto hit = cache.index.find(piece); hit != cache.index.end()) {
            const auto [begin, count] = hit->second;
            out.insert(out.end(), cache.ids.begin() + begin, cache.ids.begin() + begin + count);
            continue;
        }
        const size_t before = out.size();
        encode_piece(piece, out);
        if (cache.index.size() >= PieceCache::kMaxEntries) cache.clear();
        const auto span = std::pair<uint32_t, uint32_t>(static_cast<uint32_t>(cache.ids.size()),
                                                         static_cast<uint32_t>(out.size() - before));
        cache.index.emplace(std::string(piece), span);
        cache.ids.insert(cache.ids.end(), out.begin() + before, out.end());
    }
    return out;
}

std::string Gpt2Tokenizer::decode(const std::vector<int32_t>& ids) const {
    std::string out;
    out.reserve(ids.size() * 4);
    for (size_t i = 0; i < ids.size(); ++i) {
        SL_REQUIRE(ids[i] >= 0 && ids[i] < vocab_size(), "token id {} at position {} is outside the gpt2 vocabulary "
                   "[0, {})", ids[i], i, vocab_size());
        out += token_bytes_[ids[i]];
    }
    return out;
}

}  // namespace sinklab
