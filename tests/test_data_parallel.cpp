// Data parallelism within one process (distributed.hpp): a batch computed in shards gives the
// gradient of the whole batch; dropout keys a row's mask by its place in the batch; batch norm sums
// its statistics through the communicator; the parts' checks; Subset and BatchLoader::advance.
// The runs across processes are tests/mpi/ (CTest runs them under mpirun).
#include <boost/test/unit_test.hpp>

#include "data_parallel.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;

namespace {

/// A stand-in for a group of `ranks` processes that all hold this process's values: a sum over
/// them is `ranks` times the value. Counts its calls.
class MirrorCommunicator : public Communicator {
public:
    explicit MirrorCommunicator(int ranks) : ranks_(ranks) {}
    int rank() const override { return 0; }
    int size() const override { return ranks_; }
    void allreduce_sum(float* data, std::size_t n, Reduction) override { multiply(data, n); }
    void allreduce_sum(double* data, std::size_t n, Reduction) override { multiply(data, n); }
    void allreduce_max(double*, std::size_t) override { ++calls; }
    void broadcast(std::string&, int) override { ++calls; }
    [[noreturn]] void abort(const std::string& message) override { fail("abort: {}", message); }
    int calls = 0;

private:
    template <class T>
    void multiply(T* data, std::size_t n) {
        ++calls;
        for (std::size_t i = 0; i < n; ++i) data[i] *= static_cast<T>(ranks_);
    }
    int ranks_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(data_parallel)

// 8 rows in 1, 2 or 3 shards (rows 0-2, 2-5, 5-8): with the losses scaled by each shard's rows, the
// summed gradients are the batch's, and the dropout masks and augmentations those of the rows'
// places, so the runs end at the same weights up to float rounding. Without batch norm (whose
// statistics a shard takes over its own rows).
BOOST_AUTO_TEST_CASE(shards_compute_the_whole_batch_gradient) {
    const ThreadLimit one(1);
    FitOptions o = test_dp::options();
    const test_dp::Trained whole = test_dp::train(false, o);
    for (int shards : {2, 3}) {
        o.parallel.shards = shards;
        const test_dp::Trained parts = test_dp::train(false, o);
        const double d = test_dp::relative_distance(whole.weights, parts.weights);
        BOOST_TEST(d < 2e-6, shards << " shards: weights " << d << " apart (relative)");
        BOOST_REQUIRE_EQUAL(parts.result.log.size(), whole.result.log.size());
        for (std::size_t i = 0; i < whole.result.log.size(); ++i) {
            BOOST_TEST(parts.result.log[i].loss == whole.result.log[i].loss, boost::test_tools::tolerance(1e-5));
            BOOST_TEST(parts.result.log[i].accuracy == whole.result.log[i].accuracy);
        }
        BOOST_TEST(parts.result.steps == whole.result.steps);
        BOOST_TEST(parts.result.train_images == whole.result.train_images);
    }
    // What "close" means here: another seed's batches end far apart.
    o.parallel.shards = 1;
    o.seed = 12;
    BOOST_TEST(test_dp::relative_distance(whole.weights, test_dp::train(false, o).weights) > 1e-3);
}

BOOST_AUTO_TEST_CASE(every_part_needs_a_row) {
    const data::TensorDataset data = test_dp::images(41);  // the last batch of 8 holds 1
    auto model = test_dp::net(false);
    Sgd<float> sgd(model->parameters(), SgdOptions{.lr = 0.01});
    FitOptions o = test_dp::options();
    o.parallel.shards = 2;
    CHECK_MESSAGE_HAS(error_of([&] { fit(*model, sgd, data, data, o); }),
                      "the last batch of each epoch holds 1 examples (41 % 8), too few to cut into 2 parts (1 process x 2 shards)");
    o.max_batches = 5;  // the last batch is never reached
    BOOST_CHECK_NO_THROW(fit(*model, sgd, data, data, o));
    o.parallel.shards = 9;
    CHECK_MESSAGE_HAS(error_of([&] { fit(*model, sgd, data, data, o); }), "batch 8 cannot be cut into 9 parts");
    o.parallel.shards = 0;
    CHECK_MESSAGE_HAS(error_of([&] { fit(*model, sgd, data, data, o); }), "shards must be >= 1, got 0");
}

// Rows 2-3 of a batch dropped as a part starting at row 2 are rows 2-3 of the whole batch dropped.
BOOST_AUTO_TEST_CASE(dropout_keys_a_row_by_its_place_in_the_batch) {
    Rng rng(3);
    const Tensor<float> x = uniform(Shape{4, 2, 3, 3}, rng).cast<float>();
    Tape<float> tape(Tape<float>::Mode::inference);
    const Tensor<float> whole = dropout(tape.constant(x), 0.5, 77).value();
    const std::size_t per_row = x.numel() / 4;
    Tensor<float> rows(Shape{2, 2, 3, 3});
    std::copy(x.data() + 2 * per_row, x.data() + 4 * per_row, rows.data());
    const Tensor<float> part = dropout(tape.constant(rows), 0.5, 77, 2 * per_row).value();
    BOOST_TEST(std::equal(part.data(), part.data() + part.numel(), whole.data() + 2 * per_row));
    const Tensor<float> unplaced = dropout(tape.constant(rows), 0.5, 77).value();
    BOOST_TEST(!std::equal(unplaced.data(), unplaced.data() + unplaced.numel(), whole.data() + 2 * per_row));

    // The module: a step's later shard (continues_step) draws from the step's call and counts none.
    Dropout<float> d(0.5, 9), e(0.5, 9);
    const Tensor<float> first = d(tape.constant(x)).value();
    Tensor<float> second;
    {
        const StepPartScope scope(StepPart{.first_row = 2, .continues_step = true});
        second = d(tape.constant(rows)).value();
    }
    BOOST_TEST(d.calls[0] == 1.0f);
    BOOST_TEST(std::equal(second.data(), second.data() + second.numel(), first.data() + 2 * per_row));
    BOOST_TEST(std::equal(first.data(), first.data() + first.numel(), e(tape.constant(x)).value().data()));
}

// Batch norm in training sums its per-channel sums and counts over the ranks: with every rank holding
// the same batch the statistics, outputs and gradients are those of one process; the weight's and
// bias's gradients stay this process's own (fit sums them with the others); the running variance's
// unbiased correction counts every rank's values (2N / (2N - 1) for N / (N - 1)). Two sums forward,
// one backward; none in eval mode.
BOOST_AUTO_TEST_CASE(batch_norm_sums_its_statistics_over_the_ranks) {
    Rng rng(4);
    const Tensor<double> x = uniform(Shape{3, 2, 4, 4}, rng), gy = uniform(Shape{3, 2, 4, 4}, rng);
    const auto run = [&](Communicator* comm, bool training, Tensor<double>& mean, Tensor<double>& var) {
        BatchNorm2d<double> bn(2);
        bn.weight.value[1] = 1.5;
        if (!training) bn.eval();
        const StepPartScope scope(StepPart{.comm = comm});
        Tape<double> tape;
        const Var<double> in = tape.input(x);
        const Var<double> y = bn(in);
        tape.backward(weighted_sum(y, gy));  // dL/dy = gy
        mean = bn.running_mean;
        var = bn.running_var;
        return std::vector<Tensor<double>>{y.value(), tape.grad(in), bn.weight.grad, bn.bias.grad};
    };
    for (bool training : {true, false}) {
        MirrorCommunicator two(2);
        Tensor<double> alone_mean, synced_mean, alone_var, synced_var;
        const auto alone = run(nullptr, training, alone_mean, alone_var);
        const auto synced = run(&two, training, synced_mean, synced_var);
        for (std::size_t i = 0; i < alone.size(); ++i) check_close(synced[i], alone[i], false, 1e-12, fmt::format("result {}", i));
        check_close(synced_mean, alone_mean, false, 1e-12, "running mean");
        if (training) {  // running = 0.9 + 0.1 var n / (n - 1), with n = 48 values per channel alone, 96 synced
            for (std::size_t c = 0; c < 2; ++c) alone_var[c] = 0.9 + (alone_var[c] - 0.9) * (47.0 / 48.0) * (96.0 / 95.0);
        }
        check_close(synced_var, alone_var, false, 1e-12, "running var");
        BOOST_TEST(two.calls == (training ? 3 : 0));
    }
}

BOOST_AUTO_TEST_CASE(subset_and_advance) {
    const data::TensorDataset data = test_dp::images(10);
    const data::Subset middle(data, 3, 7);
    BOOST_TEST(middle.size() == 4u);
    Tensor<float> got, want;
    std::vector<int> got_labels, want_labels;
    const std::size_t first[] = {0, 3}, shifted[] = {3, 6};
    middle.fill(first, 2, got, got_labels);
    data.fill(shifted, 2, want, want_labels);
    check_equal(got, want, "examples 3 and 6");
    BOOST_TEST(got_labels == want_labels);
    CHECK_MESSAGE_HAS(error_of([&] { data::Subset(data, 4, 11); }), "examples [4, 11) are not within the dataset's 10");

    data::BatchLoader a(data, 4, true, 5), b(data, 4, true, 5);
    for (int batch = 0; batch < 3; ++batch) {
        const std::span<const std::size_t> indices = a.advance();
        BOOST_REQUIRE(b.next(got, got_labels));
        BOOST_TEST(std::vector<std::size_t>(indices.begin(), indices.end()) ==
                   std::vector<std::size_t>(b.batch_indices(), b.batch_indices() + got_labels.size()));
    }
    BOOST_TEST(a.advance().empty());
    BOOST_TEST(reduction_name(reduction_from_name("ordered")) == "ordered");
    CHECK_MESSAGE_HAS(error_of([] { reduction_from_name("tree"); }), "unknown reduction 'tree'; known: fast, ordered");
}

BOOST_AUTO_TEST_SUITE_END()
