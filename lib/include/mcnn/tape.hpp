#pragma once
// The autodiff tape (define-by-run, reverse mode).
//
// A Tape records each operation as it runs: its output value, which earlier entries it read, and a
// backward function. backward(loss) seeds dL/dloss = 1 and walks the entries once, newest first (a
// plain loop: a graph of any depth uses no stack), calling each backward function with the
// gradient of its output; those functions ADD into the gradients of their inputs, so a value that
// feeds several ops receives the sum. Parameters live outside the tape and keep their gradient
// between steps (zeroed by the optimiser); a tape is recorded afresh for every step and cleared.
// In inference mode the tape records nothing: ops compute values only.
//
// Branch log. Some ops are not differentiable everywhere: relu and leaky_relu bend at 0 (a kink),
// max-pool switches when another element of a window becomes the largest. Which side of such a
// point a forward pass took is a branch decision. While a BranchLog is attached to a tape (in
// either mode) every such op appends one 64-bit signature of its decisions, in op order; the
// numerical gradient check compares the logs of L(x + eps) and L(x - eps) with that of L(x) to
// notice a step that crossed a kink. Without a log the ops pay one pointer test. A new op with
// a kink logs with one call: log_branches(x, "op", count, decision).
//
// Anomaly mode (like torch.autograd.detect_anomaly), switched on per tape with
// set_detect_anomaly(true): every value put on the tape (constants, inputs, parameters, each op's
// output) and, in backward(), every gradient slot a node has just added to is checked, and the
// first NaN or inf throws AnomalyError saying where it arose. A slot is checked after each node
// that adds to it, and parameter gradients once before the pass, so the node named is the one
// whose forward or backward made the first non-finite value. Off (the default) it costs one test
// of a flag per op and per backward node.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "mcnn/tensor.hpp"

namespace mcnn {

/// A trainable tensor: value and gradient, persisting across steps. Its name is its path in the
/// model ("conv1.weight").
template <class T>
struct Parameter {
    Parameter() = default;
    Parameter(std::string name_, Tensor<T> value_) : name(std::move(name_)), value(std::move(value_)), grad(value.shape()) {}
    void zero_grad() { grad.set_zero(); }

    std::string name;
    Tensor<T> value;
    Tensor<T> grad;
};

template <class T>
class Tape;

/// What anomaly mode throws (an mcnn::Error): the first non-finite value on a tape, with the op
/// that made it, the op's position on the tape, forward or backward, the shapes, which input's
/// gradient (in backward), and the index and value of the first bad element.
class AnomalyError : public Error {
public:
    using Error::Error;
};

/// The branch decisions of one forward pass: for each op that logged (relu, leaky_relu,
/// max_pool2d, ...), in the order the ops ran, its name and a hash of its decisions in element
/// order (relu: the sign of each input; max-pool: the winner's index in each window). Two logs
/// are equal when their signatures are. A single changed decision always changes the signature
/// (every step of the hash is a bijection of its state); several changed ones could in principle
/// cancel, as unlikely as any collision of a 64-bit hash.
struct BranchLog {
    struct Entry {
        const char* op;
        std::uint64_t signature;
    };
    std::vector<Entry> entries;

    /// The signature of decision(0), ..., decision(count - 1): FNV-1a over 64-bit words, in four
    /// chains (chain k takes decisions k, k + 4, k + 8, ...: independent chains keep the
    /// multiplier busy), then the four chains' states hashed the same way.
    template <class Decision>
    static std::uint64_t signature(std::size_t count, const Decision& decision) {
        std::uint64_t chain[4] = {start, start, start, start};
        std::size_t i = 0;
        for (; i + 4 <= count; i += 4)
            for (std::size_t k = 0; k < 4; ++k) chain[k] = mix(chain[k], static_cast<std::uint64_t>(decision(i + k)));
        for (; i < count; ++i) chain[i % 4] = mix(chain[i % 4], static_cast<std::uint64_t>(decision(i)));
        return mix(mix(mix(mix(start, chain[0]), chain[1]), chain[2]), chain[3]);
    }
    static constexpr std::uint64_t start = 0xcbf29ce484222325ULL;
    static constexpr std::uint64_t mix(std::uint64_t state, std::uint64_t word) { return (state ^ word) * 0x100000001b3ULL; }

