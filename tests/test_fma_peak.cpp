// The FMA peak of bench --case fma-peak (lib/src/cli/fma_peak.hpp): every instruction set this CPU
// runs gives a positive figure for the threads asked; one it lacks, or bad settings, are refused.
#include <boost/test/unit_test.hpp>

#include <string>

#include "../lib/src/cli/fma_peak.hpp"
#include "mcnn/error.hpp"

using namespace mcnn::cli::detail;

namespace {

bool throws_with(auto&& f, const std::string& text) {
    try {
        f();
    } catch (const mcnn::Error& e) {
        BOOST_TEST_MESSAGE(e.what());
        return std::string(e.what()).find(text) != std::string::npos;
    }
    return false;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(fma_peak)

BOOST_AUTO_TEST_CASE(every_isa_this_cpu_runs_gives_a_positive_peak) {
    const FmaIsa best = best_fma_isa();
    for (FmaIsa isa : {FmaIsa::avx512f, FmaIsa::avx2_fma, FmaIsa::portable}) {
        if (static_cast<int>(isa) < static_cast<int>(best)) continue;  // wider than this CPU has
        for (int threads : {1, 2}) {
            const FmaPeak p = measure_fma_peak(isa, threads, 0.01, 1);
            BOOST_TEST_MESSAGE(isa_name(isa) << ", " << threads << " thread(s): " << p.gflops << " GFLOP/s");
            BOOST_TEST(p.gflops > 0);
            BOOST_TEST(p.gflops < 1e5);  // no core does 100 TFLOP/s: the count or the clock is wrong
            BOOST_TEST(static_cast<int>(p.isa) == static_cast<int>(isa));
            BOOST_TEST(p.threads == threads);
        }
    }
}

BOOST_AUTO_TEST_CASE(names_of_the_instruction_sets) {
    BOOST_TEST(std::string(isa_name(FmaIsa::avx512f)) == "avx512f");
    BOOST_TEST(std::string(isa_name(FmaIsa::avx2_fma)) == "avx2+fma");
    BOOST_TEST(std::string(isa_name(FmaIsa::portable)) == "portable");
}

BOOST_AUTO_TEST_CASE(an_instruction_set_the_cpu_lacks_is_refused) {
    const FmaIsa best = best_fma_isa();
    if (best == FmaIsa::avx512f) {
        BOOST_TEST_MESSAGE("this CPU has AVX-512F: nothing to refuse");
        return;
    }
    BOOST_TEST(throws_with([] { (void)measure_fma_peak(FmaIsa::avx512f, 1, 0.01, 1); }, "this CPU has no AVX-512F"));
    if (best == FmaIsa::portable)
        BOOST_TEST(throws_with([] { (void)measure_fma_peak(FmaIsa::avx2_fma, 1, 0.01, 1); }, "this CPU has no AVX2 and FMA"));
}

BOOST_AUTO_TEST_CASE(bad_settings_are_refused_naming_them) {
    BOOST_TEST(throws_with([] { (void)measure_fma_peak(FmaIsa::portable, 0, 0.01, 1); }, "got threads 0, reps 1, seconds 0.01"));
    BOOST_TEST(throws_with([] { (void)measure_fma_peak(FmaIsa::portable, 1, 0.01, 0); }, "got threads 1, reps 0"));
    BOOST_TEST(throws_with([] { (void)measure_fma_peak(FmaIsa::portable, 1, 0.0, 1); }, "seconds 0"));
}

BOOST_AUTO_TEST_SUITE_END()
