// The conv layer's paths (see ConvPath): the plain loops of the formulas are the oracle. They match
// scipy (tests/fixtures, see make_fixtures.py) and the numeric gradient; both fast paths
// (correlate2d loops and im2col + GEMM) equal them, forward and both gradients, over many shapes;
// every backward adds into the gradient buffers and takes nullptr for either; the conv2d tape node
// gives the same gradients on every path, and automatic runs the path it says; bad shapes and
// options are refused with messages that name them.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "../lib/src/kernels/sgemm.hpp"
#include "mcnn/check/gradcheck.hpp"
#include "mcnn/ops/correlate2d.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/threads.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;

namespace {

// a + value, element-wise: what a backward that adds `a` leaves in a buffer pre-filled with `value`.
// (Compared as sums, not as differences: subtracting the fill would cost float its precision.)
template <class T>
Tensor<T> plus(const Tensor<T>& a, T value) {
    Tensor<T> out = a;
    out.array() += value;
    return out;
}

struct ConvCase {
    int B, N, H, W, D, F, P, S;
    Shape x() const { return Shape{B, N, H, W}; }
    Shape k() const { return Shape{D, N, F, F}; }
    int Ho() const { return (H + 2 * P - F) / S + 1; }
    int Wo() const { return (W + 2 * P - F) / S + 1; }
    Shape y() const { return Shape{B, D, Ho(), Wo()}; }
    bool uneven() const { return (H + 2 * P - F) % S != 0 || (W + 2 * P - F) % S != 0; }
    Conv2dOptions options(ConvPath path = ConvPath::automatic) const { return {P, S, path}; }
    std::string str() const { return fmt::format("B{} N{} {}x{} D{} F{} P{} S{}", B, N, H, W, D, F, P, S); }
};

// B in {1,3}, N in {1,2,3}, D in {1,4}, F in {1,3,5}, P in 0..3, S in 1..3 over non-square inputs
// with odd and even sides; combinations where the kernel does not fit the padded input are left
// out (those are the error tests).
std::vector<ConvCase> conv_grid() {
    const std::pair<int, int> sizes[] = {{7, 5}, {6, 9}, {5, 8}, {9, 4}, {3, 4}};
    std::vector<ConvCase> out;
    int n = 0;
    for (int B : {1, 3})
        for (int N : {1, 2, 3})
            for (int D : {1, 4})
                for (int F : {1, 3, 5})
                    for (int P = 0; P <= 3; ++P)
                        for (int S = 1; S <= 3; ++S) {
                            const auto [H, W] = sizes[n++ % 5];
                            if (F <= H + 2 * P && F <= W + 2 * P) out.push_back({B, N, H, W, D, F, P, S});
                        }
    return out;
}

// A scalar loss <y, w> recorded as a node of its own (so these tests depend on conv2d alone).
template <class T>
Var<T> dot_loss(const Var<T>& y, const Tensor<T>& w) {
    T v = 0;
    for (std::size_t i = 0; i < w.numel(); ++i) v += y.value()[i] * w[i];
    return record<T>("dot", Tensor<T>(Shape{}, std::vector<T>{v}), {y}, [w](const Tensor<T>&, const Tensor<T>& g, auto slots) {
        if (slots[0]) slots[0]->array() += g[0] * w.array();
    });
}

// <a, wa> + <b, wb>: one scalar from two conv outputs.
template <class T>
Var<T> dot_loss2(const Var<T>& a, const Tensor<T>& wa, const Var<T>& b, const Tensor<T>& wb) {
    T v = (a.value().array() * wa.array()).sum() + (b.value().array() * wb.array()).sum();
    return record<T>("dot2", Tensor<T>(Shape{}, std::vector<T>{v}), {a, b},
                     [wa, wb](const Tensor<T>&, const Tensor<T>& g, auto slots) {
                         if (slots[0]) slots[0]->array() += g[0] * wa.array();
                         if (slots[1]) slots[1]->array() += g[0] * wb.array();
                     });
}

template <class T>
double abs_dot(const Tensor<T>& a, const Tensor<T>& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.numel(); ++i) s += std::abs(static_cast<double>(a[i]) * static_cast<double>(b[i]));
    return s;
}

// One conv path's forward and backward functions, with its name for the messages.
template <class T>
struct PathFunctions {
    const char* name;
    void (*forward)(const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>&);
    void (*backward)(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>*, Tensor<T>*);
};

