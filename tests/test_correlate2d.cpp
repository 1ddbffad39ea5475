// correlate2d / convolve2d (2-D, scipy semantics): scipy fixtures, hand-derivable identities, errors.
// The fixtures come from tests/fixtures/make_fixtures.py (format documented there).
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "mcnn/ops/correlate2d.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;

namespace {

const char* mode_str(CorrelateMode m) {
    return m == CorrelateMode::valid ? "valid" : m == CorrelateMode::full ? "full" : "same";
}

constexpr CorrelateMode all_modes[] = {CorrelateMode::valid, CorrelateMode::full, CorrelateMode::same};

// Small-integer tensors: every sum of products is exact in float and double.
template <class T>
Tensor<T> integers(const Shape& shape, std::mt19937& rng, int lo = -4, int hi = 4) {
    std::uniform_int_distribution<int> dist(lo, hi);
    Tensor<T> t(shape);
    for (T& v : t) v = static_cast<T>(dist(rng));
    return t;
}

template <class T>
Tensor<T> rot180(const Tensor<T>& k) {
    Tensor<T> r = k;
    std::reverse(r.begin(), r.end());
    return r;
}

template <class T>
Tensor<T> window(const Tensor<T>& a, int r0, int c0, int h, int w) {
    Tensor<T> out(Shape{h, w});
    for (int r = 0; r < h; ++r)
        for (int c = 0; c < w; ++c) out.at({r, c}) = a.at({r + r0, c + c0});
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(correlate2d)

// Every scipy result in the fixture file, in float and double. Valid results are absent where the
// kernel is larger than the input; there both ops must refuse.
BOOST_AUTO_TEST_CASE_TEMPLATE(matches_scipy_fixtures, T, scalar_types) {
    const std::vector<Fixture> cases = load_fixtures("correlate");
    BOOST_TEST_REQUIRE(cases.size() >= 15u);
    int compared = 0, refused = 0;
    for (const Fixture& f : cases) {
        const Tensor<T> x = f.tensor("input").cast<T>(), k = f.tensor("kernel").cast<T>();
        for (const char* op : {"correlate2d", "convolve2d"}) {
            for (CorrelateMode mode : all_modes) {
                const std::string key = std::string(op) + "_" + mode_str(mode);
                auto run = [&] { return op == std::string("correlate2d") ? mcnn::correlate2d(x, k, mode) : convolve2d(x, k, mode); };
                if (f.tensors.count(key)) {
                    check_close(run(), f.tensor(key), f.exact(), rtol<T>(), f.name() + ": " + key);
                    ++compared;
                } else {
                    BOOST_TEST_REQUIRE(std::string(mode_str(mode)) == "valid");
                    BOOST_TEST((k.dim(0) > x.dim(0) || k.dim(1) > x.dim(1)), f.name() + " lacks " + key);
                    BOOST_CHECK_THROW(run(), Error);
                    ++refused;
                }
            }
        }
    }
    BOOST_TEST(compared >= 90);
    BOOST_TEST(refused >= 8);
}

// A hand-computed example: the kernel [[1, 2], [0, 0]] on 1..9.
BOOST_AUTO_TEST_CASE_TEMPLATE(hand_computed_3x3, T, scalar_types) {
    const Tensor<T> x(Shape{3, 3}, std::vector<T>{1, 2, 3, 4, 5, 6, 7, 8, 9});
    const Tensor<T> k(Shape{2, 2}, std::vector<T>{1, 2, 0, 0});
    // correlate: out[r,c] = x[r,c] + 2 x[r,c+1]
    check_equal(mcnn::correlate2d(x, k), Tensor<T>(Shape{2, 2}, std::vector<T>{5, 8, 14, 17}), "correlate2d valid");
    // convolve: kernel turned to [[0, 0], [2, 1]]: out[r,c] = 2 x[r+1,c] + x[r+1,c+1]
    check_equal(convolve2d(x, k), Tensor<T>(Shape{2, 2}, std::vector<T>{13, 16, 22, 25}), "convolve2d valid");
    // full correlation: 4 x 4, out[r,c] = x[r-1,c-1] + 2 x[r-1,c] (zero outside)
    check_equal(mcnn::correlate2d(x, k, CorrelateMode::full),
                Tensor<T>(Shape{4, 4}, std::vector<T>{0, 0, 0, 0, 2, 5, 8, 3, 8, 14, 17, 6, 14, 23, 26, 9}), "correlate2d full");
    // same, even kernel: scipy centres a correlation at kernel/2 = 1, so it is full[1:4, 1:4]
    check_equal(mcnn::correlate2d(x, k, CorrelateMode::same),
                Tensor<T>(Shape{3, 3}, std::vector<T>{5, 8, 3, 14, 17, 6, 23, 26, 9}), "correlate2d same");
    // full convolution: out[r,c] = x[r,c] + 2 x[r,c-1]; same centres at (kernel-1)/2 = 0: full[0:3, 0:3]
    check_equal(convolve2d(x, k, CorrelateMode::full),
                Tensor<T>(Shape{4, 4}, std::vector<T>{1, 4, 7, 6, 4, 13, 16, 12, 7, 22, 25, 18, 0, 0, 0, 0}), "convolve2d full");
    check_equal(convolve2d(x, k, CorrelateMode::same),
                Tensor<T>(Shape{3, 3}, std::vector<T>{1, 4, 7, 4, 13, 16, 7, 22, 25}), "convolve2d same");
}

// A kernel with a single 1 at (a, b) copies the input, shifted: in valid mode out[r,c] = x[r+a, c+b];
// full mode pads by (kernel-1), so out[r,c] = x[r-(kh-1)+a, c-(kw-1)+b]; same is full's window at
// (kh/2, kw/2). For a convolution the 1 sits at (kh-1-a, kw-1-b) of the turned kernel and same
// centres at ((kh-1)/2, (kw-1)/2).
BOOST_AUTO_TEST_CASE_TEMPLATE(delta_kernel_shifts_the_input, T, scalar_types) {
    std::mt19937 rng(7);
    const int h = 5, w = 6;
    const Tensor<T> x = integers<T>(Shape{h, w}, rng, -9, 9);
    auto x_at = [&](int r, int c) { return (r >= 0 && r < h && c >= 0 && c < w) ? x.at({r, c}) : T(0); };
    for (auto [kh, kw] : {std::pair{3, 4}, std::pair{2, 2}, std::pair{1, 3}, std::pair{4, 1}}) {
        for (int a = 0; a < kh; ++a)
            for (int b = 0; b < kw; ++b) {
                Tensor<T> k(Shape{kh, kw});
                k.at({a, b}) = T(1);
                for (bool conv : {false, true}) {
                    // the 1's position in the kernel actually slid over the input
                    const int ea = conv ? kh - 1 - a : a, eb = conv ? kw - 1 - b : b;
                    const int same_r = conv ? (kh - 1) / 2 : kh / 2, same_c = conv ? (kw - 1) / 2 : kw / 2;
                    for (CorrelateMode mode : all_modes) {
                        const Tensor<T> y = conv ? convolve2d(x, k, mode) : mcnn::correlate2d(x, k, mode);
                        int r0 = 0, c0 = 0;  // offset of y's (0,0) within the full output
                        Shape expect_shape{h + kh - 1, w + kw - 1};
                        if (mode == CorrelateMode::valid) {
                            r0 = kh - 1;
                            c0 = kw - 1;
                            expect_shape = Shape{h - kh + 1, w - kw + 1};
                        } else if (mode == CorrelateMode::same) {
                            r0 = same_r;
                            c0 = same_c;
                            expect_shape = Shape{h, w};
                        }
                        Tensor<T> expect(expect_shape);
                        for (int r = 0; r < expect_shape[0]; ++r)
                            for (int c = 0; c < expect_shape[1]; ++c)
                                expect.at({r, c}) = x_at(r + r0 - (kh - 1) + ea, c + c0 - (kw - 1) + eb);
                        check_equal(y, expect,
                                    fmt::format("{} {} kernel {}x{} with 1 at ({},{})", conv ? "convolve2d" : "correlate2d",
                                                mode_str(mode), kh, kw, a, b));
                    }
                }
            }
    }
}

// convolve2d(x, k) = correlate2d(x, rot180(k)) in valid and full mode. In same mode the two centre
// differently for even kernel sizes (scipy: correlation at k/2, convolution at (k-1)/2), so same
// convolution is the window of the full correlation at ((kh-1)/2, (kw-1)/2); for odd sizes that
// is the same window as the correlation's.
BOOST_AUTO_TEST_CASE_TEMPLATE(convolve_is_correlate_with_turned_kernel, T, scalar_types) {
    std::mt19937 rng(11);
    for (auto [h, w, kh, kw] : {std::tuple{5, 7, 3, 3}, std::tuple{6, 4, 2, 3}, std::tuple{4, 4, 4, 4}, std::tuple{3, 5, 5, 2},
                                std::tuple{1, 1, 1, 1}, std::tuple{4, 6, 1, 2}}) {
        const Tensor<T> x = integers<T>(Shape{h, w}, rng), k = integers<T>(Shape{kh, kw}, rng);
        const std::string what = fmt::format("{}x{} kernel {}x{}", h, w, kh, kw);
        const Tensor<T> kr = rot180(k);
        if (kh <= h && kw <= w) check_equal(convolve2d(x, k), mcnn::correlate2d(x, kr), what + " valid");
        const Tensor<T> full = mcnn::correlate2d(x, kr, CorrelateMode::full);
        check_equal(convolve2d(x, k, CorrelateMode::full), full, what + " full");
        check_equal(convolve2d(x, k, CorrelateMode::same), window(full, (kh - 1) / 2, (kw - 1) / 2, h, w), what + " same");
        if (kh % 2 == 1 && kw % 2 == 1)
            check_equal(convolve2d(x, k, CorrelateMode::same), mcnn::correlate2d(x, kr, CorrelateMode::same), what + " same, odd");
        // and the other way round: the valid part sits inside the full result, the same part is centred
        const Tensor<T> cf = mcnn::correlate2d(x, k, CorrelateMode::full);
        if (kh <= h && kw <= w)
            check_equal(mcnn::correlate2d(x, k), window(cf, kh - 1, kw - 1, h - kh + 1, w - kw + 1), what + " valid in full");
        check_equal(mcnn::correlate2d(x, k, CorrelateMode::same), window(cf, kh / 2, kw / 2, h, w), what + " same in full");
    }
}

// The identity the conv layer's backward rests on: correlation (valid) and full convolution with the
// same kernel are adjoint, <correlate2d(x, k, valid), g> = <x, convolve2d(g, k, full)>; and in the
// kernel, <correlate2d(x, k, valid), g> = <k, correlate2d(x, g, valid)>. Exact on integers.
BOOST_AUTO_TEST_CASE_TEMPLATE(valid_correlation_and_full_convolution_are_adjoint, T, scalar_types) {
    std::mt19937 rng(3);
    for (auto [h, w, kh, kw] : {std::tuple{6, 5, 3, 2}, std::tuple{7, 7, 4, 4}, std::tuple{3, 8, 3, 1}, std::tuple{4, 4, 4, 4}}) {
        const Tensor<T> x = integers<T>(Shape{h, w}, rng), k = integers<T>(Shape{kh, kw}, rng);
        const Tensor<T> g = integers<T>(Shape{h - kh + 1, w - kw + 1}, rng);
        const double lhs = dot(mcnn::correlate2d(x, k), g);
        BOOST_TEST(lhs == dot(x, convolve2d(g, k, CorrelateMode::full)));
        BOOST_TEST(lhs == dot(k, mcnn::correlate2d(x, g)));
    }
}

// Linear in each argument: correlate2d(a x + y, k) = a correlate2d(x, k) + correlate2d(y, k).
BOOST_AUTO_TEST_CASE(linear_in_the_input) {
    std::mt19937 rng(5);
    const Tensor<double> x = integers<double>(Shape{5, 6}, rng), y = integers<double>(Shape{5, 6}, rng);
    const Tensor<double> k = integers<double>(Shape{2, 3}, rng);
    Tensor<double> xy(x.shape());
    xy.array() = 3.0 * x.array() + y.array();
    for (CorrelateMode mode : all_modes) {
        const Tensor<double> cx = mcnn::correlate2d(x, k, mode), cy = mcnn::correlate2d(y, k, mode);
        Tensor<double> expect(cx.shape());
        expect.array() = 3.0 * cx.array() + cy.array();
        check_equal(mcnn::correlate2d(xy, k, mode), expect, std::string("linearity ") + mode_str(mode));
    }
}

BOOST_AUTO_TEST_CASE(valid_mode_refuses_a_larger_kernel) {
    const Tensor<double> x(Shape{3, 5}, 1.0);
    for (auto [kh, kw] : {std::pair{4, 2}, std::pair{2, 6}, std::pair{4, 6}}) {
        const Tensor<double> k(Shape{kh, kw}, 1.0);
        const std::string ks = k.shape().str();
        for (const char* op : {"correlate2d", "convolve2d"}) {
            const std::string msg = error_of([&] {
                if (op == std::string("correlate2d")) mcnn::correlate2d(x, k);
                else convolve2d(x, k);
            });
            CHECK_MESSAGE_HAS(msg, op);
            CHECK_MESSAGE_HAS(msg, "valid");
            CHECK_MESSAGE_HAS(msg, ks);
            CHECK_MESSAGE_HAS(msg, "[3, 5]");
            // full and same accept it
            BOOST_CHECK_NO_THROW(mcnn::correlate2d(x, k, CorrelateMode::full));
            BOOST_CHECK_NO_THROW(convolve2d(x, k, CorrelateMode::same));
        }
    }
}

BOOST_AUTO_TEST_CASE(rank_must_be_two) {
    const Tensor<double> m(Shape{4, 4}, 1.0), v(Shape{4}, 1.0), cube(Shape{2, 3, 3}, 1.0);
    for (CorrelateMode mode : all_modes) {
        for (auto [in, k, bad] : {std::tuple{&v, &m, "[4]"}, std::tuple{&m, &cube, "[2, 3, 3]"}, std::tuple{&cube, &m, "[2, 3, 3]"}}) {
            const std::string c = error_of([&, in = in, k = k] { mcnn::correlate2d(*in, *k, mode); });
            CHECK_MESSAGE_HAS(c, "correlate2d");
            CHECK_MESSAGE_HAS(c, bad);
            const std::string d = error_of([&, in = in, k = k] { convolve2d(*in, *k, mode); });
            CHECK_MESSAGE_HAS(d, "convolve2d");
            CHECK_MESSAGE_HAS(d, bad);
        }
    }
}

BOOST_AUTO_TEST_CASE(empty_inputs_are_refused) {
    const Tensor<double> m(Shape{4, 4}, 1.0), k(Shape{2, 2}, 1.0);
    const Tensor<double> no_rows(Shape{0, 3}), no_cols(Shape{3, 0});
    for (CorrelateMode mode : all_modes) {
        for (auto [in, kern, bad] : {std::tuple{&no_rows, &k, "[0, 3]"}, std::tuple{&m, &no_cols, "[3, 0]"},
                                     std::tuple{&no_cols, &no_rows, "[3, 0]"}}) {
            const std::string c = error_of([&, in = in, kern = kern] { mcnn::correlate2d(*in, *kern, mode); });
            CHECK_MESSAGE_HAS(c, "correlate2d");
            CHECK_MESSAGE_HAS(c, bad);
            CHECK_MESSAGE_HAS(c, "empty");
            const std::string d = error_of([&, in = in, kern = kern] { convolve2d(*in, *kern, mode); });
            CHECK_MESSAGE_HAS(d, "convolve2d");
            CHECK_MESSAGE_HAS(d, bad);
            CHECK_MESSAGE_HAS(d, "empty");
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
