#include "mcnn/tape.hpp"

#include <algorithm>
#include <cstring>

namespace mcnn {

OpProfile::Entry& OpProfile::at(const char* op) {
    for (Entry& e : entries)
        if (e.op == op || std::strcmp(e.op, op) == 0) return e;
    return entries.emplace_back(Entry{op});
}

bool BranchLog::operator==(const BranchLog& other) const {
    return std::equal(entries.begin(), entries.end(), other.entries.begin(), other.entries.end(),
                      [](const Entry& a, const Entry& b) { return a.signature == b.signature; });
}

template <class T>
const Tensor<T>& Var<T>::value() const {
    if (!value_) fail("Var: empty handle (default-constructed Var used as a value)");
    return *value_;
}

template <class T>
const Tensor<T>& Var<T>::grad() const {
    if (!tape_) fail("Var::grad: this value belongs to no tape");
    return tape_->grad(*this);
}

template <class T>
bool Var<T>::take_value(Tensor<T>& out) {
    // use_count() is 1 only for a value made by the tape (make_shared of a non-const Tensor) that
    // no node and no other handle holds; a parameter's view has an empty owner and counts 0.
    if (id_ >= 0 || !value_ || value_.use_count() != 1) return false;
    Tensor<T>& value = const_cast<Tensor<T>&>(*value_);
    out = std::move(value);
    value = Tensor<T>();
    return true;
}

template <class T>
Var<T> Tape<T>::push(Node node) {
    if (backward_done_) fail("Tape: recording after backward(); clear() the tape first");
    auto value = node.value;
    nodes_.push_back(std::move(node));
    return Var<T>(this, static_cast<int>(nodes_.size()) - 1, std::move(value));
}

template <class T>
Var<T> Tape<T>::constant(Tensor<T> value) {
    if (detect_anomaly_) check_leaf("constant", value, nullptr);
    return Var<T>(this, -1, std::make_shared<Tensor<T>>(std::move(value)));
}

template <class T>
Var<T> Tape<T>::input(Tensor<T> value) {
    if (detect_anomaly_) check_leaf("input", value, nullptr);
    auto shared = std::make_shared<Tensor<T>>(std::move(value));
    if (!recording()) return Var<T>(this, -1, std::move(shared));
    Node node;
    node.value = std::move(shared);
    return push(std::move(node));
}

template <class T>
Var<T> Tape<T>::param(Parameter<T>& p) {
    if (detect_anomaly_) check_leaf("parameter", p.value, &p);
    // Aliasing constructor with an empty owner: the tape reads the parameter in place.
    std::shared_ptr<const Tensor<T>> view(std::shared_ptr<void>(), &p.value);
    if (!recording()) return Var<T>(this, -1, std::move(view));
    if (p.grad.shape() != p.value.shape()) p.grad = Tensor<T>(p.value.shape());
    Node node;
    node.op = "param";
    node.value = std::move(view);
    node.param = &p;
    return push(std::move(node));
}

template <class T>
Var<T> Tape<T>::record(const char* op, Tensor<T> value, std::initializer_list<Var<T>> inputs, BackwardFn backward) {
    bool any_grad = false;
    for (const Var<T>& in : inputs) {
        if (in.tape() != this) fail("{}: an input comes from another tape", op);
        any_grad = any_grad || in.requires_grad();
    }
    if (profile_) {
        const auto now = std::chrono::steady_clock::now();
        OpProfile::Entry& e = profile_->at(op);
        e.forward_s += std::chrono::duration<double>(now - last_event_).count();
        ++e.forward_calls;
        last_event_ = now;
    }
    if (detect_anomaly_) check_output(op, value, inputs, recording() && any_grad);
    auto shared = std::make_shared<Tensor<T>>(std::move(value));
    if (!recording() || !any_grad) return Var<T>(this, -1, std::move(shared));
    Node node;
    node.op = op;
    node.value = std::move(shared);
    node.inputs.reserve(inputs.size());
    for (const Var<T>& in : inputs) node.inputs.push_back(in.id());
    node.backward = std::move(backward);
    return push(std::move(node));
}

template <class T>
Tensor<T>& Tape<T>::grad_slot(int id) {
    Node& node = nodes_[static_cast<std::size_t>(id)];
    if (!node.has_grad) {
        if (!node.param) node.grad = zeroed_buffer(node.value->shape());
        node.has_grad = true;
    }
    return node.param ? node.param->grad : node.grad;
}

template <class T>
Tensor<T> Tape<T>::zeroed_buffer(const Shape& shape) {
    // Newest spares first: a step that records the same graph again asks for the same sizes in
    // the same order, so the search is short.
    const std::size_t n = shape.numel();
    for (std::size_t i = spare_grads_.size(); i-- > 0;) {
        if (spare_grads_[i].numel() != n) continue;
        Tensor<T> buffer = std::move(spare_grads_[i]);
        spare_grads_[i] = std::move(spare_grads_.back());
        spare_grads_.pop_back();
        buffer.reshape(shape);
        buffer.set_zero();
        return buffer;
    }
    return Tensor<T>(shape);
}

template <class T>
void Tape<T>::backward(const Var<T>& loss) {
    if (loss.tape() != this) fail("Tape::backward: the loss was not computed on this tape");
    if (!loss.requires_grad()) fail("Tape::backward: the loss depends on no parameter or input that needs a gradient");
    if (loss.value().numel() != 1) fail("Tape::backward: the loss must be a scalar, got shape {}", loss.shape().str());
    if (backward_done_) fail("Tape::backward: called twice on one recording; clear() and record again");
    backward_done_ = true;
    if (detect_anomaly_) check_parameter_gradients();
    grad_slot(loss.id()).fill(T(1));
    for (int id = loss.id(); id >= 0; --id) {
        Node& node = nodes_[static_cast<std::size_t>(id)];
        if (!node.backward || !node.has_grad) continue;
        slots_.assign(node.inputs.size(), nullptr);
        for (std::size_t k = 0; k < node.inputs.size(); ++k)
            if (node.inputs[k] >= 0) slots_[k] = &grad_slot(node.inputs[k]);
        run_backward(node, GradSlots(slots_));
        if (detect_anomaly_) check_gradients(id, GradSlots(slots_));
    }
}

template <class T>
void Tape<T>::run_backward(Node& node, GradSlots slots) {
    const Tensor<T>& grad_out = node.param ? node.param->grad : node.grad;
    if (!profile_) {
        node.backward(*node.value, grad_out, slots);
        return;
    }
    const auto start = std::chrono::steady_clock::now();
    node.backward(*node.value, grad_out, slots);
    OpProfile::Entry& e = profile_->at(node.op);
    e.backward_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++e.backward_calls;
}

template <class T>
void Tape<T>::clear() {
    // Spares left unused by this recording are dropped: at most one recording's buffers are kept.
    spare_grads_.clear();
    for (Node& node : nodes_)
        if (!node.grad.empty()) spare_grads_.push_back(std::move(node.grad));
    nodes_.clear();
    backward_done_ = false;
}

template <class T>
const Tensor<T>& Tape<T>::grad(const Var<T>& v) const {
    if (v.tape() != this) fail("Tape::grad: the value was not computed on this tape");
    if (!v.requires_grad()) fail("Tape::grad: the value was not recorded (a constant, or inference mode)");
    const Node& node = nodes_.at(static_cast<std::size_t>(v.id()));
    if (!node.has_grad) fail("Tape::grad: no gradient reached entry {} ({}); call backward() on a loss that uses it", v.id(), node.op);
    return node.param ? node.param->grad : node.grad;
}

template <class T>
bool Tape<T>::has_grad(const Var<T>& v) const {
    return v.tape() == this && v.requires_grad() && nodes_.at(static_cast<std::size_t>(v.id())).has_grad;
}

template <class T>
std::vector<Parameter<T>*> Tape<T>::parameters() const {
    std::vector<Parameter<T>*> out;
    for (const Node& node : nodes_)
        if (node.param && std::find(out.begin(), out.end(), node.param) == out.end()) out.push_back(node.param);
    return out;
}

template <class T>
Var<T> record(const char* op, Tensor<T> value, std::initializer_list<Var<T>> inputs, typename Tape<T>::BackwardFn backward) {
    Tape<T>* tape = nullptr;
    for (const Var<T>& in : inputs) {
        if (!in.value_ptr()) fail("{}: an input is an empty Var", op);
        if (in.tape()) { tape = in.tape(); break; }
    }
    if (!tape) fail("{}: inputs belong to no tape; create them with Tape::constant/input/param", op);
    return tape->record(op, std::move(value), inputs, std::move(backward));
}

template class Tape<float>;
template class Tape<double>;
template class Var<float>;
template class Var<double>;
template Var<float> record(const char*, Tensor<float>, std::initializer_list<Var<float>>, Tape<float>::BackwardFn);
template Var<double> record(const char*, Tensor<double>, std::initializer_list<Var<double>>, Tape<double>::BackwardFn);

}  // namespace mcnn
