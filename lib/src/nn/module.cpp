#include "mcnn/nn/module.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace mcnn {
namespace {

std::string join(const std::string& prefix, const std::string& name) { return prefix.empty() ? name : fmt::format("{}.{}", prefix, name); }

}  // namespace

template <class T>
std::string Module<T>::path() const {
    return parent_ ? join(parent_->path(), name_) : "";
}

template <class T>
void Module<T>::check_new_name(const std::string& name) const {
    const std::string where = path().empty() ? type_name() : fmt::format("'{}' ({})", path(), type_name());
    if (name.empty() || name.find('.') != std::string::npos || name.find('/') != std::string::npos)
        fail("module {}: '{}' is not a valid name for a parameter, buffer or submodule (non-empty, no '.' or '/')", where, name);
    const bool taken = std::any_of(params_.begin(), params_.end(), [&](const auto& p) { return p.first == name; }) ||
                       std::any_of(buffers_.begin(), buffers_.end(), [&](const auto& b) { return b.first == name; }) ||
                       std::any_of(children_.begin(), children_.end(), [&](const Named& c) { return c.name == name; });
    if (taken) fail("module {}: a parameter, buffer or submodule named '{}' is already registered", where, name);
}

template <class T>
Parameter<T>& Module<T>::register_parameter(const std::string& name, Parameter<T>& p) {
    check_new_name(name);
    params_.emplace_back(name, &p);
    p.name = join(path(), name);
    if (p.grad.shape() != p.value.shape()) p.grad = Tensor<T>(p.value.shape());
    return p;
}

template <class T>
Tensor<T>& Module<T>::register_buffer(const std::string& name, Tensor<T>& t) {
    check_new_name(name);
    buffers_.emplace_back(name, &t);
    return t;
}

template <class T>
void Module<T>::add_child(const std::string& name, Module<T>& m) {
    check_new_name(name);
    if (&m == this) fail("module {}: cannot register a module inside itself", type_name());
    if (m.parent_) fail("module {} ('{}') is already registered as '{}'; a module has one place in a model", m.type_name(), name, m.path());
    for (const Module<T>* up = this; up; up = up->parent_)
        if (up == &m) fail("module {}: registering '{}' would make a cycle", type_name(), name);
    m.parent_ = this;
    m.name_ = name;
    children_.push_back({name, m});
    m.rename();
}

template <class T>
void Module<T>::register_modules(std::initializer_list<Named> modules) {
    for (const Named& n : modules) add_child(n.name, n.module);
}

template <class T>
void Module<T>::rename() {
    const std::string prefix = path();
    for (auto& [name, p] : params_) p->name = join(prefix, name);
    for (Named& c : children_) c.module.rename();
}

template <class T>
std::vector<Parameter<T>*> Module<T>::parameters() {
    std::vector<Parameter<T>*> out;
    visit([&](const std::string&, Module<T>& m) {
        for (auto& entry : m.params_) {
            Parameter<T>* p = entry.second;
            const auto seen = std::find(out.begin(), out.end(), p);
            if (seen != out.end())
                fail("parameter '{}' is registered twice in one model (as '{}' and '{}')", p->name, (*seen)->name,
                     join(m.path(), entry.first));
            out.push_back(p);
        }
    });
    return out;
}

template <class T>
std::vector<NamedBuffer<T>> Module<T>::buffers() {
    std::vector<NamedBuffer<T>> out;
    visit([&](const std::string& path, Module<T>& m) {
        for (auto& [name, t] : m.buffers_) {
            const std::string full = join(path, name);
            const auto seen = std::find_if(out.begin(), out.end(), [t = t](const NamedBuffer<T>& b) { return b.tensor == t; });
            if (seen != out.end()) fail("buffer '{}' is registered twice in one model (as '{}' and '{}')", full, seen->name, full);
            out.push_back({full, t});
        }
    });
    return out;
}

template <class T>
std::size_t Module<T>::parameter_count() {
    std::size_t n = 0;
    for (const Parameter<T>* p : parameters()) n += p->value.numel();
    return n;
}

template <class T>
void Module<T>::visit(const std::function<void(const std::string&, Module<T>&)>& f) {
    f(path(), *this);
    for (Named& c : children_) c.module.visit(f);
}

template <class T>
void Module<T>::train(bool on) {
    visit([on](const std::string&, Module<T>& m) { m.training_ = on; });
}

template <class T>
Module<T>& Sequential<T>::add(std::unique_ptr<Module<T>> m, std::string name) {
    if (!m) fail("Sequential::add: the module is null");
    if (name.empty()) name = std::to_string(owned_.size());
    this->register_module(name, *m);
    owned_.push_back(std::move(m));
    return *owned_.back();
}

template <class T>
Var<T> Sequential<T>::forward(const Var<T>& x) {
    if (owned_.empty()) fail("Sequential '{}': no modules to run", this->path());
    Var<T> h = x;
    for (auto& m : owned_) h = m->forward(h);
    return h;
}

template class Module<float>;
template class Module<double>;
template class Sequential<float>;
template class Sequential<double>;

}  // namespace mcnn
