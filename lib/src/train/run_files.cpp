// Checks of what a run folder holds (run_files.hpp), and first_non_finite() (trainer.hpp): a diverged
// run must never be saved as a good checkpoint, and a checkpoint holding NaN or infinity, lacking a
// tensor or holding one too many must never be loaded.
#include "run_files.hpp"

#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../util/strict.hpp"

namespace mcnn {

std::string NonFiniteValue::str() const {
    std::vector<int> position(static_cast<std::size_t>(shape.rank()));
    std::size_t rest = index;
    for (int d = shape.rank() - 1; d >= 0; --d) {
        const auto extent = static_cast<std::size_t>(shape[d]);
        position[static_cast<std::size_t>(d)] = extent ? static_cast<int>(rest % extent) : 0;
        rest = extent ? rest / extent : 0;
    }
    return fmt::format("{} holds {} at element {} (index [{}] of {})", tensor, value, index, fmt::join(position, ", "),
                       shape.str());
}

std::optional<NonFiniteValue> first_non_finite(const std::string& name, const Tensor<float>& tensor) {
    if (tensor.array().isFinite().all()) return std::nullopt;  // the common case, vectorised
    const float* v = tensor.data();
    for (std::size_t i = 0; i < tensor.numel(); ++i)
        if (!std::isfinite(v[i])) return NonFiniteValue{name, tensor.shape(), i, v[i]};
    return std::nullopt;
}

std::optional<NonFiniteValue> first_non_finite(Module<float>& model, Optimizer<float>* optimizer) {
    for (Parameter<float>* p : model.parameters())
        if (auto bad = first_non_finite("model/" + p->name, p->value)) return bad;
    for (const NamedBuffer<float>& b : model.buffers())
        if (auto bad = first_non_finite("model/" + b.name, *b.tensor)) return bad;
    if (optimizer)
        for (const auto& [name, t] : optimizer->state())
            if (auto bad = first_non_finite(name, *t)) return bad;
    return std::nullopt;
}

namespace run_files {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// Every parameter present in `file`, with its shape and finite values.
void check_parameters(const fs::path& path, const TensorFile& file, Module<float>& model) {
    for (Parameter<float>* p : model.parameters()) {
        const std::string name = "model/" + p->name;
        if (!file.contains(name)) fail("{}: parameter '{}' is missing", path.string(), p->name);
        const Tensor<float>& t = file.at(name);
        if (t.shape() != p->value.shape())
            fail("{}: parameter '{}' has shape {} in the checkpoint but {} in the model", path.string(), p->name, t.shape().str(),
                 p->value.shape().str());
        if (const auto bad = first_non_finite(name, t)) fail("{}: cannot load a non-finite checkpoint: {}", path.string(), bad->str());
    }
}

/// Every buffer (batch norm's running statistics, ...) present in `file`, with its shape and finite values.
void check_buffers(const fs::path& path, const TensorFile& file, Module<float>& model) {
    for (const NamedBuffer<float>& b : model.buffers()) {
        const std::string name = "model/" + b.name;
        if (!file.contains(name))
            fail("{}: buffer '{}' (tensor '{}') is missing: the checkpoint has no state for it", path.string(), b.name, name);
        const Tensor<float>& t = file.at(name);
        if (t.shape() != b.tensor->shape())
            fail("{}: buffer '{}' has shape {} in the checkpoint but {} in the model", path.string(), b.name, t.shape().str(),
                 b.tensor->shape().str());
        if (const auto bad = first_non_finite(name, t)) fail("{}: cannot load a non-finite checkpoint: {}", path.string(), bad->str());
    }
}

/// The state names the checkpoint lists as empty when saved (metadata empty_state_key).
std::set<std::string> empty_state_names(const fs::path& path, const TensorFile& file) {
    const auto it = file.metadata.find(empty_state_key);
    if (it == file.metadata.end()) return {};  // a checkpoint written before the key existed
    const json list = json::parse(it->second, nullptr, false);
    std::set<std::string> names;
    if (list.is_array())
        for (const json& name : list)
            if (name.is_string()) names.insert(name.get<std::string>());
    if (!list.is_array() || names.size() != list.size())
        fail("{}: metadata '{}' must be a JSON list of distinct names, got '{}'", path.string(), empty_state_key,
             it->second.substr(0, 200));
    return names;
}

/// Names for a message: the first few, then how many more.
std::string name_list(const std::vector<std::string>& names) {
    constexpr std::size_t shown = 6;
    std::string s = fmt::format("{}", fmt::join(names.begin(), names.begin() + static_cast<long>(std::min(shown, names.size())), ", "));
    if (names.size() > shown) s += fmt::format(" and {} more", names.size() - shown);
    return s;
}

/// Every state tensor of `optimizer` stored in `file` (with its shape and finite values) or listed
/// there as empty; adds their names to `known`.
void check_optimizer_state(const fs::path& path, const TensorFile& file, Optimizer<float>& optimizer, std::set<std::string>& known) {
    const auto state = optimizer.state();
    const std::vector<Shape> shapes = optimizer.state_shapes();
    if (shapes.size() != state.size())
        fail("{}: the optimiser names {} state tensors but {} shapes", optimizer.describe(), state.size(), shapes.size());
    const std::set<std::string> empty = empty_state_names(path, file);
    std::vector<std::string> missing;
    for (std::size_t i = 0; i < state.size(); ++i) {
        const std::string& name = state[i].first;
        known.insert(name);
        if (!file.contains(name)) {
            if (!empty.contains(name)) missing.push_back(name);
            continue;
        }
        if (empty.contains(name)) fail("{}: optimiser state '{}' is stored and also listed as empty", path.string(), name);
        const Tensor<float>& t = file.at(name);
        const Shape& expected = shapes[i];
        if (t.shape() != expected)
            fail("{}: optimiser state '{}' has shape {}, expected {}", path.string(), name, t.shape().str(), expected.str());
        if (const auto bad = first_non_finite(name, t)) fail("{}: cannot load a non-finite checkpoint: {}", path.string(), bad->str());
    }
    for (const std::string& name : empty)
        if (!known.contains(name))
            fail("{}: metadata '{}' lists '{}', which is no state of this optimiser", path.string(), empty_state_key, name);
    if (!missing.empty())
        fail("{}: the optimiser's state is missing {} of its {} tensors ({}); without them the run would not go on as it "
             "was. To load the parameters only and start the optimiser afresh, resume with --reset-optimizer "
             "(FitOptions::reset_optimizer)",
             path.string(), missing.size(), state.size(), name_list(missing));
}

/// Refuses tensors that the model (and, when given, the optimiser) do not have: a checkpoint of another
/// model or optimiser. Without an optimiser, tensors outside "model/" are not read, so not checked.
void refuse_unknown_tensors(const fs::path& path, const TensorFile& file, const std::set<std::string>& known, bool with_optimizer) {
    std::vector<std::string> unknown;
    for (const auto& [name, t] : file.tensors)
        if (!known.contains(name) && (with_optimizer || name.starts_with("model/"))) unknown.push_back(name);
    if (!unknown.empty())
        fail("{}: {} tensor(s) that this model{} do not have: {} (a checkpoint of another model?)", path.string(), unknown.size(),
             with_optimizer ? " and its optimiser" : "", name_list(unknown));
}

/// a * b, or the largest long long when it would overflow (a, b >= 0).
long long saturated_product(long long a, long long b) {
    const long long most = std::numeric_limits<long long>::max();
    return a != 0 && b > most / a ? most : a * b;
}

}  // namespace

TensorFile checked_checkpoint(const fs::path& path, Module<float>& model, Optimizer<float>* optimizer, const std::string& model_name) {
    return checked_checkpoint(load_safetensors(path), path, model, optimizer, model_name);
}

TensorFile checked_checkpoint(TensorFile file, const fs::path& path, Module<float>& model, Optimizer<float>* optimizer,
                              const std::string& model_name) {
    const auto meta = [&](const std::string& key) {
        auto it = file.metadata.find(key);
        return it == file.metadata.end() ? std::string() : it->second;
    };
    if (meta("format") != checkpoint_format)
        fail("{}: not a ManualCNN checkpoint (format '{}', expected '{}')", path.string(), meta("format"), checkpoint_format);
    if (!model_name.empty() && meta("model") != model_name)
        fail("{}: checkpoint of model '{}', cannot load into model '{}'", path.string(), meta("model"), model_name);
    check_parameters(path, file, model);
    check_buffers(path, file, model);
    std::set<std::string> known;
    for (Parameter<float>* p : model.parameters()) known.insert("model/" + p->name);
    for (const NamedBuffer<float>& b : model.buffers()) known.insert("model/" + b.name);
    if (optimizer) check_optimizer_state(path, file, *optimizer, known);
    refuse_unknown_tensors(path, file, known, optimizer != nullptr);
    return file;
}

void put_in_place(const TensorFile& file, Module<float>& model, Optimizer<float>* optimizer) {
    for (Parameter<float>* p : model.parameters()) {
        p->value = file.at("model/" + p->name);
        p->zero_grad();
    }
    for (const NamedBuffer<float>& b : model.buffers()) *b.tensor = file.at("model/" + b.name);
    if (optimizer)
        for (const auto& [name, t] : optimizer->state()) *t = file.contains(name) ? file.at(name) : Tensor<float>();
}

std::string escaped(std::string_view text) {
    std::string out;
    for (const char c : text.substr(0, 300)) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c == '\\') out += "\\\\";
        else if (u < 0x20 || u >= 0x7f) out += fmt::format("\\x{:02x}", u);
        else out += c;
    }
    return text.size() > 300 ? out + "..." : out;
}

