// run_command_line: one program, every tool: `prog COMMAND [flags]`, for the built-in models and
// those the program registered before calling it.
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common.hpp"
#include "mcnn/cli.hpp"
#include "mcnn/threads.hpp"

namespace mcnn {
namespace {

struct Command {
    const char* name;
    const char* about;
    int (*run)(int argc, char** argv);
};

int bench_command(int argc, char** argv) {
    return cli::detail::bench(argc, argv, {"bench"});
}

const std::vector<Command>& commands() {
    static const std::vector<Command> list = {
        {"train", "train a model on CIFAR-10, writing a run folder (--resume goes on)", cli::train},
        {"tune", "search training settings on a validation split (ASHA; --retrain-best tests the best once)", cli::tune},
        {"gradcheck", "check gradients numerically in double: --model NAME, or --node NAME|all", cli::gradcheck},
        {"summary", "a model's layers, shapes and parameters; --graph FILE draws one training step", cli::summary},
        {"visualize", "pictures of a model's first conv layer and predictions (PNG)", cli::visualize},
        {"bench", "speed of training steps and inference, split by node kind", bench_command},
    };
    return list;
}

std::string usage(const std::string& program) {
    std::string out = fmt::format("Usage: {} COMMAND [flags]   ({} COMMAND --help for the flags)\n\nCommands:\n", program, program);
    for (const Command& c : commands()) out += fmt::format("  {:<10} {}\n", c.name, c.about);
    return out + "\n" + cli::detail::model_table();
}

}  // namespace

int run_command_line(int argc, char** argv) {
    // Here, with main's own argv: the command's run_main below gets a shortened one.
    use_default_openmp_wait_policy(argv);  // idle threads sleep: see threads.hpp (may execute the program again)
    const std::string program = argc > 0 && argv[0] ? std::filesystem::path(argv[0]).filename().string() : "mcnn";
    if (argc < 2) {
        fmt::print(stderr, "{}: no command given\n{}", program, usage(program));
        return 2;
    }
    const std::string name = argv[1];
    if (name == "help" || name == "--help" || name == "-h") {
        fmt::print("{}", usage(program));
        return 0;
    }
    for (const Command& c : commands()) {
        if (name != c.name) continue;
        // The command sees its own name as argv[0] ("prog train") and the flags after it.
        std::string shown = program + " " + name;
        std::vector<char*> args{shown.data()};
        for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
        args.push_back(nullptr);
        return cli::run_main(c.run, static_cast<int>(args.size()) - 1, args.data());
    }
    fmt::print(stderr, "{}: unknown command '{}'\n{}", program, name, usage(program));
    return 2;
}

int cli::run_main(int (*command)(int, char**), int argc, char** argv) {
    use_default_openmp_wait_policy(argv);  // idle threads sleep: see threads.hpp (may execute the program again)
    const std::string program = argc > 0 && argv[0] ? std::string(argv[0]) : "mcnn";
    return cli::detail::run_reporting_errors(program, 1, [&] { return command(argc, argv); });
}

}  // namespace mcnn
