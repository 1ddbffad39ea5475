// Data-parallel training across processes, run by CTest under `mpirun -np 2` (test mpi_data_parallel):
// two processes end where one does (bit for bit with the ordered reduction, against one process
// computing the same two shards), batch norm is synchronised, a run checkpointed at one process
// count resumes at the other, rank 0 alone writes the run folder, evaluation is split and summed.
// Each case is collective: both ranks run it; rank 0 alone runs the one-process references.
#define BOOST_TEST_MODULE mcnn_mpi
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "../data_parallel.hpp"

using namespace mcnn;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<Communicator> world;

struct MpiWorld {
    MpiWorld() {
        world = mpi_world();
        if (!world || world->size() != 2) {
            fmt::print(stderr, "mcnn_mpi_tests: run me as mpirun -np 2 (built with MPI: {})\n", built_with_mpi());
            std::exit(2);
        }
    }
    ~MpiWorld() { world.reset(); }
};
BOOST_TEST_GLOBAL_FIXTURE(MpiWorld);

bool leader() {
    return world->rank() == 0;
}

FitOptions on_both(Reduction reduction) {
    FitOptions o = test_dp::options();
    o.parallel = {world.get(), reduction, 1};
    return o;
}

FitOptions alone(int shards) {
    FitOptions o = test_dp::options();
    o.parallel.shards = shards;
    return o;
}

/// Whether every rank holds these very values (the largest and the smallest of each element agree).
bool same_on_every_rank(const std::vector<float>& w) {
    std::vector<double> most(w.begin(), w.end()), least(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) least[i] = -most[i];
    world->allreduce_max(most.data(), most.size());
    world->allreduce_max(least.data(), least.size());
    for (std::size_t i = 0; i < w.size(); ++i)
        if (most[i] != -least[i]) return false;
    return true;
}