LogRow log_row(std::string_view line, const std::string& where, bool with_lr) {
    std::vector<std::string_view> cells;
    for (std::size_t begin = 0;;) {
        const std::size_t comma = line.find(',', begin);
        cells.push_back(line.substr(begin, comma == std::string_view::npos ? std::string_view::npos : comma - begin));
        if (comma == std::string_view::npos) break;
        begin = comma + 1;
    }
    const std::size_t columns = with_lr ? 9 : 8;
    if (cells.size() != columns)
        fail("{}: expected {} columns ({}), got {}: '{}'", where, columns, with_lr ? csv_header : csv_header_without_lr, cells.size(),
             escaped(line));
    const auto column = [&](const char* name) { return fmt::format("{}, column '{}'", where, name); };
    if (cells[0].empty()) fail("{}: the column 'kind' is empty", where);
    constexpr double most = std::numeric_limits<double>::max();
    LogRow r;
    r.kind = std::string(cells[0]);
    r.epoch = strict::integer_as<int>(cells[1], column("epoch"), 1);
    r.step = strict::integer_as<long>(cells[2], column("step"), 0);
    r.images = strict::integer_as<long>(cells[3], column("images"), 0);
    r.loss = strict::number(cells[4], 0, most, column("loss"));
    r.accuracy = strict::number(cells[5], 0, 100, column("accuracy"));
    r.images_per_second = strict::number(cells[6], 0, most, column("images_per_s"));
    r.elapsed = strict::number(cells[7], 0, most, column("elapsed_s"));
    if (with_lr) r.lr = strict::number(cells[8], 0, most, column("lr"));
    return r;
}

