// SGD against PyTorch's update rule, worked by hand for three steps; zero_grad; option checks.
// default_init: PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)), seeded and precision-independent.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "mcnn/nn/init.hpp"
#include "mcnn/nn/models.hpp"
#include "mcnn/optim/sgd.hpp"

using namespace mcnn;

namespace {

// The fixed gradients of the three steps (different each step, so a buffer that is not carried
// over, or carried over wrongly, shows).
const std::vector<std::vector<double>> step_grads{{0.1, -0.3, 0.2}, {-0.2, 0.4, 0.0}, {0.05, 0.1, -0.6}};

/// Runs three steps from p = [1, -2, 0.5] and returns p after each.
template <class T>
std::vector<std::vector<double>> three_steps(const SgdOptions& options) {
    Parameter<T> p("p", Tensor<T>(Shape{3}, std::vector<T>{T(1), T(-2), T(0.5)}));
    Sgd<T> sgd({&p}, options);
    std::vector<std::vector<double>> out;
    for (const auto& g : step_grads) {
        for (int i = 0; i < 3; ++i) p.grad[i] = static_cast<T>(g[i]);
        sgd.step();
        out.push_back({p.value[0], p.value[1], p.value[2]});
    }
    return out;
}

struct SgdCase {
    std::string name;
    SgdOptions options;
    std::vector<std::vector<double>> expected;  // p after steps 1, 2, 3
};

// Expected values worked out with PyTorch's rule (torch.optim.SGD, _single_tensor_sgd):
//   d = g + wd p;  buf = d (step 1) or m buf + (1 - dampening) d;  d = nesterov ? d + m buf : buf;
//   p -= lr d
// e.g. momentum 0.9, lr 0.1:
//   step 1: buf = g1 = [0.1, -0.3, 0.2],                         p = [0.99, -1.97, 0.48]
//   step 2: buf = 0.9 buf + g2 = [-0.11, 0.13, 0.18],             p = [1.001, -1.983, 0.462]
//   step 3: buf = 0.9 buf + g3 = [-0.049, 0.217, -0.438],         p = [1.0059, -2.0047, 0.5058]
// with dampening 0.5, step 2: buf = 0.9 g1 + 0.5 g2 = [-0.01, -0.07, 0.18], p = [0.991, -1.963, 0.462]
// with nesterov, step 1: d = g1 + 0.9 g1 = [0.19, -0.57, 0.38],   p = [0.981, -1.943, 0.462]
const std::vector<SgdCase>& sgd_cases() {
    static const std::vector<SgdCase> cases{
        {"momentum", {.lr = 0.1, .momentum = 0.9}, {{0.99, -1.97, 0.48}, {1.001, -1.983, 0.462}, {1.0059, -2.0047, 0.5058}}},
        {"momentum + weight decay",
         {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01},
         {{0.989, -1.968, 0.4795}, {0.998111, -1.977232, 0.4605705}, {1.000312789, -1.993563568, 0.5030733795}}},
        {"momentum + dampening",
         {.lr = 0.1, .momentum = 0.9, .dampening = 0.5},
         {{0.99, -1.97, 0.48}, {0.991, -1.963, 0.462}, {0.9894, -1.9617, 0.4758}}},
        {"nesterov",
         {.lr = 0.1, .momentum = 0.9, .nesterov = true},
         {{0.981, -1.943, 0.462}, {1.0109, -1.9947, 0.4458}, {1.01031, -2.02423, 0.54522}}},
        {"nesterov + weight decay",
         {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.05, .nesterov = true},
         {{0.9715, -1.924, 0.45725}, {0.98812075, -1.949322, 0.434681125}, {0.970564027875, -1.945251241, 0.5262972918125}}},
        {"no momentum + weight decay",
         {.lr = 0.1, .weight_decay = 0.1},
         {{0.98, -1.95, 0.475}, {0.9902, -1.9705, 0.47025}, {0.975298, -1.960795, 0.5255475}}},
    };
    return cases;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(optim)

BOOST_AUTO_TEST_CASE(sgd_follows_pytorchs_rule_for_three_steps) {
    for (const SgdCase& c : sgd_cases()) {
        BOOST_TEST_CONTEXT(c.name) {
            const auto got = three_steps<double>(c.options);
            const auto got_float = three_steps<float>(c.options);
            for (std::size_t s = 0; s < 3; ++s)
                for (std::size_t i = 0; i < 3; ++i) {
                    BOOST_TEST(std::abs(got[s][i] - c.expected[s][i]) < 1e-12,
                               "step " << s + 1 << " element " << i << ": " << got[s][i] << " vs " << c.expected[s][i]);
                    BOOST_TEST(std::abs(got_float[s][i] - c.expected[s][i]) < 1e-5, "float step " << s + 1 << " element " << i);
                }
        }
    }
}

BOOST_AUTO_TEST_CASE(sgd_keeps_one_momentum_buffer_per_parameter) {
    Parameter<double> a("a", Tensor<double>(Shape{2}, {1.0, 2.0})), b("b", Tensor<double>(Shape{1}, {-1.0}));
    Sgd<double> sgd({&a, &b}, {.lr = 0.5, .momentum = 0.9});
    BOOST_TEST(sgd.momentum_buffers().size() == 2u);
    BOOST_TEST(sgd.momentum_buffers()[0].empty());  // empty until the first step
    a.grad = Tensor<double>(Shape{2}, {1.0, -1.0});
    b.grad = Tensor<double>(Shape{1}, {4.0});
    sgd.step();
    a.grad = Tensor<double>(Shape{2}, {0.0, 0.0});
    b.grad = Tensor<double>(Shape{1}, {2.0});
    sgd.step();
    // a: buf = 0.9 [1, -1] = [0.9, -0.9]; p = [1, 2] - 0.5 [1, -1] - 0.5 [0.9, -0.9] = [0.05, 2.95]
    // b: buf = 0.9 * 4 + 2 = 5.6;          p = -1 - 0.5 * 4 - 0.5 * 5.6 = -5.8
    BOOST_TEST(std::abs(a.value[0] - 0.05) < 1e-12);
    BOOST_TEST(std::abs(a.value[1] - 2.95) < 1e-12);
    BOOST_TEST(std::abs(b.value[0] + 5.8) < 1e-12);
    BOOST_TEST(std::abs(sgd.momentum_buffers()[0][0] - 0.9) < 1e-12);
    BOOST_TEST(std::abs(sgd.momentum_buffers()[1][0] - 5.6) < 1e-12);
    BOOST_TEST(b.grad[0] == 2.0);  // step reads the gradient, it does not clear it
}

BOOST_AUTO_TEST_CASE(plain_sgd_is_p_minus_lr_g) {
    Parameter<float> p("p", Tensor<float>(Shape{2, 2}, {1, 2, 3, 4}));
    p.grad = Tensor<float>(Shape{2, 2}, {0.5f, -0.5f, 1, 0});
    Sgd<float> sgd({&p}, {.lr = 0.25});
    sgd.step();
    sgd.step();
    const std::vector<float> expected{0.75f, 2.25f, 2.5f, 4};
    for (std::size_t i = 0; i < 4; ++i) BOOST_TEST(p.value[i] == expected[i]);
}

BOOST_AUTO_TEST_CASE(zero_grad_clears_every_parameter_gradient) {
    Rng rng(1);
    SimpleCNN<float> model(rng);
    for (Parameter<float>* p : model.parameters()) p->grad.fill(3.0f);
    Sgd<float> sgd(model.parameters(), {.lr = 0.01, .momentum = 0.9});
    sgd.zero_grad();
    for (Parameter<float>* p : model.parameters()) {
        BOOST_TEST(p->grad.shape() == p->value.shape(), p->name);
        BOOST_TEST(std::all_of(p->grad.begin(), p->grad.end(), [](float v) { return v == 0.0f; }), p->name);
    }
    // a step with zero gradients (and no weight decay) leaves the values alone
    const Tensor<float> before = model.fc3.weight.value;
    sgd.step();
    BOOST_TEST(std::equal(before.begin(), before.end(), model.fc3.weight.value.begin()));
}

BOOST_AUTO_TEST_CASE(bad_options_throw) {
    Parameter<double> p("p", Tensor<double>(Shape{1}, 1.0));
    const auto throws = [&](const SgdOptions& o) {
        try {
            Sgd<double> sgd({&p}, o);
        } catch (const Error& e) {
            return std::string(e.what()).find("Sgd") != std::string::npos;  // the message names the optimiser
        }
        return false;
    };
    BOOST_TEST(throws({.lr = 0}));
    BOOST_TEST(throws({.lr = -0.1}));
    BOOST_TEST(throws({.lr = NAN}));
    BOOST_TEST(throws({.lr = 0.1, .momentum = -0.9}));
    BOOST_TEST(throws({.lr = 0.1, .momentum = 0.9, .dampening = -0.1}));
    BOOST_TEST(throws({.lr = 0.1, .weight_decay = -1e-4}));
    BOOST_TEST(throws({.lr = 0.1, .nesterov = true}));                                     // nesterov without momentum
    BOOST_TEST(throws({.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}));  // nesterov with dampening
    // and good ones do not
    BOOST_TEST(!throws({.lr = 0.1}));
    BOOST_TEST(!throws({.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 1e-4}));
    BOOST_TEST(!throws({.lr = 0.1, .momentum = 0.9, .nesterov = true}));
}

// ---- default_init -------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(default_init_draws_within_one_over_sqrt_fan_in_and_fills_the_range) {
    for (int fan_in : {1, 27, 400}) {
        BOOST_TEST_CONTEXT("fan_in " << fan_in) {
            Rng rng(3);
            const Tensor<double> t = default_init<double>(Shape{64, 27}, fan_in, rng);
            const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
            BOOST_TEST(t.shape() == (Shape{64, 27}));
            const auto [lo, hi] = std::minmax_element(t.begin(), t.end());
            BOOST_TEST(*lo >= -bound);
            BOOST_TEST(*hi < bound);
            // 1728 uniform draws reach close to both ends (a wrong bound, e.g. 1/fan_in, would not)
            BOOST_TEST(*lo < -0.95 * bound);
            BOOST_TEST(*hi > 0.95 * bound);
            double mean = 0;
            for (double v : t) mean += v;
            mean /= static_cast<double>(t.numel());
            BOOST_TEST(std::abs(mean) < 0.06 * bound);  // ~4 standard errors
        }
    }
    Rng rng(4);
    BOOST_CHECK_THROW(default_init<float>(Shape{3}, 0, rng), Error);
}

BOOST_AUTO_TEST_CASE(default_init_same_seed_same_values_other_seed_other_values) {
    Rng a(5), b(5), c(6);
    const Tensor<double> ta = default_init<double>(Shape{4, 3, 5, 5}, 75, a), tb = default_init<double>(Shape{4, 3, 5, 5}, 75, b),
                         tc = default_init<double>(Shape{4, 3, 5, 5}, 75, c);
    BOOST_TEST(std::equal(ta.begin(), ta.end(), tb.begin()));
    std::size_t same = 0;
    for (std::size_t i = 0; i < ta.numel(); ++i) same += ta[i] == tc[i];
    BOOST_TEST(same == 0u);
    // successive draws from one generator differ too
    const Tensor<double> next = default_init<double>(Shape{4, 3, 5, 5}, 75, a);
    BOOST_TEST(!std::equal(ta.begin(), ta.end(), next.begin()));
}

BOOST_AUTO_TEST_CASE(default_init_float_and_double_from_one_seed_agree) {
    Rng rf(7), rd(7);
    const Tensor<float> f = default_init<float>(Shape{10, 84}, 84, rf);
    const Tensor<double> d = default_init<double>(Shape{10, 84}, 84, rd);
    for (std::size_t i = 0; i < f.numel(); ++i) BOOST_TEST(f[i] == static_cast<float>(d[i]));  // drawn in double, then rounded
}

BOOST_AUTO_TEST_CASE(layers_use_pytorchs_fan_in_for_weights_and_biases) {
    Rng rng(8);
    SimpleCNN<double> model(rng);
    const auto within = [](const Parameter<double>& p, int fan_in) {
        const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
        const auto [lo, hi] = std::minmax_element(p.value.begin(), p.value.end());
        return *lo >= -bound && *hi < bound && (p.value.numel() < 100 || (*lo<-0.8 * bound&& * hi> 0.8 * bound));
    };
    BOOST_TEST(within(model.conv1.weight, 3 * 5 * 5));
    BOOST_TEST(within(model.conv1.bias, 3 * 5 * 5));
    BOOST_TEST(within(model.conv2.weight, 6 * 5 * 5));
    BOOST_TEST(within(model.conv2.bias, 6 * 5 * 5));
    BOOST_TEST(within(model.fc1.weight, 400));
    BOOST_TEST(within(model.fc1.bias, 400));
    BOOST_TEST(within(model.fc2.weight, 120));
    BOOST_TEST(within(model.fc3.weight, 84));
}

BOOST_AUTO_TEST_SUITE_END()
