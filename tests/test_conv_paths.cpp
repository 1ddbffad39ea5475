// The conv layer's two paths (reference loops of correlate2d vs im2col + GEMM) give the same
// forward and backward over many shapes; both match scipy (tests/fixtures, see make_fixtures.py);
// backward adds into the gradient buffers; the conv2d tape node gives the same gradients on either
// path; bad shapes and options are refused with messages that name them.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

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
    Conv2dOptions options(ConvPath path = ConvPath::fast) const { return {P, S, path}; }
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

// forward_fast = forward_reference, and the backward of both paths agree, for gx alone, gk alone
// and both; every backward adds into buffers pre-filled with a known value.
BOOST_AUTO_TEST_CASE_TEMPLATE(fast_path_equals_reference_path, T, scalar_types) {
    std::mt19937 rng(2024);
    const T gx_fill = T(0.5), gk_fill = T(-0.25);
    Tensor<T> y_fast;  // reused across cases, as a training loop would
    for (const ConvCase& c : conv_grid()) {
        BOOST_TEST_CONTEXT(c.str()) {
            const Tensor<T> x = uniform<T>(c.x(), rng), k = uniform<T>(c.k(), rng), gy = uniform<T>(c.y(), rng);
            BOOST_TEST_REQUIRE(conv::output_shape(c.x(), c.k(), c.options()).str() == c.y().str());

            Tensor<T> y_ref(Shape{2}, std::numeric_limits<T>::quiet_NaN());
            conv::forward_reference(x, k, c.options(ConvPath::reference), y_ref);
            y_fast.resize(Shape{1, 1, 2, 3});  // stale contents of another shape
            y_fast.fill(std::numeric_limits<T>::quiet_NaN());
            conv::forward_fast(x, k, c.options(), y_fast);
            check_close(y_fast, y_ref, "forward");

            // reference backward into zeroed buffers: the gradients themselves
            Tensor<T> gx(c.x()), gk(c.k());
            conv::backward_reference(x, k, gy, c.options(ConvPath::reference), &gx, &gk);

            // the same gradients satisfy <Y, dY> = <X, dX> = <K, dK> (Y is linear in X and in K)
            const double yy = dot(y_ref, gy), tol = 10 * rtol<T>() * abs_dot(y_ref, gy) + 1e-300;
            BOOST_TEST(std::abs(dot(x, gx) - yy) <= tol, "<X, dX> = " << dot(x, gx) << " but <Y, dY> = " << yy);
            BOOST_TEST(std::abs(dot(k, gk) - yy) <= tol, "<K, dK> = " << dot(k, gk) << " but <Y, dY> = " << yy);

            // fast path into zeroed buffers: the same gradients
            Tensor<T> fx0(c.x()), fk0(c.k());
            conv::backward_fast(x, k, gy, c.options(), &fx0, &fk0);
            check_close(fx0, gx, "fast dX");
            check_close(fk0, gk, "fast dK");

            // both paths ADD: into pre-filled buffers, both gradients, dX alone and dK alone
            const Tensor<T> gx_plus = plus(gx, gx_fill), gk_plus = plus(gk, gk_fill);
            Tensor<T> gx_acc(c.x(), gx_fill), gk_acc(c.k(), gk_fill);
            conv::backward_reference(x, k, gy, c.options(ConvPath::reference), &gx_acc, &gk_acc);
            check_close(gx_acc, gx_plus, "reference dX adds");
            check_close(gk_acc, gk_plus, "reference dK adds");
            Tensor<T> gx_only(c.x(), gx_fill), gk_only(c.k(), gk_fill);
            conv::backward_reference<T>(x, k, gy, c.options(ConvPath::reference), &gx_only, nullptr);
            conv::backward_reference<T>(x, k, gy, c.options(ConvPath::reference), nullptr, &gk_only);
            check_close(gx_only, gx_plus, "reference dX alone adds");
            check_close(gk_only, gk_plus, "reference dK alone adds");

            Tensor<T> fx(c.x(), gx_fill), fk(c.k(), gk_fill);
            conv::backward_fast(x, k, gy, c.options(), &fx, &fk);
            check_close(fx, gx_plus, "fast dX (with dK) adds");
            check_close(fk, gk_plus, "fast dK (with dX) adds");
            Tensor<T> fx_only(c.x(), gx_fill), fk_only(c.k(), gk_fill);
            conv::backward_fast<T>(x, k, gy, c.options(), &fx_only, nullptr);
            conv::backward_fast<T>(x, k, gy, c.options(), nullptr, &fk_only);
            check_close(fx_only, gx_plus, "fast dX alone adds");
            check_close(fk_only, gk_plus, "fast dK alone adds");
            // and a second call adds again
            conv::backward_fast<T>(x, k, gy, c.options(), &fx_only, nullptr);
            Tensor<T> twice = gx;
            twice.array() *= T(2);
            check_close(fx_only, plus(twice, gx_fill), "fast dX accumulates over two calls");
        }
    }
}