SavedProgress saved_progress(const fs::path& ckpt, const std::map<std::string, std::string>& meta, const FitOptions& o,
                             std::size_t batches) {
    const auto text = [&](const std::string& key) -> const std::string& {
        const auto it = meta.find(key);
        if (it == meta.end())
            fail("{}: the checkpoint's metadata lacks '{}' (the training progress: epochs_done, step, images, train_seconds)",
                 ckpt.string(), key);
        return it->second;
    };
    const auto field = [&](const std::string& key) { return fmt::format("{}: checkpoint metadata '{}'", ckpt.string(), key); };
    const long long most = std::numeric_limits<long>::max();
    SavedProgress p;
    p.epochs_done = strict::integer_as<int>(text("epochs_done"), field("epochs_done"), 0);
    if (p.epochs_done > o.epochs)
        fail("{} is {}, more than the run's {} epochs; resume with --epochs {} or more to train on", field("epochs_done"),
             p.epochs_done, o.epochs, p.epochs_done);
    const auto per_epoch = static_cast<long long>(std::min<std::size_t>(batches, most));
    long long max_step = saturated_product(p.epochs_done, per_epoch);
    if (meta.contains("batch_in_epoch")) {
        const long long more = strict::integer(text("batch_in_epoch"), 0, per_epoch, field("batch_in_epoch"));
        max_step = more > most - max_step ? most : max_step + more;
    }
    // Every epoch done took at least one step and at most `batches`.
    const std::string step_field = field("step") + fmt::format(" (epochs_done {}, {} batches each)", p.epochs_done, batches);
    p.step = strict::integer_as<long>(text("step"), step_field, p.epochs_done, std::min(most, max_step));
    p.images = strict::integer_as<long>(text("images"), field("images") + fmt::format(" (step {}, batch {})", p.step, o.batch),
                                        p.step, std::min(most, saturated_product(p.step, o.batch)));
    p.train_seconds = strict::number(text("train_seconds"), 0, std::numeric_limits<double>::max(), field("train_seconds"));
    return p;
}

}  // namespace run_files
}  // namespace mcnn