template <class T>
PathFunctions<T> plain_path() {
    return {"plain", conv::forward_plain<T>, conv::backward_plain<T>};
}

// The paths that run in training, each compared with the plain loops.
template <class T>
std::vector<PathFunctions<T>> fast_paths() {
    return {{"correlate2d", conv::forward_correlate2d<T>, conv::backward_correlate2d<T>},
            {"im2col", conv::forward_im2col<T>, conv::backward_im2col<T>}};
}

// Y, dL/dX and dL/dK of one case.
template <class T>
struct Expected {
    Tensor<T> y, gx, gk;
};

// The oracle: Y (into a buffer of another shape), dX and dK (into zeroed buffers) by the plain loops.
template <class T>
Expected<T> plain_results(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& o) {
    Expected<T> e{Tensor<T>(Shape{2}, std::numeric_limits<T>::quiet_NaN()), Tensor<T>(x.shape()), Tensor<T>(k.shape())};
    conv::forward_plain(x, k, o, e.y);
    conv::backward_plain(x, k, gy, o, &e.gx, &e.gk);
    return e;
}

// `path`'s backward ADDS the gradients `want` holds: into buffers pre-filled with a known value, dX
// and dK together, dX alone and dK alone (the other nullptr); a second call adds again; with both
// nullptr it does nothing.
template <class T>
void check_backward_adds(const PathFunctions<T>& path, const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy,
                         const Conv2dOptions& o, const Expected<T>& want) {
    const T gx_fill = T(0.5), gk_fill = T(-0.25);
    const Tensor<T> gx_plus = plus(want.gx, gx_fill), gk_plus = plus(want.gk, gk_fill);
    const std::string name = path.name;
    Tensor<T> gx(x.shape(), gx_fill), gk(k.shape(), gk_fill);
    path.backward(x, k, gy, o, &gx, &gk);
    check_close(gx, gx_plus, name + " dX (with dK) adds");
    check_close(gk, gk_plus, name + " dK (with dX) adds");
    Tensor<T> gx_only(x.shape(), gx_fill), gk_only(k.shape(), gk_fill);
    path.backward(x, k, gy, o, &gx_only, nullptr);
    path.backward(x, k, gy, o, nullptr, &gk_only);
    check_close(gx_only, gx_plus, name + " dX alone adds");
    check_close(gk_only, gk_plus, name + " dK alone adds");
    path.backward(x, k, gy, o, &gx_only, nullptr);
    path.backward(x, k, gy, o, nullptr, nullptr);
    Tensor<T> twice = want.gx;
    twice.array() *= T(2);
    check_close(gx_only, plus(twice, gx_fill), name + " dX accumulates over two calls");
}