// Both paths against scipy (correlate2d / convolve2d loops computed in python, and checked there
// against direct loops over the definition): forward and both gradients.
BOOST_AUTO_TEST_CASE_TEMPLATE(both_paths_match_scipy_fixtures, T, scalar_types) {
    const std::vector<Fixture> cases = load_fixtures("conv2d");
    BOOST_TEST_REQUIRE(cases.size() >= 6u);
    for (const Fixture& f : cases) {
        const Tensor<T> x = f.tensor("x").cast<T>(), k = f.tensor("k").cast<T>(), gy = f.tensor("gy").cast<T>();
        const Conv2dOptions ref{f.integer("padding"), f.integer("stride"), ConvPath::reference};
        const Conv2dOptions fast{f.integer("padding"), f.integer("stride"), ConvPath::fast};
        const bool exact = f.exact();
        Tensor<T> y;
        conv::forward_reference(x, k, ref, y);
        check_close(y, f.tensor("y"), exact, rtol<T>(), f.name() + ": reference forward");
        conv::forward_fast(x, k, fast, y);
        check_close(y, f.tensor("y"), exact, rtol<T>(), f.name() + ": fast forward");
        Tensor<T> gx(x.shape()), gk(k.shape());
        conv::backward_reference(x, k, gy, ref, &gx, &gk);
        check_close(gx, f.tensor("gx"), exact, rtol<T>(), f.name() + ": reference dX");
        check_close(gk, f.tensor("gk"), exact, rtol<T>(), f.name() + ": reference dK");
        gx.set_zero();
        gk.set_zero();
        conv::backward_fast(x, k, gy, fast, &gx, &gk);
        check_close(gx, f.tensor("gx"), exact, rtol<T>(), f.name() + ": fast dX");
        check_close(gk, f.tensor("gk"), exact, rtol<T>(), f.name() + ": fast dK");
    }
}

