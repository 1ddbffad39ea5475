// tune's search space (mcnn/train/tune.hpp): parsing and its errors, samples within bounds and
// reproducible, the grid, applying values to a TrainConfig.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <set>

#include "mcnn/train/tune.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;

BOOST_AUTO_TEST_SUITE(tune_space)

BOOST_AUTO_TEST_CASE(dimensions_parse_and_refuse_bad_text) {
    const tune::Dimension lr = tune::parse_dimension("lr=log:1e-4:0.1");
    BOOST_TEST(lr.name == "lr");
    BOOST_TEST((lr.kind == tune::Kind::log));
    BOOST_TEST(lr.lo == 1e-4);
    BOOST_TEST(lr.hi == 0.1);
    BOOST_TEST(lr.str() == "lr=log:0.0001:0.1");
    BOOST_TEST(tune::parse_dimension(lr.str()).str() == lr.str());
    BOOST_TEST(tune::parse_dimension("optimizer=choice:sgd,adam").choices == (std::vector<std::string>{"sgd", "adam"}));
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("lr"); }), "expected NAME=KIND:ARGS");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("colour=linear:0:1"); }), "unknown name 'colour'; tune knows");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("lr=cubic:0:1"); }), "unknown kind 'cubic'");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("lr=log:0:1"); }), "a log scale needs LO > 0, got 0");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("momentum=linear:0.9:0.5"); }), "LO must be below HI");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("batch=int:1.5:8"); }), "int bounds must be integers");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("momentum=linear:0.5:2"); }), "tune: momentum");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("optimizer=choice:sgd,rmsprop"); }), "'rmsprop' is not one of sgd, adam, adamw");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("optimizer=choice:sgd,,adam"); }), "an empty choice");
}

BOOST_AUTO_TEST_CASE(samples_stay_in_bounds_and_depend_on_seed_and_trial_only) {
    const std::vector<tune::Dimension> space{tune::parse_dimension("lr=log:1e-4:1e-1"), tune::parse_dimension("batch=int:4:6"),
                                             tune::parse_dimension("optimizer=choice:sgd,adam,adamw")};
    std::set<std::string> batches, optimizers;
    double lowest = 1, highest = 0;
    for (std::uint64_t t = 0; t < 300; ++t) {
        const std::vector<tune::Value> v = tune::sample(space, 7, t);
        BOOST_REQUIRE_EQUAL(v.size(), 3u);
        const double lr = std::stod(v[0].text);
        BOOST_TEST((lr >= 1e-4 && lr <= 1e-1));
        lowest = std::min(lowest, lr);
        highest = std::max(highest, lr);
        batches.insert(v[1].text);
        optimizers.insert(v[2].text);
        BOOST_TEST(tune::sample(space, 7, t)[0].text == v[0].text);  // the same trial again: the same values
    }
    BOOST_TEST(lowest < 3e-4);  // log-uniform: a sixth of the draws fall in each decade's half
    BOOST_TEST(highest > 3e-2);
    BOOST_TEST((batches == std::set<std::string>{"4", "5", "6"}));
    BOOST_TEST(optimizers.size() == 3u);
    BOOST_TEST(tune::sample(space, 8, 0)[0].text != tune::sample(space, 7, 0)[0].text);
}

BOOST_AUTO_TEST_CASE(the_grid_is_every_combination) {
    const std::vector<tune::Dimension> space{tune::parse_dimension("lr=log:1e-3:1e-1"), tune::parse_dimension("batch=int:4:5"),
                                             tune::parse_dimension("optimizer=choice:sgd,adam")};
    const auto trials = tune::grid(space, 3, 100);
    BOOST_REQUIRE_EQUAL(trials.size(), 3u * 2u * 2u);  // batch 4, 4.5 -> 5, 5: repeats dropped
    BOOST_TEST(trials[0][0].text == "0.001");
    BOOST_TEST(std::abs(std::stod(trials[4][0].text) - 0.01) < 1e-12);  // the log scale's middle
    BOOST_TEST(trials[11][0].text == "0.1");
    BOOST_TEST(trials[1][2].text == "adam");  // the last dimension varies fastest
    CHECK_MESSAGE_HAS(error_of([&] { tune::grid(space, 3, 11); }), "more than 11 trials");
    CHECK_MESSAGE_HAS(error_of([&] { tune::grid(space, 1, 100); }), "at least 2 points");
}

BOOST_AUTO_TEST_CASE(values_set_the_config) {
    TrainConfig c;
    tune::apply(c, {"lr", "0.02"});
    tune::apply(c, {"momentum", "0.8"});
    tune::apply(c, {"batch", "32"});
    tune::apply(c, {"optimizer", "adamw"});
    tune::apply(c, {"label_smoothing", "0.1"});
    BOOST_TEST(c.sgd.lr == 0.02);
    BOOST_TEST(c.sgd.momentum == 0.8);
    BOOST_TEST(c.batch == 32);
    BOOST_TEST(c.optimizer == "adamw");
    BOOST_TEST(c.label_smoothing == 0.1);
    CHECK_MESSAGE_HAS(error_of([&] { tune::apply(c, {"batch", "0"}); }), "tune: batch");
    CHECK_MESSAGE_HAS(error_of([&] { tune::apply(c, {"depth", "3"}); }), "unknown setting 'depth'");
}

BOOST_AUTO_TEST_SUITE_END()