// A few cases small enough for every path: padding, strides that leave input rows unused, a kernel
// larger than the input, a 1 x 1 kernel, batches of 1 to 3.
std::vector<ConvCase> small_cases() {
    return {ConvCase{3, 2, 7, 5, 4, 3, 1, 2}, ConvCase{1, 3, 6, 9, 1, 5, 2, 3}, ConvCase{3, 1, 5, 8, 4, 1, 0, 1},
            ConvCase{1, 2, 3, 4, 2, 5, 1, 1}, ConvCase{2, 2, 6, 7, 3, 4, 2, 1}};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(conv_paths)

BOOST_AUTO_TEST_CASE(grid_covers_the_cases_that_matter) {
    const std::vector<ConvCase> grid = conv_grid();
    int uneven = 0, square = 0, kernel_gt_input = 0;
    for (const ConvCase& c : grid) {
        uneven += c.uneven();
        square += c.H == c.W;
        kernel_gt_input += c.F > c.H || c.F > c.W;
    }
    BOOST_TEST(grid.size() >= 300u);
    BOOST_TEST(uneven >= 100);  // (H + 2P - F) not divisible by the stride
    BOOST_TEST(square == 0);
    BOOST_TEST(kernel_gt_input >= 10);  // fits only thanks to the padding
}

// The plain loops are the oracle: on every case of the grid both fast paths give their Y (into a
// stale buffer of another shape), their dX and dK (into zeroed buffers), and add like they should.
// The plain gradients themselves satisfy <Y, dY> = <X, dX> = <K, dK> (Y is linear in X and in K).
BOOST_AUTO_TEST_CASE_TEMPLATE(fast_paths_equal_the_plain_loops, T, scalar_types) {
    std::mt19937 rng(2024);
    Tensor<T> y;  // reused across cases and paths, as a training loop would
    for (const ConvCase& c : conv_grid()) {
        BOOST_TEST_CONTEXT(c.str()) {
            const Tensor<T> x = uniform<T>(c.x(), rng), k = uniform<T>(c.k(), rng), gy = uniform<T>(c.y(), rng);
            const Conv2dOptions o = c.options();
            BOOST_TEST_REQUIRE(conv::output_shape(c.x(), c.k(), o).str() == c.y().str());
            const Expected<T> want = plain_results(x, k, gy, o);
            BOOST_TEST_REQUIRE(want.y.shape().str() == c.y().str());

            const double yy = dot(want.y, gy), tol = 10 * rtol<T>() * abs_dot(want.y, gy) + 1e-300;
            BOOST_TEST(std::abs(dot(x, want.gx) - yy) <= tol, "<X, dX> = " << dot(x, want.gx) << " but <Y, dY> = " << yy);
            BOOST_TEST(std::abs(dot(k, want.gk) - yy) <= tol, "<K, dK> = " << dot(k, want.gk) << " but <Y, dY> = " << yy);

            for (const PathFunctions<T>& path : fast_paths<T>()) {
                const std::string name = path.name;
                y.resize(Shape{1, 1, 2, 3});  // stale contents of another shape
                y.fill(std::numeric_limits<T>::quiet_NaN());
                path.forward(x, k, o, y);
                check_close(y, want.y, name + " forward");
                Tensor<T> gx(c.x()), gk(c.k());
                path.backward(x, k, gy, o, &gx, &gk);
                check_close(gx, want.gx, name + " dX");
                check_close(gk, want.gk, name + " dK");
                check_backward_adds(path, x, k, gy, o, want);
            }
        }
    }
}

// The plain loops' own contract: Y overwritten in every element (of a NaN-filled buffer); the
// backward adds, into dX and dK together or either alone.
BOOST_AUTO_TEST_CASE_TEMPLATE(plain_loops_write_y_and_add_into_gradients, T, scalar_types) {
    std::mt19937 rng(31);
    for (const ConvCase& c : small_cases()) {
        BOOST_TEST_CONTEXT(c.str()) {
            const Tensor<T> x = uniform<T>(c.x(), rng), k = uniform<T>(c.k(), rng), gy = uniform<T>(c.y(), rng);
            const Expected<T> want = plain_results(x, k, gy, c.options());
            Tensor<T> y(c.y(), std::numeric_limits<T>::quiet_NaN());
            conv::forward_plain(x, k, c.options(), y);
            check_equal(y, want.y, "plain forward into a NaN-filled Y");
            BOOST_TEST((want.gx.array() != T(0)).any());  // the gradients checked below are not trivially zero
            BOOST_TEST((want.gk.array() != T(0)).any());
            check_backward_adds(plain_path<T>(), x, k, gy, c.options(), want);
        }
    }
}

// Every path against scipy (correlate2d / convolve2d loops computed in python, and checked there
// against direct loops over the definition): forward and both gradients.
BOOST_AUTO_TEST_CASE_TEMPLATE(every_path_matches_scipy_fixtures, T, scalar_types) {
    const std::vector<Fixture> cases = load_fixtures("conv2d");
    BOOST_TEST_REQUIRE(cases.size() >= 6u);
    std::vector<PathFunctions<T>> paths = fast_paths<T>();
    paths.insert(paths.begin(), plain_path<T>());
    for (const Fixture& f : cases) {
        const Tensor<T> x = f.tensor("x").cast<T>(), k = f.tensor("k").cast<T>(), gy = f.tensor("gy").cast<T>();
        const Conv2dOptions o{f.integer("padding"), f.integer("stride")};
        for (const PathFunctions<T>& path : paths) {
            const std::string what = f.name() + ": " + path.name;
            Tensor<T> y, gx(x.shape()), gk(k.shape());
            path.forward(x, k, o, y);
            check_close(y, f.tensor("y"), f.exact(), rtol<T>(), what + " forward");
            path.backward(x, k, gy, o, &gx, &gk);
            check_close(gx, f.tensor("gx"), f.exact(), rtol<T>(), what + " dX");
            check_close(gk, f.tensor("gk"), f.exact(), rtol<T>(), what + " dK");
        }
    }
}

// The plain loops against central differences (mcnn::gradcheck, double): dX and dK of the conv2d
// node on the plain path, every element, over the small cases.
BOOST_AUTO_TEST_CASE(plain_loops_pass_the_numeric_gradient_check) {
    Rng rng(40);
    for (const ConvCase& c : small_cases()) {
        BOOST_TEST_CONTEXT(c.str()) {
            BOOST_TEST_REQUIRE((conv::path_to_run(c.k(), c.options(ConvPath::plain)) == ConvPath::plain));
            Parameter<double> k("kernels", uniform(c.k(), rng));
            const Tensor<double> w = uniform(c.y(), rng);
            const GradCheckReport report = gradcheck(
                [&](Tape<double>& tape, const std::vector<Var<double>>& in) {
                    return weighted_sum(conv2d(in[0], tape.param(k), c.options(ConvPath::plain)), w);
                },
                {{"x", uniform(c.x(), rng)}}, {&k});
            BOOST_TEST(report.passed(), report.table());
            BOOST_TEST_REQUIRE(report.entries.size() == 2u);
            BOOST_TEST(report.entries[0].checked == c.x().numel());  // every element of X
            BOOST_TEST(report.entries[1].checked == c.k().numel());  // and of K
        }
    }
}

// The conv2d node on a tape, on every path: its value is the plain forward and Tape::backward
// delivers the plain gradients, adding into a parameter's gradient that already holds something.
BOOST_AUTO_TEST_CASE_TEMPLATE(tape_node_gives_the_same_gradients_on_every_path, T, scalar_types) {
    std::mt19937 rng(77);
    for (const ConvCase& c : small_cases()) {
        const Tensor<T> x = uniform<T>(c.x(), rng), k = uniform<T>(c.k(), rng), w = uniform<T>(c.y(), rng);
        const Expected<T> want = plain_results(x, k, w, c.options());
        for (ConvPath path : {ConvPath::plain, ConvPath::correlate2d, ConvPath::im2col, ConvPath::automatic}) {
            BOOST_TEST_CONTEXT(c.str() << " " << conv_path_name(path)) {
                const T fill = T(0.125);
                Parameter<T> kp("conv.weight", k);
                kp.grad.fill(fill);
                Tape<T> tape;
                const Var<T> xv = tape.input(x);
                const Var<T> y = conv2d(xv, tape.param(kp), c.options(path));
                BOOST_TEST(std::string(tape.op_name(y.id())) == "conv2d");
                check_close(y.value(), want.y, "value");
                tape.backward(dot_loss(y, w));
                check_close(xv.grad(), want.gx, "dX via the tape");
                check_close(kp.grad, plus(want.gk, fill), "dK added into the parameter's gradient");

                // input only (kernels constant) and kernels only (input constant)
                Tape<T> t2;
                const Var<T> x2 = t2.input(x);
                t2.backward(dot_loss(conv2d(x2, t2.constant(k), c.options(path)), w));
                check_close(x2.grad(), want.gx, "dX with constant kernels");
                Parameter<T> kp3("conv.weight", k);
                Tape<T> t3;
                t3.backward(dot_loss(conv2d(t3.constant(x), t3.param(kp3), c.options(path)), w));
                check_close(kp3.grad, want.gk, "dK with a constant input");
            }
        }
        // one input feeding two paths: its gradient is the sum of the two
        BOOST_TEST_CONTEXT(c.str() + " shared input") {
            const Tensor<T> k2 = uniform<T>(c.k(), rng), w2 = uniform<T>(c.y(), rng);
            Tensor<T> gx_both = want.gx;
            conv::backward_plain<T>(x, k2, w2, c.options(), &gx_both, nullptr);
            Tape<T> tape;
            const Var<T> xv = tape.input(x);
            const Var<T> a = conv2d(xv, tape.constant(k), c.options(ConvPath::plain));
            const Var<T> b = conv2d(xv, tape.constant(k2), c.options(ConvPath::im2col));
            tape.backward(dot_loss2(a, w, b, w2));
            check_close(xv.grad(), gx_both, "dX from two conv nodes");
        }
    }
}

BOOST_AUTO_TEST_CASE(channel_mismatch_names_both_shapes) {
    const Tensor<double> x(Shape{2, 3, 5, 5}, 1.0), k(Shape{4, 2, 3, 3}, 1.0), gy(Shape{2, 4, 3, 3}, 1.0);
    Tensor<double> y, gx(x.shape()), gk(k.shape());
    std::vector<std::function<void()>> calls = {
        [&] { conv::output_shape(x.shape(), k.shape(), {}); },
        [&] { conv::forward_plain(x, k, {}, y); },
        [&] { conv::forward_correlate2d(x, k, {}, y); },
        [&] { conv::forward_im2col(x, k, {}, y); },
        [&] { conv::backward_plain(x, k, gy, {}, &gx, &gk); },
        [&] { conv::backward_correlate2d(x, k, gy, {}, &gx, &gk); },
        [&] { conv::backward_im2col(x, k, gy, {}, &gx, &gk); },
    };
    std::vector<std::function<void()>> nodes;
    for (ConvPath path : {ConvPath::plain, ConvPath::correlate2d, ConvPath::im2col, ConvPath::automatic})
        nodes.push_back([&, path] {
            Tape<double> tape;
            conv2d(tape.input(x), tape.input(k), {0, 1, path});
        });
    calls.insert(calls.end(), nodes.begin(), nodes.end());
    for (const auto& call : calls) {
        const std::string msg = error_of(call);
        CHECK_MESSAGE_HAS(msg, "conv2d");
        CHECK_MESSAGE_HAS(msg, "[2, 3, 5, 5]");
        CHECK_MESSAGE_HAS(msg, "[4, 2, 3, 3]");
        CHECK_MESSAGE_HAS(msg, "channels");
    }
}

BOOST_AUTO_TEST_CASE(kernels_must_be_square) {
    const Tensor<double> x(Shape{1, 3, 6, 6}, 1.0), k(Shape{2, 3, 3, 2}, 1.0);
    Tensor<double> y;
    for (const std::string& msg : {error_of([&] { conv::forward_plain(x, k, {}, y); }),
                                   error_of([&] { conv::forward_correlate2d(x, k, {}, y); }),
                                   error_of([&] { conv::forward_im2col(x, k, {}, y); })}) {
        CHECK_MESSAGE_HAS(msg, "conv2d");
        CHECK_MESSAGE_HAS(msg, "square");
        CHECK_MESSAGE_HAS(msg, "[2, 3, 3, 2]");
    }
}

BOOST_AUTO_TEST_CASE(kernel_must_fit_the_padded_input) {
    const Tensor<double> k(Shape{1, 1, 5, 5}, 1.0);
    Tensor<double> y;
    for (auto [h, w, p] : {std::tuple{3, 4, 0}, std::tuple{6, 2, 1}, std::tuple{2, 7, 1}, std::tuple{4, 4, 0}}) {
        const Tensor<double> x(Shape{1, 1, h, w}, 1.0);
        const std::string xs = x.shape().str();
        for (const std::string& msg : {error_of([&] { conv::forward_plain(x, k, {p, 1}, y); }),
                                       error_of([&] { conv::forward_correlate2d(x, k, {p, 1}, y); }),
                                       error_of([&] { conv::forward_im2col(x, k, {p, 2}, y); })}) {
            CHECK_MESSAGE_HAS(msg, "conv2d");
            CHECK_MESSAGE_HAS(msg, "kernel size 5");
            CHECK_MESSAGE_HAS(msg, xs);
            CHECK_MESSAGE_HAS(msg, fmt::format("padding {}", p));
        }
    }
    // an empty (0 x 0) kernel fits nothing
    const Tensor<double> x5(Shape{1, 1, 5, 5}), k0(Shape{1, 1, 0, 0});
    const std::string empty = error_of([&] { conv::forward_im2col(x5, k0, {}, y); });
    CHECK_MESSAGE_HAS(empty, "kernel size 0");
    // padding makes room: 3 x 4 padded by 1 is 5 x 6, one output row and two columns
    const Tensor<double> x(Shape{1, 1, 3, 4}, 1.0);
    BOOST_TEST(conv::output_shape(x.shape(), k.shape(), {1, 1}).str() == "[1, 1, 1, 2]");
    for (const auto& forward : {conv::forward_plain<double>, conv::forward_correlate2d<double>, conv::forward_im2col<double>}) {
        forward(x, k, {1, 1}, y);
        BOOST_TEST(y.shape().str() == "[1, 1, 1, 2]");
        BOOST_TEST(y[0] == 12.0);  // the 3 x 4 ones seen through a 5 x 5 window (of the 5 x 6 padded plane)
        BOOST_TEST(y[1] == 12.0);
    }
}

BOOST_AUTO_TEST_CASE(padding_and_stride_must_be_valid) {
    const Tensor<double> x(Shape{1, 1, 6, 6}, 1.0), k(Shape{1, 1, 3, 3}, 1.0);
    Tensor<double> y;
    for (auto [p, s] : {std::pair{-1, 1}, std::pair{0, 0}, std::pair{1, -2}, std::pair{-3, 0}}) {
        for (const std::string& msg : {error_of([&] { conv::forward_plain(x, k, {p, s}, y); }),
                                       error_of([&] { conv::forward_correlate2d(x, k, {p, s}, y); }),
                                       error_of([&] { conv::forward_im2col(x, k, {p, s}, y); }),
                                       error_of([&] { conv::output_shape(x.shape(), k.shape(), {p, s}); })}) {
            CHECK_MESSAGE_HAS(msg, "conv2d");
            CHECK_MESSAGE_HAS(msg, fmt::format("padding {}", p));
            CHECK_MESSAGE_HAS(msg, fmt::format("stride {}", s));
        }
    }
}

BOOST_AUTO_TEST_CASE(inputs_and_kernels_must_be_4d) {
    Tensor<double> y;
    const Tensor<double> x3(Shape{3, 6, 6}, 1.0), x(Shape{1, 3, 6, 6}, 1.0), k3(Shape{3, 3, 3}, 1.0), k(Shape{1, 3, 3, 3}, 1.0);
    for (const auto& forward : {conv::forward_plain<double>, conv::forward_correlate2d<double>, conv::forward_im2col<double>}) {
        const std::string a = error_of([&] { forward(x3, k, {}, y); });
        CHECK_MESSAGE_HAS(a, "conv2d input");
        CHECK_MESSAGE_HAS(a, "[3, 6, 6]");
        const std::string b = error_of([&] { forward(x, k3, {}, y); });
        CHECK_MESSAGE_HAS(b, "conv2d kernels");
        CHECK_MESSAGE_HAS(b, "[3, 3, 3]");
    }
}

BOOST_AUTO_TEST_CASE(backward_checks_gradient_shapes) {
    std::mt19937 rng(1);
    const ConvCase c{2, 2, 6, 5, 3, 3, 1, 2};
    const Tensor<double> x = uniform<double>(c.x(), rng), k = uniform<double>(c.k(), rng);
    const Tensor<double> gy_bad(Shape{2, 3, 4, 4}, 1.0), gy(c.y(), 1.0);
    Tensor<double> gx(c.x()), gk(c.k()), gx_bad(Shape{2, 2, 9, 5}), gk_bad(Shape{3, 2, 2, 2});
    std::vector<PathFunctions<double>> paths = fast_paths<double>();
    paths.insert(paths.begin(), plain_path<double>());
    for (const PathFunctions<double>& path : paths) {
        BOOST_TEST_CONTEXT(path.name) {
            const Conv2dOptions o = c.options();
            const std::string a = error_of([&] { path.backward(x, k, gy_bad, o, &gx, &gk); });
            CHECK_MESSAGE_HAS(a, "conv2d backward");
            CHECK_MESSAGE_HAS(a, "[2, 3, 4, 4]");
            CHECK_MESSAGE_HAS(a, c.y().str());
            const std::string d = error_of([&] { path.backward(x, k, gy, o, &gx_bad, &gk); });
            CHECK_MESSAGE_HAS(d, "conv2d backward");
            CHECK_MESSAGE_HAS(d, "[2, 2, 9, 5]");
            CHECK_MESSAGE_HAS(d, c.x().str());
            for (const std::string& msg : {error_of([&] { path.backward(x, k, gy, o, nullptr, &gk_bad); }),
                                           error_of([&] { path.backward(x, k, gy, o, &gx, &gk_bad); })}) {
                CHECK_MESSAGE_HAS(msg, "conv2d backward");
                CHECK_MESSAGE_HAS(msg, "[3, 2, 2, 2]");
                CHECK_MESSAGE_HAS(msg, c.k().str());
            }
            // nothing was added by the refused calls
            BOOST_TEST((gx.array() == 0.0).all());
            BOOST_TEST((gk.array() == 0.0).all());
        }
    }
}

BOOST_AUTO_TEST_CASE(path_names_round_trip_and_unknown_names_are_refused) {
    const std::vector<std::string> names = conv_path_names(), want{"plain", "correlate2d", "im2col", "winograd", "automatic"};
    BOOST_TEST(names == want, boost::test_tools::per_element());
    for (ConvPath path : {ConvPath::plain, ConvPath::correlate2d, ConvPath::im2col, ConvPath::winograd, ConvPath::automatic})
        BOOST_TEST((conv_path_from_name(conv_path_name(path)) == path), conv_path_name(path));
    for (const std::string bad : {"fast", "reference", "Plain", ""}) {
        const std::string msg = error_of([&] { conv_path_from_name(bad); });
        CHECK_MESSAGE_HAS(msg, "'" + bad + "'");
        CHECK_MESSAGE_HAS(msg, "plain, correlate2d, im2col, winograd, automatic");
    }
}

// Automatic runs correlate2d for layers with fewer than direct_max_out_channels output channels at
// stride 1 (faster there) and im2col otherwise: the node on automatic gives the very bits of the
// node on the path it names, and not those of the other path (which sums in another order). The
// other paths run as named.
BOOST_AUTO_TEST_CASE(automatic_runs_the_path_it_says) {
    const int few = conv::direct_max_out_channels - 1, many = conv::direct_max_out_channels;
    BOOST_TEST(conv::automatic_uses_correlate2d(Shape{few, 3, 5, 5}, {0, 1}));
    BOOST_TEST(conv::automatic_uses_correlate2d(Shape{few, 16, 3, 3}, {2, 1}));
    BOOST_TEST(!conv::automatic_uses_correlate2d(Shape{many, 3, 5, 5}, {0, 1}));
    BOOST_TEST(!conv::automatic_uses_correlate2d(Shape{few, 3, 5, 5}, {0, 2}));  // strided: im2col
    BOOST_TEST((Conv2dOptions{}.path == ConvPath::automatic));
    for (const Shape& k : {Shape{few, 3, 5, 5}, Shape{many, 3, 5, 5}}) {
        for (ConvPath path : {ConvPath::plain, ConvPath::correlate2d, ConvPath::im2col})
            BOOST_TEST((conv::path_to_run(k, {0, 1, path}) == path), conv_path_name(path));
        BOOST_TEST((conv::path_to_run(k, {0, 2, ConvPath::automatic}) == ConvPath::im2col));
    }
    BOOST_TEST((conv::path_to_run(Shape{few, 3, 5, 5}, {1, 1}) == ConvPath::correlate2d));
    BOOST_TEST((conv::path_to_run(Shape{many, 3, 5, 5}, {1, 1}) == ConvPath::im2col));

    std::mt19937 rng(12);
    const Tensor<double> images = uniform<double>(Shape{3, 3, 12, 12}, rng);
    for (int d : {few, many}) {
        BOOST_TEST_CONTEXT(d << " output channels") {
            const Tensor<double> kernels = uniform<double>(Shape{d, 3, 5, 5}, rng);
            auto run = [&](ConvPath path) {
                Tape<double> tape;
                const Var<double> x = tape.input(images);
                Parameter<double> k("k", kernels);
                const Var<double> y = conv2d(x, tape.param(k), {1, 1, path});
                tape.backward(weighted_sum(y, Tensor<double>(y.shape(), 0.5)));
                return std::tuple{y.value(), x.grad(), k.grad};
            };
            const ConvPath named = d == few ? ConvPath::correlate2d : ConvPath::im2col;
            const ConvPath other = d == few ? ConvPath::im2col : ConvPath::correlate2d;
            const auto [ya, gxa, gka] = run(ConvPath::automatic);
            const auto [yn, gxn, gkn] = run(named);
            const auto [yo, gxo, gko] = run(other);
            check_equal(ya, yn, "y");
            check_equal(gxa, gxn, "dX");
            check_equal(gka, gkn, "dK");
            check_close(gka, gko, "dK of the other path, up to rounding");
            BOOST_TEST(!(gka.array() == gko.array()).all());  // summed in another order: truly not the other path
        }
    }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(im2col_path_does_not_depend_on_the_thread_count, T, scalar_types) {
    // Large enough that the groups run in parallel regions; Y, dX and dK (added onto a buffer that
    // holds a value already) bit for bit the same on 1, 2 and 3 threads: dK's chunks are fixed.
    std::mt19937 rng(11);
    const Tensor<T> x = uniform<T>(Shape{16, 3, 32, 32}, rng), k = uniform<T>(Shape{8, 3, 5, 5}, rng);
    const Conv2dOptions o{2, 1, ConvPath::im2col};
    const Tensor<T> gy = uniform<T>(conv::output_shape(x.shape(), k.shape(), o), rng), gk0 = uniform<T>(k.shape(), rng);
    auto run = [&](int threads) {
        const ThreadLimit limit(threads);
        Tensor<T> y, gx(x.shape()), gk = gk0;
        conv::forward_im2col(x, k, o, y);
        conv::backward_im2col(x, k, gy, o, &gx, &gk);
        return std::tuple{y, gx, gk};
    };
    const auto [y1, gx1, gk1] = run(1);
    for (int threads : {2, 3}) {
        const auto [yt, gxt, gkt] = run(threads);
        const std::string what = fmt::format(", {} threads vs 1", threads);
        check_equal(yt, y1, "y" + what);
        check_equal(gxt, gx1, "dX" + what);
        check_equal(gkt, gk1, "dK" + what);
    }
    Tensor<T> want_gk = plain_results(x, k, gy, o).gk;
    want_gk.array() += gk0.array();
    check_close(gk1, want_gk, "dK added onto a filled buffer vs the plain loops");
}

BOOST_AUTO_TEST_CASE(im2col_groups_equal_the_plain_loops_on_every_sgemm_kernel) {
    // Shapes whose planes put 1 image (24x24), 2 (16x16: groups 2, 2, 1), 4 (9x9 at F5 P3) and all
    // 7 (3x3 at stride 2) into one GEMM (see conv2d_im2col.cpp), on every micro-kernel this CPU
    // runs and on 1 and 2 threads: Y, dX and dK bit for bit the same whatever the thread count.
    // The 24x24 plane takes float's cols-buffer form for Y and dX, the others the implicit one; the
    // 3x3 plane's Y_G goes through a scratch matrix (narrower than 4 GEMM tiles), the others' tiles
    // straight into Y's images, and every group's dY is read where it lies in the batch.
    const ConvCase cases[] = {{3, 2, 24, 24, 5, 3, 1, 1}, {5, 3, 16, 16, 7, 3, 1, 1}, {4, 3, 9, 9, 17, 5, 3, 1},
                              {7, 4, 5, 5, 13, 3, 1, 2}};
    const kernels::CpuKernel saved = kernels::sgemm_kernel();
    std::mt19937 rng(12);
    for (const ConvCase& c : cases) {
        const Tensor<float> x = uniform<float>(c.x(), rng), k = uniform<float>(c.k(), rng), gy = uniform<float>(c.y(), rng);
        const Expected<float> want = plain_results(x, k, gy, c.options());
        for (kernels::CpuKernel kernel : {kernels::CpuKernel::portable, kernels::CpuKernel::avx2, kernels::CpuKernel::avx512}) {
            if (!kernels::cpu_supports(kernel)) continue;
            kernels::set_sgemm_kernel(kernel);
            std::vector<Tensor<float>> y(2), gx(2, Tensor<float>(c.x())), gk(2, Tensor<float>(c.k()));
            for (int threads : {1, 2}) {
                const ThreadLimit limit(threads);
                conv::forward_im2col(x, k, c.options(), y[threads - 1]);
                conv::backward_im2col(x, k, gy, c.options(), &gx[threads - 1], &gk[threads - 1]);
            }
            const std::string what = c.str() + " on " + kernels::cpu_kernel_name(kernel);
            check_close(y[0], want.y, what + ": Y");
            check_close(gx[0], want.gx, what + ": dX");
            check_close(gk[0], want.gk, what + ": dK");
            check_equal(y[1], y[0], what + ": Y, 2 threads vs 1");
            check_equal(gx[1], gx[0], what + ": dX, 2 threads vs 1");
            check_equal(gk[1], gk[0], what + ": dK, 2 threads vs 1");
        }
    }
    kernels::set_sgemm_kernel(saved);
}

BOOST_AUTO_TEST_SUITE_END()
