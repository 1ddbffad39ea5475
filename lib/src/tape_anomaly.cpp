// Anomaly mode's checks (see mcnn/tape.hpp): called by the tape only while
// set_detect_anomaly(true) is on; each throws AnomalyError at the first NaN or inf it finds, with
// the message built here. Tape entries are numbered from 0 in creation order, as Var::id() says.
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "mcnn/tape.hpp"

namespace mcnn {
namespace {

// "element 17 is nan" (or inf, -inf) for the first non-finite element of t, or "" when every one
// is finite. A NaN's sign bit says nothing: it is written "nan" either way.
template <class T>
std::string first_bad(const Tensor<T>& t) {
    const std::ptrdiff_t i = first_non_finite(t);
    if (i < 0) return "";
    const T v = t[static_cast<std::size_t>(i)];
    return std::isnan(v) ? fmt::format("element {} is nan", i) : fmt::format("element {} is {}", i, v);
}

// "finite", or where the first non-finite element of t is.
template <class T>
std::string finiteness(const Tensor<T>& t) {
    const std::string bad = first_bad(t);
    return bad.empty() ? "finite" : "not finite: " + bad;
}

}  // namespace

template <class T>
std::string Tape<T>::describe(int id) const {
    if (id < 0) return "a value not on the tape";
    const Node& node = nodes_.at(static_cast<std::size_t>(id));
    if (node.param) return fmt::format("entry {}, parameter '{}' {}", id, node.param->name, node.value->shape().str());
    return fmt::format("entry {}, {} {}", id, node.op, node.value->shape().str());
}

template <class T>
void Tape<T>::check_leaf(const char* kind, const Tensor<T>& value, const Parameter<T>* param) const {
    const std::string bad = first_bad(value);
    if (bad.empty()) return;
    const std::string what = param ? fmt::format("parameter '{}'", param->name) : std::string(kind);
    const std::string where = recording() && std::string(kind) != "constant"
                                  ? fmt::format("tape entry {} of {} so far", nodes_.size(), nodes_.size() + 1)
                                  : "not recorded on the tape";
    // a parameter changes between tapes: the optimiser's last step (or a load) made the value
    const char* why = param ? " (set outside the tape: by the last optimiser step, or when it was loaded)" : "";
    throw AnomalyError(fmt::format("detect_anomaly: forward: the {} {} ({}) holds a non-finite value: {}{}", what,
                                   value.shape().str(), where, bad, why));
}

template <class T>
void Tape<T>::check_output(const char* op, const Tensor<T>& value, std::initializer_list<Var<T>> inputs, bool recorded) const {
    const std::string bad = first_bad(value);
    if (bad.empty()) return;
    std::vector<std::string> from;
    for (const Var<T>& in : inputs)
        from.push_back(fmt::format("{} ({}, {})", in.shape().str(), in.requires_grad() ? describe(in.id()) : "a constant",
                                   finiteness(in.value())));
    const std::string where = recorded ? fmt::format("tape entry {} of {} so far", nodes_.size(), nodes_.size() + 1)
                                       : "not recorded on the tape";
    throw AnomalyError(fmt::format("detect_anomaly: forward of '{}' ({}) gave a non-finite output {}: {}; its inputs: {}", op,
                                   where, value.shape().str(), bad, fmt::join(from, "; ")));
}

template <class T>
void Tape<T>::check_gradients(int id, GradSlots slots) const {
    for (std::size_t k = 0; k < slots.size(); ++k) {
        if (!slots[k]) continue;
        const std::string bad = first_bad(*slots[k]);
        if (bad.empty()) continue;
        const Node& node = nodes_[static_cast<std::size_t>(id)];
        const Tensor<T>& received = node.param ? node.param->grad : node.grad;
        throw AnomalyError(fmt::format(
            "detect_anomaly: backward of '{}' (tape entry {} of {}; output {}) gave a non-finite gradient for its input {} of {} "
            "({}): {}; the gradient it received, {}, is {}",
            node.op, id, nodes_.size(), node.value->shape().str(), k, slots.size(), describe(node.inputs[k]), bad,
            received.shape().str(), finiteness(received)));
    }
}

template <class T>
void Tape<T>::check_parameter_gradients() const {
    for (std::size_t id = 0; id < nodes_.size(); ++id) {
        const Parameter<T>* p = nodes_[id].param;
        if (!p) continue;
        const std::string bad = first_bad(p->grad);
        if (!bad.empty())
            throw AnomalyError(fmt::format("detect_anomaly: backward: the gradient of parameter '{}' {} (tape entry {} of {}) already "
                                           "held a non-finite value before the pass: {} (left from an earlier step? zero_grad() "
                                           "first)",
                                           p->name, p->grad.shape().str(), id, nodes_.size(), bad));
    }
}

#define MCNN_INSTANTIATE(T)                                                                                                  \
    template std::string Tape<T>::describe(int) const;                                                                    \
    template void Tape<T>::check_leaf(const char*, const Tensor<T>&, const Parameter<T>*) const;                         \
    template void Tape<T>::check_output(const char*, const Tensor<T>&, std::initializer_list<Var<T>>, bool) const;       \
    template void Tape<T>::check_gradients(int, GradSlots) const;                                                        \
    template void Tape<T>::check_parameter_gradients() const;
MCNN_INSTANTIATE(float)
MCNN_INSTANTIATE(double)

}  // namespace mcnn
