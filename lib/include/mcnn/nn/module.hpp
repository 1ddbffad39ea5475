#pragma once
// Modules: a model is a plain struct of layers with a forward().
//
//   template <class T>
//   struct TinyNet : Module<T> {
//       Conv2d<T> conv;
//       Linear<T> fc;
//       explicit TinyNet(Rng& rng) : conv({.in_channels = 3, .out_channels = 8, .kernel = 3}, rng), fc(8 * 15 * 15, 10, rng) {
//           this->register_modules({{"conv", conv}, {"fc", fc}});
//       }
//       Var<T> forward(const Var<T>& x) override { return fc(flatten(max_pool2d(relu(conv(x)), 2))); }
//   };
//
// Registration is the one list of what a module holds: parameters() walks it (depth first, in
// registration order) and every parameter's name is its path from the outermost module
// ("block1.conv.weight"), kept up to date as modules are registered into others, whatever the
// order. Modules register members by reference, so a module can be neither copied nor moved: make
// it where it lives (a member, a local, std::make_unique).
//
// Buffers are the non-trained state a module owns (batch norm's running statistics): registered
// like parameters (register_buffer), listed by buffers() with their paths ("bn1.running_mean"),
// saved in checkpoints next to the parameters and checked for non-finite values like them; no
// gradient, no optimiser.
//
// Train/eval mode (train(), eval(), is_training()) is a property of the modules, set on a whole
// tree at once; whether ops are recorded for backward is the tape's business (Tape::Mode). Layers
// that behave differently while training (dropout, batch norm) read is_training().
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "mcnn/tape.hpp"

namespace mcnn {

/// A module's buffer: its path in the model ("bn1.running_mean") and the tensor (a member of its module).
template <class T>
struct NamedBuffer {
    std::string name;
    Tensor<T>* tensor;
};

template <class T>
class Module {
public:
    /// A submodule with the name it is registered under (for register_modules).
    struct Named {
        std::string name;
        Module<T>& module;
    };

    Module() = default;
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;
    virtual ~Module() = default;

    /// Records the forward graph on the tape of `x` and returns its output.
    virtual Var<T> forward(const Var<T>& x) = 0;
    Var<T> operator()(const Var<T>& x) { return forward(x); }

    /// The kind of module, for summaries and pictures ("Conv2d", "SimpleCNN").
    virtual std::string type_name() const { return "Module"; }
    /// One line on this module's settings ("3 -> 16, kernel 5, padding 3"); empty when none.
    virtual std::string describe() const { return ""; }
    /// Data-dependent initialisation (FastNet's whitening filters): fit() calls it on the outermost
    /// module once, before the first step of a new run (not on resume: the checkpoint holds what
    /// it set), with the first data_init_examples() training examples (fewer when the data holds
    /// fewer) as training fills them, not augmented. Default: nothing.
    virtual void init_from_data(const Tensor<T>& examples) { (void)examples; }
    /// How many examples init_from_data() wants; 0 (the default): fit does not call it.
    virtual std::size_t data_init_examples() const { return 0; }

    /// Every parameter of this module and of its submodules, depth first in registration order;
    /// each named by its path. Throws when one parameter object was registered twice.
    std::vector<Parameter<T>*> parameters();
    /// Every buffer of this module and of its submodules, depth first in registration order, each
    /// named by its path. Throws when one tensor was registered twice.
    std::vector<NamedBuffer<T>> buffers();
    /// Total number of parameter elements.
    std::size_t parameter_count();
    /// Calls `visit(path, module)` for this module ("" as its path) and every submodule, depth first.
    void visit(const std::function<void(const std::string& path, Module<T>& module)>& visit);
    /// The submodules registered directly in this one, with their names.
    const std::vector<Named>& children() const { return children_; }
    /// This module's path from the outermost module that holds it ("" for that one).
    std::string path() const;

    /// Puts this module and every submodule in training mode (`on`) or evaluation mode.
    void train(bool on = true);
    void eval() { train(false); }
    bool is_training() const { return training_; }

protected:
    /// Registers `p` (a member of this module) as parameter `name`; its name becomes its path and its
    /// gradient buffer is allocated (zeros, the shape of its value).
    Parameter<T>& register_parameter(const std::string& name, Parameter<T>& p);
    /// Registers `t` (a member of this module) as buffer `name`: state that is saved and restored
    /// with the parameters but not trained.
    Tensor<T>& register_buffer(const std::string& name, Tensor<T>& t);
    /// Registers `m` (a member, or a module this one owns) as submodule `name`.
    template <class M>
    M& register_module(const std::string& name, M& m) {
        add_child(name, m);
        return m;
    }
    /// Registers several submodules: register_modules({{"conv1", conv1}, {"fc", fc}}).
    void register_modules(std::initializer_list<Named> modules);

private:
    void add_child(const std::string& name, Module<T>& m);
    void check_new_name(const std::string& name) const;
    void rename();  // gives every parameter in this subtree its path

    Module<T>* parent_ = nullptr;
    std::string name_;
    std::vector<std::pair<std::string, Parameter<T>*>> params_;
    std::vector<std::pair<std::string, Tensor<T>*>> buffers_;
    std::vector<Named> children_;
    bool training_ = true;
};

/// Puts a module in eval mode for a scope (batch norm on its running statistics, no dropout), then
/// back in the mode it had, also when the scope ends by an exception:
///   { const EvalModeScope<float> eval_mode(model); logits = model.forward(x); }
template <class T>
class EvalModeScope {
public:
    explicit EvalModeScope(Module<T>& model) : model_(model), was_training_(model.is_training()) { model_.eval(); }
    ~EvalModeScope() { model_.train(was_training_); }
    EvalModeScope(const EvalModeScope&) = delete;
    EvalModeScope& operator=(const EvalModeScope&) = delete;

private:
    Module<T>& model_;
    bool was_training_;
};

/// A chain of modules, each fed the previous one's output; submodules are named "0", "1", ...
/// unless given a name.
///   Sequential<float> net;
///   net.emplace<Conv2d<float>>(Conv2dSpec{.in_channels = 3, .out_channels = 8, .kernel = 3}, rng);
///   net.emplace<ReLU<float>>();
template <class T>
class Sequential : public Module<T> {
public:
    Sequential() = default;
    /// Appends `m` (owned) under `name` (default: its index) and returns it.
    Module<T>& add(std::unique_ptr<Module<T>> m, std::string name = "");
    /// Constructs an M from `args` at the end of the chain and returns it.
    template <class M, class... Args>
    M& emplace(Args&&... args) {
        auto m = std::make_unique<M>(std::forward<Args>(args)...);
        M& ref = *m;
        add(std::move(m));
        return ref;
    }
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "Sequential"; }
    std::size_t size() const { return owned_.size(); }
    Module<T>& operator[](std::size_t i) { return *owned_.at(i); }

private:
    std::vector<std::unique_ptr<Module<T>>> owned_;
};

/// A module around a function of one input, for ops without parameters in a Sequential:
///   net.emplace<Lambda<float>>("relu", [](const Var<float>& x) { return relu(x); });
template <class T>
class Lambda : public Module<T> {
public:
    Lambda(std::string type, std::function<Var<T>(const Var<T>&)> f) : type_(std::move(type)), f_(std::move(f)) {}
    Var<T> forward(const Var<T>& x) override { return f_(x); }
    std::string type_name() const override { return type_; }

private:
    std::string type_;
    std::function<Var<T>(const Var<T>&)> f_;
};

extern template class Module<float>;
extern template class Module<double>;
extern template class Sequential<float>;
extern template class Sequential<double>;

}  // namespace mcnn