// The conv2d node on a tape, on either path: its value is the reference forward and Tape::backward
// delivers the reference gradients, adding into a parameter's gradient that already holds something.
BOOST_AUTO_TEST_CASE_TEMPLATE(tape_node_gives_the_same_gradients_on_both_paths, T, scalar_types) {
    std::mt19937 rng(77);
    for (const ConvCase& c : {ConvCase{3, 2, 7, 5, 4, 3, 1, 2}, ConvCase{1, 3, 6, 9, 1, 5, 2, 3}, ConvCase{3, 1, 5, 8, 4, 1, 0, 1},
                              ConvCase{1, 2, 3, 4, 2, 5, 1, 1}}) {
        const Tensor<T> x = uniform<T>(c.x(), rng), k = uniform<T>(c.k(), rng), w = uniform<T>(c.y(), rng);
        Tensor<T> y_ref, gx_ref(c.x()), gk_ref(c.k());
        conv::forward_reference(x, k, c.options(ConvPath::reference), y_ref);
        conv::backward_reference(x, k, w, c.options(ConvPath::reference), &gx_ref, &gk_ref);
        for (ConvPath path : {ConvPath::reference, ConvPath::fast}) {
            const std::string what = c.str() + (path == ConvPath::fast ? " fast" : " reference");
            BOOST_TEST_CONTEXT(what) {
                const T fill = T(0.125);
                Parameter<T> kp("conv.weight", k);
                kp.grad.fill(fill);
                Tape<T> tape;
                const Var<T> xv = tape.input(x);
                const Var<T> y = conv2d(xv, tape.param(kp), c.options(path));
                BOOST_TEST(std::string(tape.op_name(y.id())) == "conv2d");
                check_close(y.value(), y_ref, "value");
                tape.backward(dot_loss(y, w));
                check_close(xv.grad(), gx_ref, "dX via the tape");
                check_close(kp.grad, plus(gk_ref, fill), "dK added into the parameter's gradient");

                // input only (kernels constant) and kernels only (input constant)
                Tape<T> t2;
                const Var<T> x2 = t2.input(x);
                t2.backward(dot_loss(conv2d(x2, t2.constant(k), c.options(path)), w));
                check_close(x2.grad(), gx_ref, "dX with constant kernels");
                Parameter<T> kp3("conv.weight", k);
                Tape<T> t3;
                t3.backward(dot_loss(conv2d(t3.constant(x), t3.param(kp3), c.options(path)), w));
                check_close(kp3.grad, gk_ref, "dK with a constant input");
            }
        }
        // one input feeding both paths: its gradient is the sum of the two
        BOOST_TEST_CONTEXT(c.str() + " shared input") {
            const Tensor<T> k2 = uniform<T>(c.k(), rng), w2 = uniform<T>(c.y(), rng);
            Tensor<T> gx_both = gx_ref;
            conv::backward_reference<T>(x, k2, w2, c.options(ConvPath::reference), &gx_both, nullptr);
            Tape<T> tape;
            const Var<T> xv = tape.input(x);
            const Var<T> a = conv2d(xv, tape.constant(k), c.options(ConvPath::reference));
            const Var<T> b = conv2d(xv, tape.constant(k2), c.options(ConvPath::fast));
            tape.backward(dot_loss2(a, w, b, w2));
            check_close(xv.grad(), gx_both, "dX from two conv nodes");
        }
    }
}

BOOST_AUTO_TEST_CASE(channel_mismatch_names_both_shapes) {
    const Tensor<double> x(Shape{2, 3, 5, 5}, 1.0), k(Shape{4, 2, 3, 3}, 1.0), gy(Shape{2, 4, 3, 3}, 1.0);
    Tensor<double> y, gx(x.shape()), gk(k.shape());
    const Conv2dOptions ref{0, 1, ConvPath::reference};
    const std::vector<std::function<void()>> calls = {
        [&] { conv::output_shape(x.shape(), k.shape(), {}); },
        [&] { conv::forward_reference(x, k, ref, y); },
        [&] { conv::forward_fast(x, k, {}, y); },
        [&] { conv::backward_reference(x, k, gy, ref, &gx, &gk); },
        [&] {
            Tape<double> tape;
            conv2d(tape.input(x), tape.input(k), ref);
        },
        [&] {
            Tape<double> tape;
            conv2d(tape.input(x), tape.input(k), {});
        },
    };
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
    for (const std::string& msg : {error_of([&] { conv::forward_reference(x, k, {0, 1, ConvPath::reference}, y); }),
                                   error_of([&] { conv::forward_fast(x, k, {}, y); })}) {
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
        for (const std::string& msg : {error_of([&] { conv::forward_reference(x, k, {p, 1, ConvPath::reference}, y); }),
                                       error_of([&] { conv::forward_fast(x, k, {p, 2, ConvPath::fast}, y); })}) {
            CHECK_MESSAGE_HAS(msg, "conv2d");
            CHECK_MESSAGE_HAS(msg, "kernel size 5");
            CHECK_MESSAGE_HAS(msg, xs);
            CHECK_MESSAGE_HAS(msg, fmt::format("padding {}", p));
        }
    }
    // an empty (0 x 0) kernel fits nothing
    const Tensor<double> x5(Shape{1, 1, 5, 5}), k0(Shape{1, 1, 0, 0});
    const std::string empty = error_of([&] { conv::forward_fast(x5, k0, {}, y); });
    CHECK_MESSAGE_HAS(empty, "kernel size 0");
    // padding makes room: 3 x 4 padded by 1 is 5 x 6, one output row and two columns
    const Tensor<double> x(Shape{1, 1, 3, 4}, 1.0);
    BOOST_TEST(conv::output_shape(x.shape(), k.shape(), {1, 1}).str() == "[1, 1, 1, 2]");
    conv::forward_fast(x, k, {1, 1}, y);
    BOOST_TEST(y.shape().str() == "[1, 1, 1, 2]");
    BOOST_TEST(y[0] == 12.0);  // the 3 x 4 ones seen through a 5 x 5 window (of the 5 x 6 padded plane)
    BOOST_TEST(y[1] == 12.0);
}