    void clear() { entries.clear(); }
    bool operator==(const BranchLog& other) const;
};

/// Seconds spent in each op, collected while a Tape has a profile attached (benchmarks). An op's
/// forward time is the time from the tape's previous event (a record() or mark()) to its own
/// record() call, which is when its forward has just finished; its backward time is that of its
/// backward function.
struct OpProfile {
    struct Entry {
        const char* op;
        double forward_s = 0, backward_s = 0;
        long forward_calls = 0, backward_calls = 0;
    };
    std::vector<Entry> entries;  // in first-seen order
    Entry& at(const char* op);
    void clear() { entries.clear(); }
};

/// A handle to a value computed on a tape. Cheap to copy; the value is shared, never copied.
template <class T>
class Var {
public:
    Var() = default;

    const Tensor<T>& value() const;
    const Shape& shape() const { return value().shape(); }
    std::shared_ptr<const Tensor<T>> value_ptr() const { return value_; }
    Tape<T>* tape() const { return tape_; }
    /// Index of the tape entry, or -1 when nothing was recorded (inference, or no input needs a gradient).
    int id() const { return id_; }
    bool requires_grad() const { return id_ >= 0; }
    /// dL/d(this value) after Tape::backward(); throws when no gradient reached it.
    const Tensor<T>& grad() const;

    /// For ops given a temporary input (an rvalue Var) that may write their output over it: when
    /// this handle is the only owner of its value (not recorded on a tape, no other handle, not a
    /// parameter), moves the value into `out`, leaves this handle's value empty and returns true;
    /// otherwise changes nothing and returns false. In inference the activations between layers
    /// are such temporaries, so bias and activation then work in place.
    bool take_value(Tensor<T>& out);

private:
    friend class Tape<T>;
    // `value` points to a non-const Tensor (take_value may move from it) or to a parameter, whose
    // owner is empty (use_count 0).
    Var(Tape<T>* tape, int id, std::shared_ptr<const Tensor<T>> value) : tape_(tape), id_(id), value_(std::move(value)) {}

    Tape<T>* tape_ = nullptr;
    int id_ = -1;
    std::shared_ptr<const Tensor<T>> value_;
};

template <class T>
class Tape {
public:
    enum class Mode { train, inference };
    /// Gradient slots of a node's inputs, in the order given to record(); nullptr where an input
    /// needs no gradient (data, constants), so its backward is skipped.
    using GradSlots = std::span<Tensor<T>* const>;
    /// Backward of one node: add dL/d(input k) into *grad_in[k], given the node's output value and
    /// dL/d(output). Must ADD (+=), never assign: the slot may already hold other contributions.
    using BackwardFn = std::function<void(const Tensor<T>& output, const Tensor<T>& grad_output, GradSlots grad_in)>;

    explicit Tape(Mode mode = Mode::train) : mode_(mode) {}
    Tape(const Tape&) = delete;
    Tape& operator=(const Tape&) = delete;

    Mode mode() const { return mode_; }
    bool recording() const { return mode_ == Mode::train; }

    /// A value that needs no gradient (input images, labels' one-hots, fixed weights).
    Var<T> constant(Tensor<T> value);
    /// A leaf that receives a gradient (for example an input whose gradient is checked or drawn).
    Var<T> input(Tensor<T> value);
    /// A parameter as a leaf: its value is used in place; backward adds into `p.grad`.
    Var<T> param(Parameter<T>& p);

    /// Appends an op's result. Recorded only when recording and some input needs a gradient;
    /// otherwise the result is a plain value. All inputs must come from this tape.
    Var<T> record(const char* op, Tensor<T> value, std::initializer_list<Var<T>> inputs, BackwardFn backward);

    /// Reverse pass from a scalar (one-element) `loss` recorded on this tape. Once per recording.
    void backward(const Var<T>& loss);
    /// Drops every entry; parameters keep their values and gradients. The gradient buffers of the
    /// dropped entries are kept as spares: the next recording's backward() reuses those of equal
    /// size (zeroed) instead of allocating, so a training loop allocates them only once.
    void clear();

    /// Attaches a profile that the following ops and backward passes add their times to (nullptr
    /// detaches). The tape does not own it.
    void set_profile(OpProfile* profile) { profile_ = profile; mark(); }
    /// Starts the clock for the next op's forward time (call it before a forward pass).
    void mark() { if (profile_) last_event_ = std::chrono::steady_clock::now(); }

