// Learning-rate schedules: values at known points worked by hand, the step -> epoch placement,
// purity (the same step gives the same factor in any order), and bad settings.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <numbers>
#include <string>

#include "mcnn/error.hpp"
#include "mcnn/optim/schedule.hpp"

using namespace mcnn;

BOOST_AUTO_TEST_SUITE(optim)

BOOST_AUTO_TEST_CASE(schedule_constant_is_one) {
    const Schedule s;
    for (double e : {0.0, 0.5, 3.0, 1e6}) BOOST_TEST(s.at(e) == 1.0);
    BOOST_TEST(s.describe() == "constant");
}

BOOST_AUTO_TEST_CASE(schedule_warmup_cosine_by_hand) {
    const Schedule s = Schedule::warmup_cosine(2, 10, 0.1);
    BOOST_TEST(s.at(0) == 0.0);
    BOOST_TEST(std::abs(s.at(0.5) - 0.25) < 1e-15);  // warm-up: 0.5 / 2
    BOOST_TEST(s.at(2) == 1.0);                        // cosine starts at 1
    // halfway through the cosine (epoch 6): 0.1 + 0.9 * 0.5 * (1 + cos(pi / 2)) = 0.55
    BOOST_TEST(std::abs(s.at(6) - 0.55) < 1e-15);
    // a quarter (epoch 4): 0.1 + 0.45 * (1 + cos(pi / 4)) = 0.1 + 0.45 * 1.70710678 = 0.868198
    BOOST_TEST(std::abs(s.at(4) - (0.1 + 0.45 * (1 + std::sqrt(0.5)))) < 1e-15);
    BOOST_TEST(std::abs(s.at(10) - 0.1) < 1e-15);
    BOOST_TEST(s.at(25) == 0.1);  // past the end: the final factor
    const Schedule no_warmup = Schedule::warmup_cosine(0, 4);
    BOOST_TEST(no_warmup.at(0) == 1.0);
    BOOST_TEST(std::abs(no_warmup.at(2) - 0.5) < 1e-15);
    BOOST_TEST(s.describe() == "warm-up 2 epochs, cosine to 0.1 at epoch 10");
}

BOOST_AUTO_TEST_CASE(schedule_one_cycle_and_piecewise_by_hand) {
    const Schedule s = Schedule::one_cycle(2, 10, 0.2);  // airbench's shape: 0.2 -> 1 -> 0
    BOOST_TEST(s.at(0) == 0.2);
    BOOST_TEST(std::abs(s.at(1) - 0.6) < 1e-15);
    BOOST_TEST(s.at(2) == 1.0);
    BOOST_TEST(std::abs(s.at(6) - 0.5) < 1e-15);
    BOOST_TEST(s.at(10) == 0.0);
    BOOST_TEST(s.at(11) == 0.0);
    const Schedule w = Schedule::warmup(4);
    BOOST_TEST(w.at(1) == 0.25);
    BOOST_TEST(w.at(4) == 1.0);
    BOOST_TEST(w.at(100) == 1.0);
    const Schedule p = Schedule::piecewise_linear({{1, 0.5}, {3, 1.5}});
    BOOST_TEST(p.at(0) == 0.5);  // before the first point: its factor
    BOOST_TEST(p.at(2) == 1.0);
    BOOST_TEST(p.at(9) == 1.5);
}

BOOST_AUTO_TEST_CASE(schedule_step_by_hand) {
    const Schedule s = Schedule::step(3, 0.1, 1);
    BOOST_TEST(s.at(0.5) == 0.5);  // warm-up
    BOOST_TEST(s.at(1) == 1.0);
    BOOST_TEST(s.at(3.9) == 1.0);
    BOOST_TEST(std::abs(s.at(4) - 0.1) < 1e-17);
    BOOST_TEST(std::abs(s.at(7.5) - 0.01) < 1e-17);
    BOOST_TEST(s.describe() == "warm-up 1 epoch, x0.1 every 3 epochs");
}

BOOST_AUTO_TEST_CASE(schedule_places_step_s_at_s_plus_one_over_steps_per_epoch) {
    const Schedule s = Schedule::warmup_cosine(1, 3);
    // 4 steps per epoch: steps 0..3 are the warm-up at 0.25, 0.5, 0.75, 1; the run's last step
    // (11) reaches the final factor
    BOOST_TEST(s.at_step(0, 4) == 0.25);
    BOOST_TEST(s.at_step(3, 4) == 1.0);
    BOOST_TEST(s.at_step(11, 4) == 0.0);
    // a pure function of the step: the same value whatever came before
    const double later = s.at_step(7, 4);
    BOOST_TEST(s.at_step(2, 4) == 0.75);
    BOOST_TEST(s.at_step(7, 4) == later);
    BOOST_TEST(std::abs(later - 0.5 * (1 + std::cos(std::numbers::pi * 0.5))) < 1e-15);
    BOOST_CHECK_THROW(s.at_step(-1, 4), Error);
    BOOST_CHECK_THROW(s.at_step(0, 0), Error);
}

BOOST_AUTO_TEST_CASE(schedule_bad_settings_throw_naming_the_schedule) {
    const auto message = [](auto make) -> std::string {
        try {
            make();
        } catch (const Error& e) {
            return e.what();
        }
        return "";
    };
    BOOST_TEST(message([] { Schedule::warmup_cosine(5, 5); }).find("warmup_cosine") != std::string::npos);
    BOOST_TEST(message([] { Schedule::warmup_cosine(-1, 5); }).find("warmup_cosine") != std::string::npos);
    BOOST_TEST(message([] { Schedule::warmup_cosine(1, 5, -0.1); }).find("final factor") != std::string::npos);
    BOOST_TEST(message([] { Schedule::one_cycle(3, 2); }).find("one_cycle") != std::string::npos);
    BOOST_TEST(message([] { Schedule::one_cycle(1, 2, NAN); }).find("one_cycle") != std::string::npos);
    BOOST_TEST(message([] { Schedule::step(0, 0.1); }).find("interval") != std::string::npos);
    BOOST_TEST(message([] { Schedule::step(1, 0); }).find("gamma") != std::string::npos);
    BOOST_TEST(message([] { Schedule::warmup(0); }).find("warm-up") != std::string::npos);
    BOOST_TEST(message([] { Schedule::piecewise_linear({}); }).find("no points") != std::string::npos);
    BOOST_TEST(message([] { Schedule::piecewise_linear({{1, 1}, {1, 2}}); }).find("increase") != std::string::npos);
    BOOST_TEST(message([] { Schedule::piecewise_linear({{0, -1}}); }).find("point 1") != std::string::npos);
    BOOST_TEST(message([] { Schedule().at(-1); }).find("epoch") != std::string::npos);
    BOOST_TEST(message([] { Schedule::one_cycle(1, 2, 0.2); }).empty());
}

BOOST_AUTO_TEST_SUITE_END()
