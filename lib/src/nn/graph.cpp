#include "mcnn/nn/graph.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>

extern char** environ;

namespace mcnn {
namespace {

namespace fs = std::filesystem;

// Colours: inputs blue, parameters green, ops orange, the loss red, constants and entries off the
// loss's path grey; gradients red and dashed.
constexpr const char* input_fill = "#cfe2f3";
constexpr const char* param_fill = "#d9ead3";
constexpr const char* op_fill = "#fce5cd";
constexpr const char* loss_fill = "#f4cccc";
constexpr const char* grey = "#999999";
constexpr const char* gradient_colour = "#c0392b";

/// `text` inside a dot string: quotes and backslashes escaped, new lines as centred line breaks.
std::string escaped(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

/// Which entries the loss depends on: the loss and, walking back from it, every recorded input of
/// an op already marked. This is the set backward(loss) sends gradients to (Tape::backward).
template <class T>
std::vector<bool> reaching_loss(const Tape<T>& tape, int loss) {
    std::vector<bool> marked(tape.size(), false);
    marked[static_cast<std::size_t>(loss)] = true;
    for (int id = loss; id >= 0; --id) {
        if (!marked[static_cast<std::size_t>(id)]) continue;
        for (int in : tape.inputs_of(id))
            if (in >= 0) marked[static_cast<std::size_t>(in)] = true;
    }
    return marked;
}

/// The node statement of entry `id`.
template <class T>
std::string node_line(const Tape<T>& tape, int id, int loss, bool on_path) {
    const std::string op = tape.op_name(id);
    const Tensor<T>& value = tape.value_at(id);
    std::string label, attrs;
    if (op == "param") {
        label = fmt::format("{}\n{}", tape.param_at(id)->name, value.shape().str());
        attrs = fmt::format("shape=box, style=\"filled,rounded\", fillcolor=\"{}\"", param_fill);
    } else if (op == "leaf") {
        label = fmt::format("input\n{}", value.shape().str());
        attrs = fmt::format("shape=ellipse, style=filled, fillcolor=\"{}\"", input_fill);
    } else if (id == loss) {
        label = fmt::format("{}\n{}loss = {:.6g}", op, value.shape().rank() ? value.shape().str() + "\n" : "",
                            static_cast<double>(value[0]));
        attrs = fmt::format("shape=box, style=filled, peripheries=2, fillcolor=\"{}\"", loss_fill);
    } else {
        label = fmt::format("{}\n{}", op, value.shape().str());
        attrs = fmt::format("shape=box, style=filled, fillcolor=\"{}\"", op_fill);
    }
    if (!on_path) {
        label += "\n(not used by the loss)";
        attrs += fmt::format(", color=\"{0}\", fontcolor=\"{0}\"", grey);
    }
    return fmt::format("  n{} [label=\"{}\", {}, tooltip=\"entry {}\"];\n", id, escaped(label), attrs, id);
}

/// The edges into op `id`: forward from each input (a constant node for unrecorded ones), and the
/// gradients back to its recorded inputs when `gradients`.
template <class T>
std::string edge_lines(const Tape<T>& tape, int id, bool gradients) {
    std::string out;
    const std::vector<int>& inputs = tape.inputs_of(id);
    for (std::size_t k = 0; k < inputs.size(); ++k) {
        if (inputs[k] < 0) {
            out += fmt::format("  c{0}_{1} [label=\"constant\", shape=box, style=dotted, color=\"{2}\", fontcolor=\"{2}\"];\n"
                               "  c{0}_{1} -> n{0} [color=\"{2}\"];\n",
                               id, k, grey);
            continue;
        }
        out += fmt::format("  n{} -> n{};\n", inputs[k], id);
        if (gradients)
            out += fmt::format("  n{} -> n{} [style=dashed, color=\"{}\", constraint=false];\n", id, inputs[k], gradient_colour);
    }
    return out;
}

std::string legend() {
    std::string rows;
    const auto row = [&](const char* colour, const char* text) {
        rows += fmt::format("<tr><td bgcolor=\"{}\" width=\"24\"></td><td align=\"left\">{}</td></tr>", colour, text);
    };
    row(input_fill, "input (a leaf that receives a gradient)");
    row(param_fill, "parameter: name, shape");
    row(op_fill, "op: name, output shape");
    row(loss_fill, "the loss");
    row("white", "constant (no gradient, not recorded)");
    rows += "<tr><td>&#8594;</td><td align=\"left\">forward: input to op</td></tr>";
    rows += fmt::format("<tr><td><font color=\"{}\">&#8594;</font></td><td align=\"left\"><font color=\"{}\">"
                        "gradient (dashed): sent back by backward()</font></td></tr>",
                        gradient_colour, gradient_colour);
    return "  legend [shape=plaintext, label=<<table border=\"0\" cellborder=\"1\" cellspacing=\"0\" cellpadding=\"3\">" + rows +
           "</table>>];\n";
}

}  // namespace

template <class T>
std::string graph_dot(const Tape<T>& tape, const Var<T>& loss, const std::string& title) {
    if (loss.tape() != &tape || !loss.requires_grad() || static_cast<std::size_t>(loss.id()) >= tape.size())
        fail("graph_dot: the loss was not recorded on this tape (a constant, inference mode, or another tape)");
    const std::vector<bool> on_path = reaching_loss(tape, loss.id());
    const bool backward_done = tape.has_grad(loss);
    std::string out = "digraph tape {\n  rankdir=TB;\n  newrank=true;\n";
    out += "  graph [fontname=\"Helvetica\", fontsize=12, nodesep=0.3, ranksep=0.35";
    if (!title.empty()) out += fmt::format(", label=\"{}\", labelloc=t", escaped(title));
    out += "];\n  node [fontname=\"Helvetica\", fontsize=10];\n  edge [arrowsize=0.7];\n";
    out += legend();
    for (int id = 0; id < static_cast<int>(tape.size()); ++id) {
        const bool used = on_path[static_cast<std::size_t>(id)];
        out += node_line(tape, id, loss.id(), used);
        out += edge_lines(tape, id, backward_done && used);
    }
    return out + "}\n";
}

template std::string graph_dot(const Tape<float>&, const Var<float>&, const std::string&);
template std::string graph_dot(const Tape<double>&, const Var<double>&, const std::string&);

fs::path find_graphviz_dot() {
    const char* path = std::getenv("PATH");
    std::stringstream folders(path ? path : "");
    std::string folder;
    while (std::getline(folders, folder, ':')) {
        if (folder.empty()) continue;
        const fs::path candidate = fs::path(folder) / "dot";
        if (::access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate)) return candidate;
    }
    return {};
}

namespace {

/// Writes `text` to `file` through a temporary file renamed into place.
void write_atomically(const fs::path& file, const std::string& text) {
    const fs::path tmp = fs::path(file).concat(".tmp");
    {
        std::ofstream f(tmp, std::ios::binary);
        if (!(f << text) || !f.flush()) fail("render_graph: cannot write {}", file.string());
    }
    std::error_code ec;
    fs::rename(tmp, file, ec);
    if (ec) {
        fs::remove(tmp, ec);
        fail("render_graph: cannot write {}", file.string());
    }
}

/// Runs `dot -T<format> -o <out> <dot_file>`; returns its exit status (127 when it could not
/// start), its messages in `messages`.
int run_dot(const fs::path& dot, const std::string& format, const fs::path& out, const fs::path& dot_file, std::string& messages) {
    const fs::path log = fs::path(out).concat(".log");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> args{dot.string(), "-T" + format, "-o", out.string(), dot_file.string()};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    int status = 0;
    const int spawned = posix_spawn(&pid, dot.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned == 0 && waitpid(pid, &status, 0) < 0) status = -1;
    std::ifstream f(log);
    std::stringstream s;
    s << f.rdbuf();
    messages = s.str();
    std::error_code ec;
    fs::remove(log, ec);
    if (spawned != 0) return 127;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace

GraphFiles render_graph(const std::string& dot_text, const fs::path& path) {
    const std::string ext = path.extension().string();
    if (ext != ".png" && ext != ".svg" && ext != ".dot")
        fail("render_graph: {}: give a file ending in .png, .svg or .dot", path.string());
    GraphFiles files;
    files.dot = fs::path(path).replace_extension(".dot");
    write_atomically(files.dot, dot_text);
    if (ext == ".dot") return files;
    const fs::path dot = find_graphviz_dot();
    if (dot.empty()) return files;
    const fs::path tmp = fs::path(path).concat(".tmp");
    std::string messages;
    const int status = run_dot(dot, ext.substr(1), tmp, files.dot, messages);
    std::error_code ec;
    if (status != 0) {
        fs::remove(tmp, ec);
        while (!messages.empty() && std::isspace(static_cast<unsigned char>(messages.back()))) messages.pop_back();
        fail("render_graph: Graphviz's dot could not draw {} from {} (exit status {}){}{}", path.string(), files.dot.string(),
             status, messages.empty() ? "" : ": ", messages);
    }
    fs::rename(tmp, path, ec);
    if (ec) {
        fs::remove(tmp, ec);
        fail("render_graph: cannot write {}", path.string());
    }
    files.picture = path;
    return files;
}

}  // namespace mcnn
