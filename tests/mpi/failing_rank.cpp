// A data-parallel run in which rank 1 fails, for tests/mpi/failing_rank.sh:
//   failing_rank throw DIR   (under mpirun -np 2) rank 1's model throws in its 13th training step
//   failing_rank kill DIR    (under mpirun -np 2) trains slowly until killed; rank 1 writes DIR.rank1.pid
//   failing_rank check DIR   (alone) loads DIR's checkpoint into the model: exit 0 when intact
// The run has 5 steps an epoch and a checkpoint after each, so one exists before rank 1 fails.
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "../data_parallel.hpp"

using namespace mcnn;

namespace {

/// The test net, failing or slowed down on one rank.
class Failing : public Module<float> {
public:
    Failing(int rank, bool throws) : net_(test_dp::net(false)), rank_(rank), throws_(throws) { this->register_module("net", *net_); }
    Var<float> forward(const Var<float>& x) override {
        if (this->is_training()) {
            ++steps_;
            if (throws_ && rank_ == 1 && steps_ == 13) fail("the test model fails on rank 1 in step 13");
            if (!throws_) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return (*net_)(x);
    }
    std::string type_name() const override { return "Failing"; }

private:
    std::unique_ptr<Sequential<float>> net_;
    int rank_, steps_ = 0;
    bool throws_;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        fmt::print(stderr, "usage: failing_rank throw|kill|check DIR\n");
        return 2;
    }
    const std::string mode = argv[1], dir = argv[2];
    try {
        if (mode == "check") {
            Failing model(0, false);
            const auto meta = load_checkpoint(std::filesystem::path(dir) / "checkpoint.safetensors", model, nullptr, "");
            fmt::print("checkpoint intact: epochs_done {}, step {}\n", meta.at("epochs_done"), meta.at("step"));
            return 0;
        }
        const std::unique_ptr<Communicator> world = mpi_world();
        if (!world || world->size() != 2) fail("run me under mpirun -np 2");
        if (mode == "kill" && world->rank() == 1) std::ofstream(dir + ".rank1.pid") << ::getpid() << "\n";
        Failing model(world->rank(), mode == "throw");
        Sgd<float> sgd(model.parameters(), SgdOptions{.lr = 0.05, .momentum = 0.9});
        FitOptions o = test_dp::options();
        o.epochs = 100000;
        o.eval_every = 0;
        o.run_dir = dir;
        o.parallel = {world.get(), Reduction::fast, 1};
        const data::TensorDataset data = test_dp::images(40);
        fit(model, sgd, data, data, o);
        return 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "failing_rank: error: {}\n", e.what());
        return 1;
    }
}
