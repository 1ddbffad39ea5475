// Adam / AdamW against PyTorch's documented update rule for three steps (values worked out by hand
// from the rule, and by a plain reference of that rule in the test); SGD's decoupled weight decay;
// parameter groups; the optimisers' bad options.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "mcnn/optim/adam.hpp"
#include "mcnn/optim/lookahead.hpp"
#include "mcnn/optim/sgd.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;

namespace {

// The gradients of the three steps, from p = [1, -2, 0.5] (as in test_optim.cpp).
const std::vector<std::vector<double>> adam_grads{{0.1, -0.3, 0.2}, {-0.2, 0.4, 0.0}, {0.05, 0.1, -0.6}};

/// p after each of three steps of `make(p)`'s optimiser.
template <class T, class Make>
std::vector<std::vector<double>> run_three(Make make) {
    Parameter<T> p("p", Tensor<T>(Shape{3}, std::vector<T>{T(1), T(-2), T(0.5)}));
    auto opt = make(p);
    std::vector<std::vector<double>> out;
    for (const auto& g : adam_grads) {
        for (int i = 0; i < 3; ++i) p.grad[i] = static_cast<T>(g[i]);
        opt.step();
        out.push_back({p.value[0], p.value[1], p.value[2]});
    }
    return out;
}

/// PyTorch's documented Adam/AdamW, element by element in double, in the documentation's form
/// (m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t), p -= lr m_hat / (sqrt(v_hat) + eps)).
std::vector<std::vector<double>> documented_adam(const AdamOptions& o) {
    std::vector<double> p{1, -2, 0.5}, m(3, 0.0), v(3, 0.0);
    std::vector<std::vector<double>> out;
    for (int t = 1; t <= 3; ++t) {
        for (int i = 0; i < 3; ++i) {
            double g = adam_grads[t - 1][i];
            if (o.decoupled_weight_decay)
                p[i] *= 1 - o.lr * o.weight_decay;
            else
                g += o.weight_decay * p[i];
            m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
            v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
            const double m_hat = m[i] / (1 - std::pow(o.beta1, t)), v_hat = v[i] / (1 - std::pow(o.beta2, t));
            p[i] -= o.lr * m_hat / (std::sqrt(v_hat) + o.eps);
        }
        out.push_back(p);
    }
    return out;
}

struct AdamCase {
    std::string name;
    AdamOptions options;
    std::vector<std::vector<double>> expected;  // worked by hand from the rule, 15 digits
};

// Step 1 by hand: m_hat = g and v_hat = g^2, so p -= lr g / (|g| + eps): about lr sign(g), e.g.
// Adam lr 0.1: p = [1 - 0.1 * 0.1 / (0.1 + 1e-8), ...] = [0.90000001, -1.9000000033, 0.400000005];
// AdamW with wd 0.1 first scales p by 1 - 0.01: [0.99 - 0.09999999, ...] = [0.89000001, ...].
// Step 2, element 2 of Adam (g = 0.2 then 0): m = 0.018, v = 0.999 * 4e-5, m_hat = 0.018 / 0.19,
// v_hat = 3.996e-5 / 0.001999, p = 0.400000005 - 0.1 * 0.0947368 / 0.1413860 = 0.3329942.
const std::vector<AdamCase>& adam_cases() {
    static const std::vector<AdamCase> cases{
        {"adam", {.lr = 0.1},
         {{0.900000009999999, -1.90000000333333, 0.400000005},
          {0.936610360388489, -1.91935104369969, 0.332994184325558},
          {0.950279425660213, -1.94655495001173, 0.377238926436605}}},
        {"adam + L2 weight decay", {.lr = 0.1, .weight_decay = 0.1},
         {{0.900000005, -1.900000002, 0.400000004},
          {0.877170382467154, -1.86705411690669, 0.322074169483292},
          {0.829041147134266, -1.83181234676954, 0.355916398028601}}},
        {"adamw", adamw_options(0.1, 0.1),
         {{0.890000009999999, -1.88000000333333, 0.395000005},
          {0.917710360288489, -1.88055104366636, 0.324044184275558},
          {0.922202321957328, -1.88894943954173, 0.365048484543849}}},
        {"adam betas 0.8 0.99 eps 1e-3", {.lr = 0.05, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-3},
         {{0.95049504950495, -1.95016611295681, 0.450248756218905},
          {0.971413092250531, -1.96269266020334, 0.41896429952054},
          {0.978490312221465, -1.97853391592032, 0.445274689248663}}},
    };
    return cases;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(optim)

BOOST_AUTO_TEST_CASE(adam_and_adamw_follow_pytorchs_rule_for_three_steps) {
    for (const AdamCase& c : adam_cases()) {
        BOOST_TEST_CONTEXT(c.name) {
            const auto make_d = [&](Parameter<double>& p) { return Adam<double>({&p}, c.options); };
            const auto make_f = [&](Parameter<float>& p) { return Adam<float>({&p}, c.options); };
            const auto got = run_three<double>(make_d), got_float = run_three<float>(make_f);
            const auto documented = documented_adam(c.options);
            for (std::size_t s = 0; s < 3; ++s)
                for (std::size_t i = 0; i < 3; ++i) {
                    BOOST_TEST(std::abs(got[s][i] - c.expected[s][i]) < 1e-13, "step " << s + 1 << " element " << i << ": " << got[s][i]);
                    BOOST_TEST(std::abs(got[s][i] - documented[s][i]) < 1e-13, "step " << s + 1 << " element " << i << " vs the rule");
                    BOOST_TEST(std::abs(got_float[s][i] - c.expected[s][i]) < 1e-5, "float step " << s + 1 << " element " << i);
                }
        }
    }
}

BOOST_AUTO_TEST_CASE(adam_state_names_shapes_and_step_count) {
    Parameter<double> a("a", Tensor<double>(Shape{2, 2}, 1.0)), b("b", Tensor<double>(Shape{3}, 1.0));
    Adam<double> adam({&a, &b}, {.lr = 0.01});
    const auto state = adam.state();
    const auto shapes = adam.state_shapes();
    BOOST_TEST_REQUIRE(state.size() == 5u);
    BOOST_TEST_REQUIRE(shapes.size() == 5u);
    BOOST_TEST(state[0].first == "adam/step");
    BOOST_TEST(state[1].first == "adam/exp_avg/a");
    BOOST_TEST(state[2].first == "adam/exp_avg_sq/a");
    BOOST_TEST(state[4].first == "adam/exp_avg_sq/b");
    BOOST_TEST(shapes[0] == Shape{1});
    BOOST_TEST(shapes[2] == (Shape{2, 2}));
    BOOST_TEST(shapes[3] == Shape{3});
    for (const auto& [name, t] : state) BOOST_TEST(t->empty(), name);  // nothing before the first step
    BOOST_TEST(adam.steps() == 0);
    a.grad.fill(0.5);
    b.grad.fill(-1);
    adam.step();
    adam.step();
    BOOST_TEST(adam.steps() == 2);
    for (std::size_t i = 0; i < state.size(); ++i) BOOST_TEST(state[i].second->shape() == shapes[i], state[i].first);
    // m after two steps of a constant gradient g: (1 - 0.9^2) g; v: (1 - 0.999^2) g^2
    BOOST_TEST(std::abs((*state[1].second)[0] - 0.19 * 0.5) < 1e-14);
    BOOST_TEST(std::abs((*state[4].second)[2] - 0.001999 * 1.0) < 1e-14);
}

BOOST_AUTO_TEST_CASE(adam_restored_state_continues_like_an_unbroken_run) {
    // three steps in one go against one step, state copied into a fresh optimiser, two more steps
    const auto unbroken = run_three<float>([](Parameter<float>& p) { return Adam<float>({&p}, adamw_options(0.1, 0.1)); });
    Parameter<float> p("p", Tensor<float>(Shape{3}, std::vector<float>{1, -2, 0.5f}));
    Adam<float> first({&p}, adamw_options(0.1, 0.1));
    for (int i = 0; i < 3; ++i) p.grad[i] = static_cast<float>(adam_grads[0][i]);
    first.step();
    Adam<float> second({&p}, adamw_options(0.1, 0.1));
    const auto from = first.state(), to = second.state();
    for (std::size_t i = 0; i < from.size(); ++i) *to[i].second = *from[i].second;
    for (int s = 1; s < 3; ++s) {
        for (int i = 0; i < 3; ++i) p.grad[i] = static_cast<float>(adam_grads[s][i]);
        second.step();
    }
    for (int i = 0; i < 3; ++i) BOOST_TEST(static_cast<double>(p.value[i]) == unbroken[2][i]);  // bit for bit
}

BOOST_AUTO_TEST_CASE(sgd_decoupled_weight_decay_shrinks_the_value_apart_from_the_gradient) {
    // by hand, Nesterov momentum 0.9, lr 0.1, wd 0.05: step 1, element 0: p = 1 - 0.1 * 0.05 * 1 = 0.995,
    // then d = g + 0.9 buf = 0.19, p = 0.995 - 0.019 = 0.976
    const std::vector<std::vector<double>> expected{{0.976, -1.933, 0.4595},
                                                    {1.00102, -1.975035, 0.4410025},
                                                    {0.9954249, -1.994689825, 0.5382174875}};
    const SgdOptions o{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.05, .nesterov = true, .decoupled_weight_decay = true};
    const auto got = run_three<double>([&](Parameter<double>& p) { return Sgd<double>({&p}, o); });
    for (std::size_t s = 0; s < 3; ++s)
        for (std::size_t i = 0; i < 3; ++i) BOOST_TEST(std::abs(got[s][i] - expected[s][i]) < 1e-12, "step " << s + 1 << " element " << i);
    // and it differs from the coupled decay (the gradient would carry wd p into the momentum)
    SgdOptions coupled = o;
    coupled.decoupled_weight_decay = false;
    const auto other = run_three<double>([&](Parameter<double>& p) { return Sgd<double>({&p}, coupled); });
    BOOST_TEST(std::abs(other[2][0] - got[2][0]) > 1e-3);
}

BOOST_AUTO_TEST_CASE(parameter_groups_set_lr_scale_and_weight_decay) {
    Parameter<double> w("conv.weight", Tensor<double>(Shape{2, 2}, 1.0)), b("conv.bias", Tensor<double>(Shape{2}, 1.0)),
        bn("bn.weight", Tensor<double>(Shape{2}, 1.0));
    for (Parameter<double>* p : {&w, &b, &bn}) p->grad.fill(0.5);
    // the first matching group wins: bn.weight takes the name group, conv.bias the 1-D one
    Sgd<double> sgd({&w, &b, &bn}, {.lr = 0.1, .weight_decay = 0.2},
                    {{.match = name_matches("bn.*"), .lr_scale = 2, .label = "batch norm"},
                     {.match = one_dimensional(), .lr_scale = 10, .weight_decay = 0.0}});
    BOOST_TEST(sgd.settings()[0].lr_scale == 1.0);
    BOOST_TEST(!sgd.settings()[2].weight_decay.has_value());
    sgd.set_lr_factor(0.5);
    BOOST_TEST(sgd.current_lr() == 0.05);
    sgd.step();
    // w: lr 0.05, g = 0.5 + 0.2 = 0.7: 1 - 0.035; b: lr 0.5, g = 0.5: 1 - 0.25; bn: lr 0.1, g = 0.7: 1 - 0.07
    BOOST_TEST(std::abs(w.value[3] - 0.965) < 1e-14);
    BOOST_TEST(std::abs(b.value[0] - 0.75) < 1e-14);
    BOOST_TEST(std::abs(bn.value[1] - 0.93) < 1e-14);
    BOOST_TEST(sgd.describe().find("batch norm lr x2") != std::string::npos, sgd.describe());

    Adam<double> adam({&w, &b}, adamw_options(0.1, 0.5), {{.match = one_dimensional(), .lr_scale = 2, .weight_decay = 0.0}});
    const double w0 = w.value[0], b0 = b.value[0];
    adam.step();  // step 1 moves by lr sign(g) (|g| >> eps); only w decays: w0 (1 - 0.05)
    BOOST_TEST(std::abs(w.value[0] - (w0 * 0.95 - 0.1 * 0.5 / (0.5 + 1e-8))) < 1e-14);
    BOOST_TEST(std::abs(b.value[0] - (b0 - 0.2 * 0.5 / (0.5 + 1e-8))) < 1e-14);
}

BOOST_AUTO_TEST_CASE(name_patterns_match_with_stars) {
    const Shape s{1};
    BOOST_TEST(name_matches("*.bias")("block1.conv.bias", s));
    BOOST_TEST(!name_matches("*.bias")("block1.conv.bias2", s));
    BOOST_TEST(name_matches("block1.*")("block1.bn.weight", s));
    BOOST_TEST(!name_matches("block1.*")("block2.bn.weight", s));
    BOOST_TEST(name_matches("*bn*")("block1.bn.weight", s));
    BOOST_TEST(name_matches("fc1.weight")("fc1.weight", s));
    BOOST_TEST(!name_matches("fc1.weight")("fc1.weight2", s));
    BOOST_TEST(name_matches("a*b*c")("axxbyybc", s));
    BOOST_TEST(!name_matches("a*b*c")("axxbyycb", s));
    BOOST_TEST(one_dimensional()("x", Shape{4}));
    BOOST_TEST(!one_dimensional()("x", Shape{4, 1}));
    BOOST_CHECK_THROW(name_matches(""), Error);
}

BOOST_AUTO_TEST_CASE(bad_groups_and_adam_options_throw_naming_the_problem) {
    Parameter<double> w("w", Tensor<double>(Shape{2, 2}, 1.0));
    const auto message = [&](auto make) -> std::string {
        try {
            make();
        } catch (const Error& e) {
            return e.what();
        }
        return "";
    };
    BOOST_TEST(message([&] { Sgd<double>({&w}, {.lr = 0.1}, {{.match = one_dimensional()}}); }).find("matches no parameter") !=
               std::string::npos);
    BOOST_TEST(message([&] { Sgd<double>({&w}, {.lr = 0.1}, {{.lr_scale = 2}}); }).find("no match function") != std::string::npos);
    BOOST_TEST(message([&] { Sgd<double>({&w}, {.lr = 0.1}, {{.match = name_matches("w"), .lr_scale = 0}}); }).find("lr scale") !=
               std::string::npos);
    BOOST_TEST(message([&] { Adam<double>({&w}, {.lr = 0.1}, {{.match = name_matches("w"), .weight_decay = -1.0, .label = "decay"}}); })
                   .find("decay needs a weight decay") != std::string::npos);
    for (const AdamOptions& o : {AdamOptions{.lr = 0}, AdamOptions{.lr = NAN}, AdamOptions{.beta1 = 1}, AdamOptions{.beta2 = -0.1},
                                 AdamOptions{.eps = 0}, AdamOptions{.weight_decay = -1e-4}, AdamOptions{.weight_decay = NAN}})
        BOOST_TEST(message([&] { Adam<double>({&w}, o); }).find("Adam") != std::string::npos);
    BOOST_TEST(message([&] { Adam<double>({&w}, adamw_options(-1)); }).find("AdamW") != std::string::npos);
    Sgd<double> sgd({&w}, {.lr = 0.1});
    BOOST_CHECK_THROW(sgd.set_lr_factor(-1), Error);
    BOOST_CHECK_THROW(sgd.set_lr_factor(NAN), Error);
    BOOST_TEST(message([] {}).empty());
}

// Lookahead around plain SGD (lr 0.5, gradient 1 - w), every 2 steps from step 2, over 8 steps:
// step 2 starts the slow copy, steps 4, 6, 8 pull with rho = 0.9^2 (s/8)^1; a buffer trails too.
// The expected values are worked here in double, step by step.
BOOST_AUTO_TEST_CASE(lookahead_pulls_towards_its_slow_copy_on_schedule) {
    Parameter<double> w;
    w.name = "w";
    w.value = Tensor<double>(Shape{2}, {0.0, 4.0});
    Tensor<double> buffer(Shape{1}, {10.0});
    Lookahead<double> la(std::make_unique<Sgd<double>>(std::vector<Parameter<double>*>{&w}, SgdOptions{.lr = 0.5}),
                         {&buffer}, LookaheadOptions{.every = 2, .base = 0.9, .power = 1, .start_step = 2, .total_steps = 8});
    double fast[2] = {0.0, 4.0}, slow[2] = {0, 0}, buf = 10, buf_slow = 0;
    for (long s = 1; s <= 8; ++s) {
        w.grad = Tensor<double>(Shape{2}, {w.value[0] - 1, w.value[1] - 1});  // d/dw of (w - 1)^2 / 2
        buffer[0] += 1;  // as batch norm's statistics move
        la.step();
        for (double& f : fast) f -= 0.5 * (f - 1);
        buf += 1;
        if (s == 2) {
            slow[0] = fast[0], slow[1] = fast[1], buf_slow = buf;
        } else if (s % 2 == 0) {
            const double rho = 0.81 * static_cast<double>(s) / 8;
            for (int k = 0; k < 2; ++k) fast[k] = slow[k] = rho * slow[k] + (1 - rho) * fast[k];
            buf = buf_slow = rho * buf_slow + (1 - rho) * buf;
        }
        BOOST_TEST_CONTEXT("step " << s) {
            BOOST_TEST(std::abs(w.value[0] - fast[0]) < 1e-14);
            BOOST_TEST(std::abs(w.value[1] - fast[1]) < 1e-14);
            BOOST_TEST(std::abs(buffer[0] - buf) < 1e-13);
        }
    }
    BOOST_TEST(std::abs(la.decay_at(4) - 0.405) < 1e-15);
    const auto state = la.state();
    BOOST_TEST_REQUIRE(state.size() == 1u + 1 + 1 + 1);  // momentum, step, one parameter, one buffer
    BOOST_TEST(state[1].first == "lookahead/step");
    BOOST_TEST((*state[1].second)[0] == 8.0);
    BOOST_TEST(state[3].first == "lookahead/b0");
    BOOST_TEST(contains(la.describe(), "lookahead every 2 steps from step 2"));
    BOOST_TEST(contains(error_of([&] {
                            Lookahead<double>(std::make_unique<Sgd<double>>(std::vector<Parameter<double>*>{&w}, SgdOptions{.lr = 0.5}), {},
                                              LookaheadOptions{.every = 0});
                        }),
                        "steps between pulls must be >= 1, got 0"));
}

BOOST_AUTO_TEST_SUITE_END()
