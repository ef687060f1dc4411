#include "metrics/compare_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/si.h"

namespace sinklab {
namespace {

struct Table {
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;
};

// "mean ± sd", "-" without values, "(n/of)" when only some runs have one.
std::string cell(const Stat& s, const std::function<std::string(double)>& num) {
    if (s.n == 0) return "-";
    std::string out = num(s.mean);
    if (s.n >= 2) out += " ± " + num(s.sd);
    if (s.n < s.of) out += fmt::format(" ({}/{})", s.n, s.of);
    return out;
}

std::string fixed(double v, int digits) { return fmt::format("{:.{}f}", v, digits); }

std::string steps(const GroupRow& g) {
    const std::string done =
        g.step_min == g.step_max ? fmt::format("{}", g.step_max) : fmt::format("{}-{}", g.step_min, g.step_max);
    return g.max_steps > 0 ? fmt::format("{}/{}", done, g.max_steps) : done;
}

std::string mass_cell(const Stat& s) {
    return cell(s, [](double v) { return fixed(v, 3); });
}

std::string ratio_cell(const Stat& s) {
    return cell(s, [](double v) { return fixed(v, 2); });
}

Table summary(const Comparison& c) {
    Table t{{"variant", "runs", "step", "train loss", "val loss", "tokens to target", "speed-up"}, {}};
    for (int p : c.positions) t.header.push_back(fmt::format("tok{} mass", p));
    t.header.insert(t.header.end(), {"sink rate", "dominance", "var ratio", "att ratio", "eff. rank"});
    for (const GroupRow& g : c.groups) {
        std::vector<std::string> row{g.name,
                                     fmt::format("{}", g.runs.size()),
                                     steps(g),
                                     cell(g.train_loss, [](double v) { return fixed(v, 4); }),
                                     cell(g.val_loss, [](double v) { return fixed(v, 4); }),
                                     cell(g.tokens_to_target, si),
                                     cell(g.speedup, [](double v) { return fixed(v, 2) + "x"; })};
        for (int p : c.positions) row.push_back(g.mass.count(p) ? mass_cell(g.mass.at(p)) : "-");
        row.insert(row.end(), {mass_cell(g.sink_rate), cell(g.dominance, [](double v) { return fixed(v, 1); }),
                               ratio_cell(g.var_ratio), ratio_cell(g.att_ratio),
                               cell(g.effective_rank, [](double v) { return fixed(v, 1); })});
        t.rows.push_back(std::move(row));
    }
    return t;
}

// One column per layer (no columns while no group has a value), from each group's [L] `of` (nullptr: none).
Table per_layer(const Comparison& c, const std::function<const std::vector<Stat>*(const GroupRow&)>& of,
                const std::function<std::string(const Stat&)>& format) {
    size_t L = 0;
    for (const GroupRow& g : c.groups)
        if (const std::vector<Stat>* v = of(g)) L = std::max(L, v->size());
    Table t{{"variant"}, {}};
    for (size_t l = 0; l < L; l++) t.header.push_back(fmt::format("layer {}", l));
    for (const GroupRow& g : c.groups) {
        std::vector<std::string> row{g.name};
        const std::vector<Stat>* v = of(g);
        for (size_t l = 0; l < L; l++) row.push_back(v && l < v->size() ? format((*v)[l]) : "-");
        t.rows.push_back(std::move(row));
    }
    return t;
}

// The per-layer tables with their titles: the attention mass on each tracked position, then the var and att ratios.
std::vector<std::pair<std::string, Table>> layer_tables(const Comparison& c) {
    std::vector<std::pair<std::string, Table>> tables;
    for (int p : c.positions)
        tables.emplace_back(
            fmt::format("attention mass on token {} per layer (last /sink row, mean over heads; mean ± sd over runs)",
                        p),
            per_layer(
                c,
                [p](const GroupRow& g) {
                    const auto it = g.mass_by_layer.find(p);
                    return it == g.mass_by_layer.end() ? nullptr : &it->second;
                },
                mass_cell));
    tables.emplace_back("var ratio per layer (W_O-input std at position 0 / mean over later positions, last /sink row; "
                        "mean ± sd over runs)",
                        per_layer(c, [](const GroupRow& g) { return &g.var_ratio_by_layer; }, ratio_cell));
    tables.emplace_back("att ratio per layer (the same of the attention output before HeadNorm, gate and "
                        "amplification)",
                        per_layer(c, [](const GroupRow& g) { return &g.att_ratio_by_layer; }, ratio_cell));
    std::erase_if(tables, [](const auto& t) { return t.second.header.size() == 1; });
    return tables;
}

std::string target_note(const Comparison& c) {
    // The shipped suites name their baseline variant "baseline", which needs no second name.
    const std::string base = c.baseline == "baseline" ? c.baseline : "baseline " + c.baseline;
    if (c.baseline_runs == 0) return fmt::format("{}: no train rows yet, so no target loss", base);
    if (!std::isfinite(c.target_loss))
        return fmt::format("{}: its final train loss is not finite (a diverged run), so no target loss", base);
    return fmt::format(
        "{}: target train loss {:.4f} = its final loss (mean of the last {} logged steps, all of them "
        "where fewer), "
        "mean of {} run{}, which its smoothed curves first reach at {} tokens (mean); speed-up = {} / tokens to "
        "target",
        base, c.target_loss, c.smooth, c.baseline_runs, c.baseline_runs == 1 ? "" : "s", si(c.baseline_tokens),
        si(c.baseline_tokens));
}

const char* kColumnsNote =
    "columns: mean ± sd over runs (seeds), (n/m) when only n of m runs have a value, - when none has; tokN mass = "
    "attention mass on key position N (mean over heads and layers), sink rate and dominance (mean over layers), var "
    "ratio = W_O-input std at position 0 / mean over later positions but those intervened on (mean over layers), "
    "att ratio = the same of the attention output before HeadNorm (gate, amplification), all at the last /sink row; "
    "eff. rank = effective rank of the block output (mean over layers) at the last /heavy row";

// UTF-8 aware width: "±" is one column.
size_t width(const std::string& s) {
    size_t w = 0;
    for (unsigned char ch : s) w += (ch & 0xC0) != 0x80;
    return w;
}

std::string render_text(const Table& t) {
    std::vector<size_t> w(t.header.size());
    for (size_t i = 0; i < w.size(); i++) w[i] = width(t.header[i]);
    for (const auto& row : t.rows)
        for (size_t i = 0; i < row.size(); i++) w[i] = std::max(w[i], width(row[i]));
    auto line = [&](const std::vector<std::string>& cells) {
        std::string out;
        for (size_t i = 0; i < cells.size(); i++) {
            out += cells[i];
            if (i + 1 < cells.size()) out += std::string(w[i] - width(cells[i]) + 2, ' ');
        }
        return out + "\n";
    };
    std::string out = line(t.header);
    for (const auto& row : t.rows) out += line(row);
    return out;
}

std::string render_markdown(const Table& t) {
    auto line = [](const std::vector<std::string>& cells) { return fmt::format("| {} |\n", fmt::join(cells, " | ")); };
    std::string out = line(t.header);
    out += "|";
    for (size_t i = 0; i < t.header.size(); i++) out += i == 0 ? " --- |" : " ---: |";
    out += "\n";
    for (const auto& row : t.rows) out += line(row);
    return out;
}

}  // namespace

std::string comparison_text(const Comparison& c) {
    std::string out = target_note(c) + "\n\n" + render_text(summary(c)) + "\n" + kColumnsNote + "\n";
    for (const auto& [title, table] : layer_tables(c)) out += fmt::format("\n{}\n{}", title, render_text(table));
    return out;
}

std::string comparison_markdown(const Comparison& c) {
    std::string out = target_note(c) + ".\n\n" + render_markdown(summary(c)) + "\n" + kColumnsNote + ".\n";
    for (const auto& [title, table] : layer_tables(c))
        out += fmt::format("\n{}:\n\n{}", title, render_markdown(table));
    // A file read apart from the terminal's stderr keeps what qualifies its numbers.
    if (!c.notes.empty()) out += fmt::format("\nNotes:\n\n- {}\n", fmt::join(c.notes, "\n- "));
    return out;
}

}  // namespace sinklab
