#include "mcnn/nn/summary.hpp"

#include <fmt/format.h>

namespace mcnn {
namespace {

std::string with_commas(std::size_t n) {
    std::string digits = std::to_string(n), out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string batch_free(const Shape& s) {
    std::vector<int> dims = s.dims();
    if (!dims.empty()) dims[0] = -1;
    return fmt::format("[{}]", fmt::join(dims, ", "));
}

}  // namespace

template <class T>
std::string summary(Module<T>& model, const Shape& input, const std::string& name) {
    Tape<T> tape;
    const Var<T> x = tape.input(Tensor<T>(input));
    const bool training = model.is_training();
    model.eval();  // a probe: layers with running statistics (batch norm) must learn nothing from it
    try {
        model.forward(x);
    } catch (const Error& e) {
        model.train(training);
        fail("summary: model '{}' cannot take an input of shape {}: {}", name, input.str(), e.what());
    }
    model.train(training);
    std::string out = fmt::format("{} model ({}), input {}\n", name, model.type_name(), batch_free(x.shape()));
    out += fmt::format("{:>3}  {:<22} {:<18} {:>10}  {}\n", "#", "node", "output shape", "params", "reads");
    out += std::string(80, '-') + "\n";
    std::size_t total = 0;
    int row = 0;
    for (int id = 0; id < static_cast<int>(tape.size()); ++id) {
        const std::string op = tape.op_name(id);
        if (op == "leaf" || op == "param") continue;
        std::size_t count = 0;
        std::vector<std::string> names;
        for (int in : tape.inputs_of(id))
            if (in >= 0 && tape.param_at(in)) {
                count += tape.param_at(in)->value.numel();
                names.push_back(tape.param_at(in)->name);
            }
        total += count;
        out += fmt::format("{:>3}  {:<22} {:<18} {:>10}  {}\n", ++row, op, batch_free(tape.value_at(id).shape()),
                           count ? with_commas(count) : "", fmt::join(names, ", "));
    }
    out += std::string(80, '-') + "\n";
    const std::size_t declared = model.parameter_count();
    if (declared != total)  // a parameter the graph never reads, or one read twice
        out += fmt::format("note: the model declares {} parameters, the graph reads {}\n", with_commas(declared), with_commas(total));
    out += fmt::format("Total parameters: {} ({:.1f} KiB as {})\n", with_commas(declared),
                       static_cast<double>(declared * sizeof(T)) / 1024.0, sizeof(T) == 4 ? "float" : "double");
    const std::vector<NamedBuffer<T>> buffers = model.buffers();
    if (!buffers.empty()) {
        std::size_t values = 0;
        for (const NamedBuffer<T>& b : buffers) values += b.tensor->numel();
        out += fmt::format("Buffers (saved, not trained): {} values in {} tensors ({}{})\n", with_commas(values), buffers.size(),
                           buffers.front().name, buffers.size() > 1 ? ", ..." : "");
    }
    return out;
}

template std::string summary(Module<float>&, const Shape&, const std::string&);
template std::string summary(Module<double>&, const Shape&, const std::string&);

}  // namespace mcnn