/// A fresh folder (rank 0 makes it; every rank gets its name).
fs::path shared_folder(const std::string& label) {
    std::string name;
    if (leader()) {
        name = (fs::temp_directory_path() / fmt::format("mcnn-mpi-{}-{}", label, ::getpid())).string();
        fs::remove_all(name);
    }
    world->broadcast(name, 0);
    return name;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(mpi)

BOOST_AUTO_TEST_CASE(two_processes_end_where_one_does) {
    const test_dp::Trained fast = test_dp::train(false, on_both(Reduction::fast));
    const test_dp::Trained ordered = test_dp::train(false, on_both(Reduction::ordered));
    BOOST_TEST(same_on_every_rank(fast.weights));
    BOOST_TEST(same_on_every_rank(ordered.weights));
    BOOST_TEST(fast.result.processes == 2);
    if (!leader()) return;
    const test_dp::Trained shards = test_dp::train(false, alone(2));
    const test_dp::Trained one = test_dp::train(false, alone(1));
    // Rank r's part is shard r of one process: the same sums in the same order.
    BOOST_TEST(test_dp::same_bits(ordered.weights, shards.weights));
    BOOST_TEST(test_dp::same_bits(fast.weights, shards.weights));  // two ranks: a + b = b + a
    BOOST_REQUIRE_EQUAL(ordered.result.log.size(), shards.result.log.size());
    for (std::size_t i = 0; i < shards.result.log.size(); ++i) {
        const LogRow &two = ordered.result.log[i], &one_row = shards.result.log[i];
        BOOST_TEST(two.kind == one_row.kind);
        BOOST_TEST(two.accuracy == one_row.accuracy);
        if (two.kind == "train")  // the same float sums
            BOOST_TEST(two.loss == one_row.loss);
        else  // evaluation: each rank's batches' float mean losses, summed by halves
            BOOST_TEST(two.loss == one_row.loss, boost::test_tools::tolerance(1e-6));
    }
    // One process computing the batch at once rounds its sums otherwise.
    const double d = test_dp::relative_distance(one.weights, fast.weights);
    BOOST_TEST_MESSAGE("without batch norm, N = 2 against N = 1: " << d);
    BOOST_TEST(d < 2e-6, "N = 2 against N = 1: " << d << " apart (relative)");
    // 10 steps of one all-reduce of every parameter (the weights less dropout's call count)
    BOOST_TEST(fast.result.allreduce_bytes == 10.0 * sizeof(float) * static_cast<double>(fast.weights.size() - 2));
}

// Synchronised batch norm: two processes normalise with the statistics of the whole batch, as one
// process does; one process computing two shards (each with its own statistics) does not.
BOOST_AUTO_TEST_CASE(batch_norm_statistics_are_the_whole_batch) {
    const test_dp::Trained both = test_dp::train(true, on_both(Reduction::fast));
    BOOST_TEST(same_on_every_rank(both.weights));
    if (!leader()) return;
    const test_dp::Trained one = test_dp::train(true, alone(1));
    const test_dp::Trained shards = test_dp::train(true, alone(2));
    const double synced = test_dp::relative_distance(one.weights, both.weights);
    const double unsynced = test_dp::relative_distance(one.weights, shards.weights);
    BOOST_TEST_MESSAGE("with batch norm, N = 2 against N = 1: " << synced << "; 2 shards against N = 1: " << unsynced);
    BOOST_TEST(synced < 2e-6, "N = 2 against N = 1: " << synced);
    BOOST_TEST(unsynced > 1e-3, "shards with their own statistics against N = 1: " << unsynced);
}

// A run checkpointed at N = 2 resumes at N = 1, and one checkpointed at N = 1 resumes at N = 2,
// ending bit for bit where the unbroken run does (ordered reduction against 2 shards). Rank 0 alone
// writes the folder.
BOOST_AUTO_TEST_CASE(a_run_resumes_at_another_process_count) {
    const fs::path a = shared_folder("a"), b = shared_folder("b");
    FitOptions first = on_both(Reduction::ordered);
    first.epochs = 1;
    first.run_dir = a;
    test_dp::train(false, first);
    if (leader()) {
        std::set<std::string> files;
        for (const auto& entry : fs::directory_iterator(a)) files.insert(entry.path().filename().string());
        BOOST_TEST((files == std::set<std::string>{".lock", "checkpoint.safetensors", "log.csv", "metrics.json", "summary.txt"}));
        FitOptions rest = alone(2);
        rest.run_dir = a;
        rest.resume = true;
        const test_dp::Trained resumed = test_dp::train(false, rest);
        const test_dp::Trained unbroken = test_dp::train(false, alone(2));
        BOOST_TEST(test_dp::same_bits(resumed.weights, unbroken.weights), "checkpointed at N = 2, resumed at N = 1");
        BOOST_TEST(resumed.result.log.size() == unbroken.result.log.size());

        FitOptions solo = alone(2);
        solo.epochs = 1;
        solo.run_dir = b;
        test_dp::train(false, solo);
    }
    FitOptions rest = on_both(Reduction::ordered);
    rest.run_dir = b;
    rest.resume = true;
    const test_dp::Trained resumed = test_dp::train(false, rest);
    const test_dp::Trained unbroken = test_dp::train(false, on_both(Reduction::ordered));
    BOOST_TEST(same_on_every_rank(resumed.weights));
    BOOST_TEST(test_dp::same_bits(resumed.weights, unbroken.weights), "checkpointed at N = 1, resumed at N = 2");
    if (leader()) {
        fs::remove_all(a);
        fs::remove_all(b);
    }
}

// Each rank evaluates half the set; the sums give every rank the whole set's figures.
BOOST_AUTO_TEST_CASE(evaluation_is_split_and_summed) {
    const data::TensorDataset train_set = test_dp::images(40), eval_set = test_dp::images(25);
    auto model = test_dp::net(true);
    Sgd<float> sgd(model->parameters(), SgdOptions{.lr = 0.05, .momentum = 0.9});
    FitOptions o = on_both(Reduction::fast);
    o.tta = Tta::flip;
    const TrainResult r = fit(*model, sgd, train_set, eval_set, o);
    BOOST_TEST(r.test.count == 25u);
    model->eval();
    const Evaluation here = evaluate(*model, eval_set, 16, Tta::flip);
    BOOST_TEST(r.test.confusion == here.confusion);
    BOOST_TEST(r.test.accuracy == here.accuracy);
    BOOST_TEST(r.test.loss == here.loss, boost::test_tools::tolerance(1e-6));
}

BOOST_AUTO_TEST_SUITE_END()
