// Parameter groups: which parameters get another learning-rate scale or weight decay.
#include <fmt/format.h>

#include "mcnn/error.hpp"
#include "mcnn/optim/optimizer.hpp"

namespace mcnn {
namespace {

/// Whether `name` matches `pattern`, '*' standing for any run of characters (greedy with
/// backtracking to the last '*', linear in practice for the short names of parameters).
bool glob_match(const std::string& pattern, const std::string& name) {
    std::size_t p = 0, n = 0, star = std::string::npos, resume = 0;
    while (n < name.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            resume = n;
        } else if (p < pattern.size() && pattern[p] == name[n]) {
            ++p;
            ++n;
        } else if (star != std::string::npos) {
            p = star + 1;
            n = ++resume;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

std::string group_label(const ParamGroup& g, std::size_t i) {
    return g.label.empty() ? fmt::format("group {}", i + 1) : g.label;
}

}  // namespace

ParamMatch one_dimensional() {
    return [](const std::string&, const Shape& shape) { return shape.rank() == 1; };
}

ParamMatch name_matches(std::string pattern) {
    if (pattern.empty()) fail("name_matches: empty pattern (use \"*\" for every parameter)");
    return [pattern = std::move(pattern)](const std::string& name, const Shape&) { return glob_match(pattern, name); };
}

std::vector<ParamSetting> resolve_groups(const std::vector<std::pair<std::string, Shape>>& params,
                                         const std::vector<ParamGroup>& groups, const std::string& optimizer) {
    for (std::size_t i = 0; i < groups.size(); ++i) {
        const ParamGroup& g = groups[i];
        if (!g.match) fail("{}: parameter {} has no match function", optimizer, group_label(g, i));
        if (!(g.lr_scale > 0) || g.lr_scale > 1e300)
            fail("{}: parameter {} needs an lr scale > 0 and finite, got {}", optimizer, group_label(g, i), g.lr_scale);
        if (g.weight_decay && (!(*g.weight_decay >= 0) || *g.weight_decay > 1e300))
            fail("{}: parameter {} needs a weight decay >= 0 and finite, got {}", optimizer, group_label(g, i), *g.weight_decay);
    }
    std::vector<ParamSetting> out(params.size());
    std::vector<bool> used(groups.size(), false);
    for (std::size_t k = 0; k < params.size(); ++k)
        for (std::size_t i = 0; i < groups.size(); ++i)
            if (groups[i].match(params[k].first, params[k].second)) {
                out[k] = {groups[i].lr_scale, groups[i].weight_decay};
                used[i] = true;
                break;
            }
    for (std::size_t i = 0; i < groups.size(); ++i)
        if (!used[i]) fail("{}: parameter group {} matches no parameter (earlier groups took them, or none fits)", optimizer, group_label(groups[i], i));
    return out;
}

std::string describe_groups(const std::vector<ParamGroup>& groups) {
    std::string s;
    for (std::size_t i = 0; i < groups.size(); ++i) {
        const ParamGroup& g = groups[i];
        s += fmt::format("{}{} lr x{}", s.empty() ? " (" : "; ", group_label(g, i), g.lr_scale);
        if (g.weight_decay) s += fmt::format(", weight decay {}", *g.weight_decay);
    }
    return s.empty() ? s : s + ")";
}

}  // namespace mcnn