    /// Anomaly mode (see the top of this file): while on, the first NaN or inf among the values
    /// put on this tape and the gradients its backward pass makes throws AnomalyError.
    void set_detect_anomaly(bool on) { detect_anomaly_ = on; }
    bool detect_anomaly() const { return detect_anomaly_; }

    /// Attaches a branch log that the following ops with kinks append to (nullptr detaches). The
    /// tape does not own it and never clears it; it works in both modes.
    void set_branch_log(BranchLog* log) { branch_log_ = log; }
    BranchLog* branch_log() const { return branch_log_; }

    std::size_t size() const { return nodes_.size(); }
    /// Name of the op that produced entry `id` ("leaf", "param", "conv2d", ...).
    const char* op_name(int id) const { return nodes_.at(static_cast<std::size_t>(id)).op; }
    /// The value, inputs (entry ids, -1 for unrecorded values) and parameter (for parameter
    /// leaves, else nullptr) of entry `id`: for summaries and graph dumps.
    const Tensor<T>& value_at(int id) const { return *nodes_.at(static_cast<std::size_t>(id)).value; }
    const std::vector<int>& inputs_of(int id) const { return nodes_.at(static_cast<std::size_t>(id)).inputs; }
    const Parameter<T>* param_at(int id) const { return nodes_.at(static_cast<std::size_t>(id)).param; }
    /// The gradient of a recorded value; throws when it has none.
    const Tensor<T>& grad(const Var<T>& v) const;
    /// Whether backward() sent a gradient to `v` (false for values that do not reach the loss).
    bool has_grad(const Var<T>& v) const;
    /// Parameters used as leaves since the last clear(), in first-use order.
    std::vector<Parameter<T>*> parameters() const;

private:
    struct Node {
        const char* op = "leaf";
        std::shared_ptr<const Tensor<T>> value;
        Tensor<T> grad;                 // dL/d(value), allocated when a gradient first arrives
        bool has_grad = false;
        Parameter<T>* param = nullptr;  // for parameter leaves: gradient goes to param->grad
        std::vector<int> inputs;
        BackwardFn backward;
    };

    Var<T> push(Node node);
    Tensor<T>& grad_slot(int id);
    /// A zeroed gradient buffer of `shape`: a spare of the same size when there is one, else new.
    Tensor<T> zeroed_buffer(const Shape& shape);
    void run_backward(Node& node, GradSlots slots);

    // Anomaly mode's checks; each throws AnomalyError at the first non-finite element.
    void check_leaf(const char* kind, const Tensor<T>& value, const Parameter<T>* param) const;
    void check_output(const char* op, const Tensor<T>& value, std::initializer_list<Var<T>> inputs, bool recorded) const;
    void check_gradients(int id, GradSlots slots) const;
    void check_parameter_gradients() const;
    std::string describe(int id) const;

    Mode mode_;
    std::vector<Node> nodes_;
    std::vector<Tensor<T>> spare_grads_;  // gradient buffers of the previous recording (see clear())
    std::vector<Tensor<T>*> slots_;       // backward()'s gradient slots of one node, reused
    bool backward_done_ = false;
    OpProfile* profile_ = nullptr;
    std::chrono::steady_clock::time_point last_event_;
    BranchLog* branch_log_ = nullptr;
    bool detect_anomaly_ = false;
};

extern template class Tape<float>;
extern template class Tape<double>;
extern template class Var<float>;
extern template class Var<double>;

/// Records an op on the tape its inputs share (inputs from no tape give a plain value).
template <class T>
Var<T> record(const char* op, Tensor<T> value, std::initializer_list<Var<T>> inputs,
              typename Tape<T>::BackwardFn backward);

/// For ops with points where they are not differentiable: when the tape of `x` (the op's input)
/// has a branch log, appends under `op` the signature of decision(0), ..., decision(count - 1),
/// each an integer (a sign as 0/1, a winner's index). Without a log it returns after one pointer
/// test and never calls `decision`. Call it in the op's forward, before record().
template <class T, class Decision>
void log_branches(const Var<T>& x, const char* op, std::size_t count, const Decision& decision) {
    BranchLog* log = x.tape() ? x.tape()->branch_log() : nullptr;
    if (log) log->entries.push_back({op, BranchLog::signature(count, decision)});
}

}  // namespace mcnn
