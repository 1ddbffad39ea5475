// Runs that survive what happens to processes: SIGINT/SIGTERM in the middle of an epoch (the point
// is saved and a resumed run ends bit-exact with an unbroken one), write errors (the file-size
// limit, a read-only folder: a message naming the file and the reason, no temporary file, the old
// checkpoint intact) and the run-folder lock (a second process is refused, naming the PID).
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mcnn/data/cifar10.hpp"
#include "mcnn/nn/models.hpp"
#include "mcnn/optim/sgd.hpp"
#include "mcnn/train/checkpoint.hpp"
#include "mcnn/train/trainer.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;
namespace fs = std::filesystem;

namespace {

using Handler = void (*)(int);

Handler handler_of(int signal) {
    struct sigaction sa {};
    ::sigaction(signal, nullptr, &sa);
    return sa.sa_handler;
}

/// Sets `signal`'s handler for the scope, restoring the one before.
struct HandlerFor {
    int signal;
    struct sigaction old {};
    HandlerFor(int s, Handler h) : signal(s) {
        struct sigaction sa {};
        sa.sa_handler = h;
        sigemptyset(&sa.sa_mask);
        ::sigaction(signal, &sa, &old);
    }
    ~HandlerFor() { ::sigaction(signal, &old, nullptr); }
};

volatile std::sig_atomic_t test_handler_calls = 0;
void test_handler(int) { test_handler_calls = test_handler_calls + 1; }

/// The file-size limit (ulimit -f) for the scope; SIGXFSZ is left as it is (the library's job).
struct FileSizeLimit {
    rlimit old{};
    explicit FileSizeLimit(rlim_t bytes) {
        ::getrlimit(RLIMIT_FSIZE, &old);
        rlimit now = old;
        now.rlim_cur = bytes;
        ::setrlimit(RLIMIT_FSIZE, &now);
    }
    ~FileSizeLimit() { ::setrlimit(RLIMIT_FSIZE, &old); }
};

/// `per_class` images of each of the 10 classes; a class's channels have means set by its bits.
data::Records colour_classes(std::size_t per_class, std::uint64_t seed) {
    Rng rng(seed);
    data::Records d;
    for (std::size_t i = 0; i < per_class * data::class_count; ++i) {
        const int c = static_cast<int>(i % data::class_count);
        d.labels.push_back(static_cast<std::uint8_t>(c));
        for (int ch = 0; ch < 3; ++ch)
            for (int p = 0; p < 1024; ++p)
                d.images.push_back(static_cast<std::uint8_t>(60 + 120 * ((c >> ch) & 1) + 10 * (c / 8) + rng.uniform(-40, 40)));
    }
    return d;
}

/// A dataset over another that, at its `at`-th fill (from 1), raises `signal` in this process (0:
/// none), as if it came during a step, and records the handlers of SIGINT and SIGTERM just after.
class SignalAt : public data::Dataset {
public:
    SignalAt(const data::Dataset& inner, std::size_t at, int signal) : inner_(inner), at_(at), signal_(signal) {}
    std::size_t size() const override { return inner_.size(); }
    Shape example_shape() const override { return inner_.example_shape(); }
    int classes() const override { return inner_.classes(); }
    void fill(const std::size_t* indices, std::size_t count, Tensor<float>& batch, std::vector<int>& labels) const override {
        inner_.fill(indices, count, batch, labels);
        if (++fills_ != at_) return;
        if (signal_) std::raise(signal_);
        int_after = handler_of(SIGINT);
        term_after = handler_of(SIGTERM);
    }
    mutable Handler int_after = nullptr, term_after = nullptr;

private:
    const data::Dataset& inner_;
    std::size_t at_;
    int signal_;
    mutable std::size_t fills_ = 0;
};

/// 240 training images (30 batches of 8 per epoch, 3 epochs), 60 to evaluate on.
struct Data {
    data::CifarDataset train{colour_classes(24, 1), data::Normalization::notebook()};
    data::CifarDataset test{colour_classes(6, 2), data::Normalization::notebook()};
};

FitOptions options(const fs::path& dir, bool resume, int epochs = 3) {
    FitOptions o;
    o.epochs = epochs;
    o.batch = 8;
    o.seed = 5;
    o.report_every = 4;
    o.eval_batch = 20;
    o.run_dir = dir;
    o.resume = resume;
    o.plots = false;
    o.model_name = "simple";
    o.out = nullptr;
    return o;
}

/// fit() of a SimpleCNN (the same initial weights every time; a resumed run loads its own).
TrainResult fit_simple(const data::Dataset& train, const data::Dataset& eval, const FitOptions& o) {
    Rng rng(7);
    SimpleCNN<float> model(rng);
    Sgd<float> sgd(model.parameters(), {.lr = 0.01, .momentum = 0.9});
    return fit(model, sgd, train, eval, o);
}

std::string bytes_of(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
}

bool has_temp_file(const fs::path& dir) {
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".tmp") return true;
    return false;
}