BOOST_AUTO_TEST_CASE(padding_and_stride_must_be_valid) {
    const Tensor<double> x(Shape{1, 1, 6, 6}, 1.0), k(Shape{1, 1, 3, 3}, 1.0);
    Tensor<double> y;
    for (auto [p, s] : {std::pair{-1, 1}, std::pair{0, 0}, std::pair{1, -2}, std::pair{-3, 0}}) {
        for (const std::string& msg : {error_of([&] { conv::forward_reference(x, k, {p, s, ConvPath::reference}, y); }),
                                       error_of([&] { conv::forward_fast(x, k, {p, s, ConvPath::fast}, y); }),
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
    const std::string a = error_of([&] { conv::forward_fast(x3, k, {}, y); });
    CHECK_MESSAGE_HAS(a, "conv2d input");
    CHECK_MESSAGE_HAS(a, "[3, 6, 6]");
    const std::string b = error_of([&] { conv::forward_reference(x, k3, {0, 1, ConvPath::reference}, y); });
    CHECK_MESSAGE_HAS(b, "conv2d kernels");
    CHECK_MESSAGE_HAS(b, "[3, 3, 3]");
}

BOOST_AUTO_TEST_CASE(backward_checks_gradient_shapes) {
    std::mt19937 rng(1);
    const ConvCase c{2, 2, 6, 5, 3, 3, 1, 2};
    const Tensor<double> x = uniform<double>(c.x(), rng), k = uniform<double>(c.k(), rng);
    Tensor<double> y;
    conv::forward_fast(x, k, c.options(), y);
    const Tensor<double> gy_bad(Shape{2, 3, 4, 4}, 1.0), gy(c.y(), 1.0);
    Tensor<double> gx(c.x()), gk(c.k()), gx_bad(Shape{2, 2, 9, 5}), gk_bad(Shape{3, 2, 2, 2});
    const Conv2dOptions ref = c.options(ConvPath::reference);
    const std::string a = error_of([&] { conv::backward_reference(x, k, gy_bad, ref, &gx, &gk); });
    CHECK_MESSAGE_HAS(a, "conv2d backward");
    CHECK_MESSAGE_HAS(a, "[2, 3, 4, 4]");
    CHECK_MESSAGE_HAS(a, c.y().str());
    const std::string b = error_of([&] { conv::backward_fast(x, k, gy_bad, c.options(), &gx, &gk); });
    CHECK_MESSAGE_HAS(b, "conv2d backward");
    CHECK_MESSAGE_HAS(b, "[2, 3, 4, 4]");
    const std::string d = error_of([&] { conv::backward_reference<double>(x, k, gy, ref, &gx_bad, nullptr); });
    CHECK_MESSAGE_HAS(d, "conv2d backward");
    CHECK_MESSAGE_HAS(d, "[2, 2, 9, 5]");
    const std::string e = error_of([&] { conv::backward_fast<double>(x, k, gy, c.options(), &gx_bad, nullptr); });
    CHECK_MESSAGE_HAS(e, "conv2d backward");
    for (const std::string& msg : {error_of([&] { conv::backward_reference<double>(x, k, gy, ref, nullptr, &gk_bad); }),
                                   error_of([&] { conv::backward_fast<double>(x, k, gy, c.options(), nullptr, &gk_bad); })}) {
        CHECK_MESSAGE_HAS(msg, "conv2d backward");
        CHECK_MESSAGE_HAS(msg, "[3, 2, 2, 2]");
        CHECK_MESSAGE_HAS(msg, c.k().str());
    }
    // nothing was added by the refused calls
    BOOST_TEST((gx.array() == 0.0).all());
    BOOST_TEST((gk.array() == 0.0).all());
}

// The fast path hands layers with few output channels at stride 1 to the reference loops (they are
// faster there); the node then gives exactly what the reference node gives. Otherwise it is im2col
// + GEMM, equal to the reference up to rounding.
BOOST_AUTO_TEST_CASE(fast_path_runs_the_reference_loops_for_few_output_channels) {
    BOOST_TEST(conv::fast_path_uses_loops(Shape{6, 3, 5, 5}, {0, 1, ConvPath::fast}));
    BOOST_TEST(conv::fast_path_uses_loops(Shape{conv::direct_max_out_channels - 1, 16, 3, 3}, {2, 1, ConvPath::fast}));
    BOOST_TEST(!conv::fast_path_uses_loops(Shape{conv::direct_max_out_channels, 3, 5, 5}, {0, 1, ConvPath::fast}));
    BOOST_TEST(!conv::fast_path_uses_loops(Shape{6, 3, 5, 5}, {0, 2, ConvPath::fast}));  // strided: im2col
    std::mt19937 rng(12);
    const Tensor<double> images = uniform<double>(Shape{3, 3, 12, 12}, rng);
    for (int d : {6, 16}) {
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
            const auto [yf, gxf, gkf] = run(ConvPath::fast);
            const auto [yr, gxr, gkr] = run(ConvPath::reference);
            if (d < conv::direct_max_out_channels) {
                check_equal(yf, yr, "y");
                check_equal(gxf, gxr, "dX");
                check_equal(gkf, gkr, "dK");
            } else {
                check_close(yf, yr, "y");
                check_close(gxf, gxr, "dX");
                check_close(gkf, gkr, "dK");
                BOOST_TEST(!(gkf.array() == gkr.array()).all());  // summed in another order: truly the other path
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(fast_path_does_not_depend_on_the_thread_count) {
    // Large enough that im2col, col2im and the GEMMs run in parallel regions.
    std::mt19937 rng(11);
    const Tensor<float> x = uniform<float>(Shape{16, 3, 32, 32}, rng), k = uniform<float>(Shape{8, 3, 5, 5}, rng);
    const Conv2dOptions o{2, 1, ConvPath::fast};
    const Tensor<float> gy = uniform<float>(conv::output_shape(x.shape(), k.shape(), o), rng);
    auto run = [&](int threads) {
        const ThreadLimit limit(threads);
        Tensor<float> y, gx(x.shape()), gk(k.shape());
        conv::forward_fast(x, k, o, y);
        conv::backward_fast(x, k, gy, o, &gx, &gk);
        return std::tuple{y, gx, gk};
    };
    const auto [y1, gx1, gk1] = run(1);
    const auto [y2, gx2, gk2] = run(2);
    check_close(y2, y1, "y, 2 threads vs 1");
    check_close(gx2, gx1, "dX, 2 threads vs 1");
    check_close(gk2, gk1, "dK, 2 threads vs 1");
}

BOOST_AUTO_TEST_SUITE_END()