/// The tensors of two checkpoints are the same, bit for bit.
void check_same_tensors(const fs::path& a, const fs::path& b) {
    const TensorFile x = load_safetensors(a), y = load_safetensors(b);
    BOOST_TEST_REQUIRE(x.tensors.size() == y.tensors.size());
    for (std::size_t i = 0; i < x.tensors.size(); ++i) {
        BOOST_TEST(x.tensors[i].first == y.tensors[i].first);
        check_equal(x.tensors[i].second, y.tensors[i].second, x.tensors[i].first);
    }
}

/// The log rows agree in everything but speed and time.
void check_same_log(const fs::path& a, const fs::path& b) {
    const std::vector<LogRow> x = read_log(a), y = read_log(b);
    BOOST_TEST_REQUIRE(x.size() == y.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        BOOST_TEST_CONTEXT("log row " << i + 2) {
            BOOST_TEST(x[i].kind == y[i].kind);
            BOOST_TEST(x[i].epoch == y[i].epoch);
            BOOST_TEST(x[i].step == y[i].step);
            BOOST_TEST(x[i].images == y[i].images);
            BOOST_TEST(x[i].loss == y[i].loss);
            BOOST_TEST(x[i].accuracy == y[i].accuracy);
        }
    }
}

std::string metadata(const fs::path& checkpoint, const std::string& key) {
    const TensorFile f = load_safetensors(checkpoint);
    const auto it = f.metadata.find(key);
    return it == f.metadata.end() ? "(none)" : it->second;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(run_safety)

BOOST_AUTO_TEST_CASE(signals_stop_after_the_step_and_resume_ends_bit_exact) {
    const Data d;
    const TempDir tmp;
    const fs::path straight = tmp.path / "straight", broken = tmp.path / "broken";
    const TrainResult unbroken = fit_simple(d.train, d.test, options(straight, false));
    BOOST_TEST(unbroken.stopped_by_signal == 0);
    BOOST_TEST(unbroken.steps == 90);

    const HandlerFor own_int(SIGINT, test_handler), own_term(SIGTERM, test_handler);  // a program's own handlers
    const fs::path ckpt = broken / "checkpoint.safetensors";
    // 1. SIGTERM during step 5 of epoch 1: the step ends, the point is saved, fit returns.
    const SignalAt term_at_5(d.train, 5, SIGTERM);
    const TrainResult r1 = fit_simple(term_at_5, d.test, options(broken, false));
    BOOST_TEST(r1.stopped_by_signal == SIGTERM);
    BOOST_TEST(r1.epochs_done == 0);
    BOOST_TEST(r1.batch_in_epoch == 5u);
    BOOST_TEST(r1.steps == 5);
    BOOST_TEST(r1.test.count == 0u);  // no final evaluation
    BOOST_TEST(term_at_5.int_after == SIG_DFL);  // after the first signal, a second one ends the process
    BOOST_TEST(term_at_5.term_after == SIG_DFL);
    BOOST_TEST(handler_of(SIGINT) == &test_handler);  // the program's handlers are back
    BOOST_TEST(handler_of(SIGTERM) == &test_handler);
    BOOST_TEST(test_handler_calls == 0);
    BOOST_TEST(metadata(ckpt, "epochs_done") == "0");
    BOOST_TEST(metadata(ckpt, "batch_in_epoch") == "5");
    BOOST_TEST(metadata(ckpt, "window_batches") == "1");  // reported after batch 4; batch 5 summed, not reported
    BOOST_TEST(!fs::exists(broken / "metrics.json"));
    BOOST_TEST(!has_temp_file(broken));

    // 2. Resumed; SIGINT while epoch 1 is evaluated: its checkpoint is saved, then fit stops.
    const SignalAt int_in_eval(d.test, 1, SIGINT);
    const TrainResult r2 = fit_simple(d.train, int_in_eval, options(broken, true));
    BOOST_TEST(r2.stopped_by_signal == SIGINT);
    BOOST_TEST(r2.epochs_done == 1);
    BOOST_TEST(r2.batch_in_epoch == 0u);
    BOOST_TEST(r2.steps == 30);
    BOOST_TEST(metadata(ckpt, "batch_in_epoch") == "0");

    // 3. Resumed; SIGINT during batch 14 of epoch 2, then (4.) again during batch 17 of the same epoch,
    // after a resume that skipped the first 14 batches (without reading them: batch 17 is its 3rd fill).
    const SignalAt int_at_14(d.train, 14, SIGINT);
    const TrainResult r3 = fit_simple(int_at_14, d.test, options(broken, true));
    BOOST_TEST(r3.stopped_by_signal == SIGINT);
    BOOST_TEST((r3.epochs_done == 1 && r3.batch_in_epoch == 14u && r3.steps == 44));
    CHECK_MESSAGE_HAS(error_of([&] { fit_simple(d.train, d.test, options(broken, true, 1)); }),
                      "stopped in epoch 2, so it needs at least 2 epochs, not 1");
    const SignalAt int_at_17(d.train, 3, SIGINT);
    const TrainResult r4 = fit_simple(int_at_17, d.test, options(broken, true));
    BOOST_TEST((r4.epochs_done == 1 && r4.batch_in_epoch == 17u && r4.steps == 47));
    BOOST_TEST(metadata(ckpt, "window_batches") == "1");  // batch 17; 16 was reported

    // 5. To the end: the same weights, optimiser state, metrics and log as the unbroken run.
    const TrainResult last = fit_simple(d.train, d.test, options(broken, true));
    BOOST_TEST(last.stopped_by_signal == 0);
    BOOST_TEST(last.steps == unbroken.steps);
    BOOST_TEST(last.train_images == unbroken.train_images);
    BOOST_TEST(last.test.loss == unbroken.test.loss);
    BOOST_TEST(last.test.accuracy == unbroken.test.accuracy);
    BOOST_TEST(last.test.confusion == unbroken.test.confusion);
    check_same_tensors(straight / "checkpoint.safetensors", ckpt);
    check_same_log(straight / "log.csv", broken / "log.csv");
    BOOST_TEST(test_handler_calls == 0);
}

BOOST_AUTO_TEST_CASE(a_wrong_position_in_the_checkpoint_is_refused_naming_it) {
    const Data d;
    const TempDir tmp;
    const fs::path run = tmp.path / "run", ckpt = run / "checkpoint.safetensors";
    const SignalAt int_at_7(d.train, 7, SIGINT);
    BOOST_TEST_REQUIRE(fit_simple(int_at_7, d.test, options(run, false)).batch_in_epoch == 7u);
    const TensorFile good = load_safetensors(ckpt);
    const auto refused = [&](const std::string& key, const std::string& value) {
        TensorFile bad = good;
        if (value.empty())
            bad.metadata.erase(key);
        else
            bad.metadata[key] = value;
        save_safetensors(ckpt, bad);
        return error_of([&] { fit_simple(d.train, d.test, options(run, true)); });
    };
    CHECK_MESSAGE_HAS(refused("batch_in_epoch", "31"), "'batch_in_epoch' must be an integer from 0 to 30, got '31'");
    CHECK_MESSAGE_HAS(refused("batch_in_epoch", "-1"), "'batch_in_epoch' must be an integer from 0 to 30, got '-1'");
    CHECK_MESSAGE_HAS(refused("window_batches", "8"), "'window_batches' must be an integer from 0 to 7, got '8'");
    CHECK_MESSAGE_HAS(refused("window_images", "25"), "'window_images' must be an integer from 0 to 24, got '25'");
    CHECK_MESSAGE_HAS(refused("window_loss", "nan"), "'window_loss' must be a finite number");
    CHECK_MESSAGE_HAS(refused("window_correct", ""), "checkpoint metadata lacks 'window_correct'");
    save_safetensors(ckpt, good);
    BOOST_TEST(fit_simple(d.train, d.test, options(run, true)).steps == 90);
}

BOOST_AUTO_TEST_CASE(signal_handling_can_be_off_and_ignored_signals_stay_ignored) {
    const Data d;
    const TempDir tmp;
    {
        const HandlerFor own(SIGINT, test_handler);
        const SignalAt look(d.train, 3, 0);
        FitOptions o = options(tmp.path / "off", false, 1);
        o.handle_signals = false;
        BOOST_TEST(fit_simple(look, d.test, o).steps == 30);
        BOOST_TEST(look.int_after == &test_handler);  // left alone while fit ran
    }
    {
        const HandlerFor ignored(SIGINT, SIG_IGN);  // as a shell sets it for a background command
        const SignalAt int_at_3(d.train, 3, SIGINT);
        const TrainResult r = fit_simple(int_at_3, d.test, options(tmp.path / "ignored", false, 1));
        BOOST_TEST(r.stopped_by_signal == 0);
        BOOST_TEST(r.steps == 30);
        BOOST_TEST(int_at_3.int_after == SIG_IGN);
        BOOST_TEST(handler_of(SIGINT) == SIG_IGN);
    }
}

BOOST_AUTO_TEST_CASE(a_checkpoint_that_cannot_be_written_leaves_the_last_one_and_no_temporary_file) {
    const Data d;
    const TempDir tmp;
    const fs::path run = tmp.path / "run", ckpt = run / "checkpoint.safetensors";
    fit_simple(d.train, d.test, options(run, false, 1));
    const std::string before = bytes_of(ckpt);
    BOOST_TEST_REQUIRE(before.size() > 400'000u);  // SimpleCNN and its momentum: ~500 kB
    BOOST_TEST_REQUIRE(handler_of(SIGXFSZ) == SIG_DFL);  // SIGXFSZ would end the process unless the library ignores it
    std::string msg;
    {
        const FileSizeLimit limit(64 * 1024);  // a full disk as far as the checkpoint is concerned
        msg = error_of([&] { fit_simple(d.train, d.test, options(run, true, 2)); });
    }
    CHECK_MESSAGE_HAS(msg, (run / "checkpoint.safetensors.tmp").string());
    CHECK_MESSAGE_HAS(msg, "File too large");
    CHECK_MESSAGE_HAS(msg, "ulimit -f");
    CHECK_MESSAGE_HAS(msg, "after epoch 1, step 30");  // the checkpoint that is left
    BOOST_TEST(bytes_of(ckpt) == before);
    BOOST_TEST(!has_temp_file(run));
    BOOST_TEST(handler_of(SIGXFSZ) == SIG_DFL);
    // The run goes on once there is room.
    BOOST_TEST(fit_simple(d.train, d.test, options(run, true, 2)).steps == 60);
}

BOOST_AUTO_TEST_CASE(appending_past_the_file_size_limit_fails_and_leaves_the_file_as_it_was) {
    const TempDir tmp;
    const fs::path log = tmp.path / "log.csv";
    append_to_file(log, "header\n");
    append_to_file(log, "row 1\n");
    BOOST_TEST(bytes_of(log) == "header\nrow 1\n");
    std::string msg;
    {
        const FileSizeLimit limit(1000);
        msg = error_of([&] { append_to_file(log, std::string(5000, 'x')); });
        CHECK_MESSAGE_HAS(error_of([&] { write_file_atomically(tmp.path / "big.txt", std::string(5000, 'y')); }),
                          "File too large");
    }
    CHECK_MESSAGE_HAS(msg, log.string());
    CHECK_MESSAGE_HAS(msg, "File too large");
    BOOST_TEST(bytes_of(log) == "header\nrow 1\n");  // no half row
    BOOST_TEST((tmp.files() == std::vector<std::string>{"log.csv"}));
    CHECK_MESSAGE_HAS(error_of([&] { append_to_file(tmp.path / "no" / "log.csv", "x"); }), "No such file or directory");
}

BOOST_AUTO_TEST_CASE(a_read_only_run_folder_is_refused_naming_the_file_and_the_reason) {
    if (::geteuid() == 0) {
        BOOST_TEST_MESSAGE("skipped: root writes into read-only folders (the file-size limit case covers write errors)");
        return;
    }
    const Data d;
    const TempDir tmp;
    const fs::path run = tmp.path / "run";
    fit_simple(d.train, d.test, options(run, false, 1));
    const std::string before = bytes_of(run / "checkpoint.safetensors");
    fs::permissions(run, fs::perms::owner_read | fs::perms::owner_exec);
    const std::string msg = error_of([&] { fit_simple(d.train, d.test, options(run, true, 2)); });
    fs::permissions(run, fs::perms::owner_all);
    CHECK_MESSAGE_HAS(msg, run.string());
    CHECK_MESSAGE_HAS(msg, "Permission denied");
    BOOST_TEST(bytes_of(run / "checkpoint.safetensors") == before);
    BOOST_TEST(!has_temp_file(run));
}

BOOST_AUTO_TEST_CASE(a_run_folder_is_locked_while_a_process_trains_in_it) {
    const Data d;
    const TempDir tmp;
    const fs::path run = tmp.path / "run";
    fit_simple(d.train, d.test, options(run, false, 1));
    // Another process takes the folder's lock as a training process does, then waits.
    int ready[2];
    BOOST_TEST_REQUIRE(::pipe(ready) == 0);
    const std::string lock_file = (run / ".lock").string();
    const pid_t child = ::fork();
    BOOST_TEST_REQUIRE(child >= 0);
    if (child == 0) {  // async-signal-safe calls only: the parent has threads
        const int fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT, 0644);
        if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0) ::_exit(1);
        char digits[24];
        int n = 0;
        for (pid_t p = ::getpid(); p > 0; p /= 10) digits[n++] = static_cast<char>('0' + p % 10);
        char text[24];
        for (int i = 0; i < n; ++i) text[i] = digits[n - 1 - i];
        if (::ftruncate(fd, 0) != 0 || ::write(fd, text, static_cast<std::size_t>(n)) != n) ::_exit(1);
        if (::write(ready[1], "r", 1) != 1) ::_exit(1);
        for (;;) ::pause();
    }
    ::close(ready[1]);
    char c = 0;
    const bool locked = ::read(ready[0], &c, 1) == 1;
    ::close(ready[0]);
    BOOST_TEST_REQUIRE(locked);
    const std::string holder = fmt::format("(PID {})", child);
    for (bool resume : {true, false}) {  // a resume, and a new run into the folder
        const std::string msg = error_of([&] { fit_simple(d.train, d.test, options(run, resume, 2)); });
        CHECK_MESSAGE_HAS(msg, "in use by another training process " + holder);
        CHECK_MESSAGE_HAS(msg, run.string());
    }
    // kill -9 leaves no stale lock: the kernel drops it with the process.
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    BOOST_TEST(fit_simple(d.train, d.test, options(run, true, 2)).steps == 60);
    BOOST_TEST(read_text(run / ".lock") == fmt::format("{}\n", ::getpid()));  // the last holder's
}

BOOST_AUTO_TEST_SUITE_END()
