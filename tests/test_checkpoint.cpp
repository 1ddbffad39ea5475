// safetensors checkpoints: round trips are bit-exact (ranks 0-4, zero dimensions, -0, subnormals,
// infinities, NaN payloads) and keep order and metadata; the bytes are exactly the format of the
// spec (checked against a hex string built by hand); hand-built files in other valid spellings
// read back; files written and read by Python (struct + json + numpy, when available) interoperate;
// every malformed file is refused with a message naming the file and the problem; saving is atomic
// (temp file + rename: no leftovers, old file intact on failure, stale temp files do not matter).
// Checkpoints of a model and its optimiser (save_checkpoint / load_checkpoint): never saved nor
// loaded with NaN or infinity (the message names the tensor and element); every tensor the run needs
// must be there (optimiser state that was empty when saved is listed as such), none it does not know.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <csignal>
#include <sys/resource.h>
#include <sys/stat.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "mcnn/nn/models.hpp"
#include "mcnn/optim/sgd.hpp"
#include "mcnn/train/checkpoint.hpp"
#include "mcnn/train/trainer.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;
namespace fs = std::filesystem;

namespace {

std::string read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    BOOST_TEST_REQUIRE(static_cast<bool>(in), "cannot open " << path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    BOOST_TEST_REQUIRE(static_cast<bool>(out), "cannot write " << path);
}

std::string le64(std::uint64_t v) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    return s;
}

std::uint64_t read_le64(const std::string& s) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[i]);
    return v;
}

std::uint32_t bits(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

float from_bits(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// Little-endian bytes of the given floats (built from the bit patterns, not the host's layout).
std::string f32_bytes(const std::vector<float>& values) {
    std::string s;
    for (float v : values)
        for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((bits(v) >> (8 * i)) & 0xff));
    return s;
}

// A safetensors file from its header text and data section, byte by byte as the spec says.
std::string st_file(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }

std::string from_hex(const std::string& hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    return out;
}

// Names, shapes and every bit of every value agree, in order.
void check_same(const TensorFile& got, const TensorFile& want) {
    BOOST_TEST_REQUIRE(got.tensors.size() == want.tensors.size());
    for (std::size_t i = 0; i < want.tensors.size(); ++i) {
        const auto& [gname, g] = got.tensors[i];
        const auto& [wname, w] = want.tensors[i];
        BOOST_TEST_CONTEXT("tensor " << i << " (" << wname << ")") {
            BOOST_TEST(gname == wname);
            BOOST_TEST_REQUIRE(g.shape().str() == w.shape().str());
            std::size_t differ = 0;
            for (std::size_t j = 0; j < w.numel(); ++j) differ += bits(g[j]) != bits(w[j]);
            BOOST_TEST(differ == 0u, differ << " values differ bitwise");
        }
    }
    BOOST_TEST((got.metadata == want.metadata));
}

TensorFile sample_file() {
    std::mt19937 rng(7);
    TensorFile f;
    f.tensors.emplace_back("scalar", Tensor<float>(Shape{}, std::vector<float>{-3.25f}));
    f.tensors.emplace_back(
        "special", Tensor<float>(Shape{10}, std::vector<float>{
                                                 -0.0f, std::numeric_limits<float>::denorm_min(), -1e-40f,  // subnormals
                                                 std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                                                 from_bits(0x7fc12345u),  // quiet NaN with a payload
                                                 std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest(),
                                                 std::numeric_limits<float>::min(), -1.5f}));
    f.tensors.emplace_back("weights.fc", uniform<float>(Shape{3, 5}, rng));
    f.tensors.emplace_back("no_rows", Tensor<float>(Shape{2, 0, 3}));  // a zero dimension: no bytes
    f.tensors.emplace_back("conv1.kernel", uniform<float>(Shape{4, 3, 5, 5}, rng));
    f.tensors.emplace_back("empty1d", Tensor<float>(Shape{0}));
    f.tensors.emplace_back("bias", uniform<float>(Shape{2, 1, 3}, rng));
    f.metadata = {{"epoch", "3"}, {"format", "pt"}, {"note", "\xc3\xbcnicode \xe2\x9c\x93 \"quoted\"\n"}, {"empty", ""}};
    return f;
}

bool python_with_numpy() {
    static const int rc = std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1");
    return rc == 0;
}

// Runs RLIMIT_FSIZE-limited code: writes past `limit` bytes fail with EFBIG (SIGXFSZ ignored)
// instead of killing the process, which stands in for a full disk. Restores both on exit.
struct FileSizeLimit {
    rlimit old{};
    void (*old_handler)(int) = nullptr;
    explicit FileSizeLimit(rlim_t limit) {
        ::getrlimit(RLIMIT_FSIZE, &old);
        old_handler = std::signal(SIGXFSZ, SIG_IGN);
        rlimit now = old;
        now.rlim_cur = limit;
        ::setrlimit(RLIMIT_FSIZE, &now);
    }
    ~FileSizeLimit() {
        ::setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, old_handler);
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(checkpoint)

BOOST_AUTO_TEST_CASE(round_trip_is_bit_exact_and_keeps_order_and_metadata) {
    TempDir tmp;
    const TensorFile f = sample_file();
    save_safetensors(tmp.path / "model.safetensors", f);
    const TensorFile g = load_safetensors(tmp.path / "model.safetensors");
    check_same(g, f);
    BOOST_TEST(g.contains("conv1.kernel"));
    BOOST_TEST(!g.contains("conv2.kernel"));
    BOOST_TEST(g.at("scalar").rank() == 0);
    BOOST_TEST(g.at("scalar")[0] == -3.25f);
    const std::string msg = error_of([&] { g.at("conv2.kernel"); });
    CHECK_MESSAGE_HAS(msg, "conv2.kernel");
    CHECK_MESSAGE_HAS(msg, "\"conv1.kernel\"");  // names what there is

    // Saving what was read gives the same bytes.
    save_safetensors(tmp.path / "again.safetensors", g);
    BOOST_TEST(read_bytes(tmp.path / "again.safetensors") == read_bytes(tmp.path / "model.safetensors"));

    // No tensors, no metadata: still a valid file.
    save_safetensors(tmp.path / "nothing.safetensors", TensorFile{});
    BOOST_TEST(read_bytes(tmp.path / "nothing.safetensors") == le64(8) + "{}      ");
    BOOST_TEST(load_safetensors(tmp.path / "nothing.safetensors").tensors.empty());
}

BOOST_AUTO_TEST_CASE(bytes_are_exactly_the_spec) {
    TempDir tmp;
    TensorFile f;
    f.tensors.emplace_back("x", Tensor<float>(Shape{2}, std::vector<float>{1.0f, -2.0f}));
    save_safetensors(tmp.path / "x.safetensors", f);
    // Built by hand from the spec: N = 56 (54 bytes of JSON + 2 spaces of padding), little-endian;
    // the JSON; then 1.0f = 0x3f800000 and -2.0f = 0xc0000000, little-endian.
    const std::string expected = from_hex(
        "3800000000000000"
        "7b2278223a7b226474797065223a22463332222c227368617065223a5b325d2c"  // {"x":{"dtype":"F32","shape":[2],
        "22646174615f6f666673657473223a5b302c385d7d7d"                      // "data_offsets":[0,8]}}
        "2020"                                                              // padding to a multiple of 8
        "0000803f"
        "000000c0");
    BOOST_TEST(expected.size() == 8u + 56u + 8u);
    const std::string got = read_bytes(tmp.path / "x.safetensors");
    BOOST_TEST(fmt::format("{:02x}", fmt::join(got, "")) == fmt::format("{:02x}", fmt::join(expected, "")));

    // And the hand-built bytes read back as [1, -2].
    write_bytes(tmp.path / "hand.safetensors", expected);
    const TensorFile g = load_safetensors(tmp.path / "hand.safetensors");
    BOOST_TEST_REQUIRE(g.tensors.size() == 1u);
    BOOST_TEST(g.tensors[0].first == "x");
    BOOST_TEST(g.at("x").shape().str() == "[2]");
    BOOST_TEST(g.at("x")[0] == 1.0f);
    BOOST_TEST(g.at("x")[1] == -2.0f);
}

BOOST_AUTO_TEST_CASE(header_is_json_and_offsets_tile_the_data) {
    TempDir tmp;
    const TensorFile f = sample_file();
    save_safetensors(tmp.path / "m.safetensors", f);
    const std::string bytes = read_bytes(tmp.path / "m.safetensors");
    const std::uint64_t n = read_le64(bytes);
    BOOST_TEST(n % 8 == 0u);
    BOOST_TEST_REQUIRE(8 + n <= bytes.size());
    const std::string text = bytes.substr(8, n);
    BOOST_TEST(text.find_last_not_of(' ') + 1 > n - 8);  // at most 7 bytes of padding
    const nlohmann::json header = nlohmann::json::parse(text);  // throws unless valid JSON
    BOOST_TEST_REQUIRE(header.is_object());
    BOOST_TEST(header.size() == f.tensors.size() + 1);
    BOOST_TEST(header["__metadata__"]["note"].get<std::string>() == f.metadata.at("note"));
    BOOST_TEST(header["__metadata__"]["epoch"].get<std::string>() == "3");
    std::uint64_t offset = 0;
    for (const auto& [name, t] : f.tensors) {
        BOOST_TEST_CONTEXT(name) {
            const auto& info = header.at(name);
            BOOST_TEST(info["dtype"].get<std::string>() == "F32");
            BOOST_TEST(info["shape"].is_array());  // [] for the scalar, never null
            BOOST_TEST((info["shape"].get<std::vector<int>>() == t.shape().dims()));
            BOOST_TEST(info["data_offsets"][0].get<std::uint64_t>() == offset);
            BOOST_TEST(info["data_offsets"][1].get<std::uint64_t>() == offset + 4 * t.numel());
            const std::vector<float> values(t.begin(), t.end());
            BOOST_TEST((bytes.substr(8 + n + offset, 4 * t.numel()) == f32_bytes(values)));
            offset += 4 * t.numel();
        }
    }
    BOOST_TEST(bytes.size() == 8 + n + offset);
}

BOOST_AUTO_TEST_CASE(reads_other_valid_spellings) {
    // Whitespace, no padding, metadata between tensors, header order unlike data order, an extra
    // field (ignored) and an empty tensor: the tensors come back in data order.
    TempDir tmp;
    const std::string header = R"( { "b" : {"shape": [2, 2], "dtype": "F32", "data_offsets": [8, 24], "extra": 1},
        "__metadata__": {"who": "hand"},
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "z": {"dtype": "F32", "shape": [0, 4], "data_offsets": [24, 24]},
        "s": {"dtype": "F32", "shape": [], "data_offsets": [24, 28]} }
)";
    write_bytes(tmp.path / "h.safetensors", st_file(header, f32_bytes({1, 2, 3, 4, 5, 6, -7.5f})));
    const TensorFile g = load_safetensors(tmp.path / "h.safetensors");
    BOOST_TEST_REQUIRE(g.tensors.size() == 4u);
    BOOST_TEST(g.tensors[0].first == "a");
    BOOST_TEST(g.tensors[1].first == "b");
    BOOST_TEST(g.tensors[2].first == "z");
    BOOST_TEST(g.tensors[3].first == "s");
    BOOST_TEST(g.at("b").shape().str() == "[2, 2]");
    BOOST_TEST(g.at("b").at({1, 0}) == 5.0f);
    BOOST_TEST(g.at("z").shape().str() == "[0, 4]");
    BOOST_TEST(g.at("s").rank() == 0);
    BOOST_TEST(g.at("s")[0] == -7.5f);
    BOOST_TEST(g.metadata.at("who") == "hand");
}

BOOST_AUTO_TEST_CASE(interoperates_with_python_numpy) {
    if (!python_with_numpy()) {
        BOOST_TEST_MESSAGE("skipped: /usr/bin/python3 with numpy not available");
        return;
    }
    TempDir tmp;
    // Python writes a file the way the reference `safetensors.numpy.save_file` lays it out (json.dumps
    // with its default ", " / ": " separators, metadata first, space padding) and reads ours back.
    const std::string script = R"PY(
import json, struct, sys
import numpy as np
ours, theirs = sys.argv[1], sys.argv[2]

a = np.arange(6, dtype='<f4').reshape(2, 3) - 2.5
b = np.array([np.inf, -0.0, 1e-45], dtype='<f4')
header = {"__metadata__": {"from": "python"},
          "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
          "b": {"dtype": "F32", "shape": [3], "data_offsets": [24, 36]}}
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(theirs, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + a.tobytes() + b.tobytes())

with open(ours, "rb") as f:
    raw = f.read()
n, = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n])
assert n % 8 == 0, n
assert h["__metadata__"] == {"step": "12"}, h
data = raw[8 + n:]
w = h["w"]
assert w["dtype"] == "F32" and w["shape"] == [2, 2], w
x = np.frombuffer(data[w["data_offsets"][0]:w["data_offsets"][1]], dtype="<f4").reshape(w["shape"])
assert (x == np.array([[1, -2], [0.5, 3e38]], dtype=np.float32)).all(), x
s = h["s"]
assert s["shape"] == [], s
y = np.frombuffer(data[s["data_offsets"][0]:s["data_offsets"][1]], dtype="<f4").reshape(s["shape"])
assert y.shape == () and y == np.float32(-9), y
assert s["data_offsets"][1] == len(data)
)PY";
    write_bytes(tmp.path / "check.py", script);
    TensorFile ours;
    ours.tensors.emplace_back("w", Tensor<float>(Shape{2, 2}, std::vector<float>{1, -2, 0.5f, 3e38f}));
    ours.tensors.emplace_back("s", Tensor<float>(Shape{}, std::vector<float>{-9}));
    ours.metadata["step"] = "12";
    save_safetensors(tmp.path / "ours.safetensors", ours);
    const std::string cmd =
        fmt::format("/usr/bin/python3 '{}' '{}' '{}'", (tmp.path / "check.py").string(),
                    (tmp.path / "ours.safetensors").string(), (tmp.path / "theirs.safetensors").string());
    BOOST_TEST_REQUIRE(std::system(cmd.c_str()) == 0, "python check failed: " << cmd);

    const TensorFile theirs = load_safetensors(tmp.path / "theirs.safetensors");
    BOOST_TEST_REQUIRE(theirs.tensors.size() == 2u);
    BOOST_TEST(theirs.tensors[0].first == "a");
    BOOST_TEST(theirs.at("a").shape().str() == "[2, 3]");
    for (int i = 0; i < 6; ++i) BOOST_TEST(theirs.at("a")[i] == static_cast<float>(i) - 2.5f);
    BOOST_TEST(std::isinf(theirs.at("b")[0]));
    BOOST_TEST(bits(theirs.at("b")[1]) == 0x80000000u);
    BOOST_TEST(bits(theirs.at("b")[2]) == 1u);
    BOOST_TEST(theirs.metadata.at("from") == "python");
}

BOOST_AUTO_TEST_CASE(malformed_files_are_refused_naming_file_and_problem) {
    TempDir tmp;
    const std::string x_entry = R"("x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
    const std::string two = f32_bytes({1, 2});
    struct Case {
        std::string what, bytes, part;
    };
    const std::vector<Case> cases = {
        {"three bytes", "abc", "truncated"},
        {"header past the end", le64(1000) + "{}", "truncated: header says 1000 bytes, file has 2"},
        {"header not JSON", st_file("{\"x\": {", ""), "not valid JSON"},
        {"header not an object", st_file("[1, 2]", ""), "not an object"},
        {"F16", st_file(R"({"h": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})", "abcd"),
         "unsupported dtype F16 for tensor \"h\", ManualCNN stores F32"},
        {"shape and offsets disagree", st_file(R"({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", two),
         "shape [3] (3 F32 values, 12 bytes) but data_offsets [0, 8] span 8 bytes"},
        {"overlapping ranges",
         st_file(R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                 f32_bytes({1, 2, 3})),
         "overlap"},
        {"gap", st_file(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", two), "gap"},
        {"data truncated", st_file("{" + x_entry + "}", two.substr(0, 7)), "truncated"},
        {"trailing data", st_file("{" + x_entry + "}", two + "!"), "1 byte(s) after the last tensor"},
        {"negative dimension", st_file(R"({"x": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", two),
         "dimensions must be integers"},
        {"fractional dimension", st_file(R"({"x": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}})", two),
         "dimensions must be integers"},
        {"rank 5", st_file(R"({"x": {"dtype": "F32", "shape": [1,1,1,1,2], "data_offsets": [0, 8]}})", two),
         "rank 5"},
        {"end before begin", st_file(R"({"x": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", two),
         "data_offsets [8,0]"},
        {"no shape", st_file(R"({"x": {"dtype": "F32", "data_offsets": [0, 8]}})", two), "has no \"shape\""},
        {"metadata not strings", st_file(R"({"__metadata__": {"epoch": 3}, )" + x_entry + "}", two),
         "metadata value for key \"epoch\" is a JSON number"},
        {"duplicate tensor", st_file("{" + x_entry + ", " + x_entry + "}", two), "\"x\" more than once"},
    };
    for (const Case& c : cases) {
        BOOST_TEST_CONTEXT(c.what) {
            const fs::path path = tmp.path / "bad.safetensors";
            write_bytes(path, c.bytes);
            const std::string msg = error_of([&] { load_safetensors(path); });
            CHECK_MESSAGE_HAS(msg, path.string());
            CHECK_MESSAGE_HAS(msg, c.part);
        }
    }

    // A good file cut by one byte.
    TensorFile f = sample_file();
    save_safetensors(tmp.path / "good.safetensors", f);
    std::string bytes = read_bytes(tmp.path / "good.safetensors");
    bytes.pop_back();
    write_bytes(tmp.path / "cut.safetensors", bytes);
    std::string msg = error_of([&] { load_safetensors(tmp.path / "cut.safetensors"); });
    CHECK_MESSAGE_HAS(msg, (tmp.path / "cut.safetensors").string());
    CHECK_MESSAGE_HAS(msg, "truncated");

    msg = error_of([&] { load_safetensors(tmp.path / "missing.safetensors"); });
    CHECK_MESSAGE_HAS(msg, (tmp.path / "missing.safetensors").string());
    CHECK_MESSAGE_HAS(msg, "does not exist");
    msg = error_of([&] { load_safetensors(tmp.path); });
    CHECK_MESSAGE_HAS(msg, "is a folder, not a regular file");
}

// Only regular files are opened (a FIFO would block the reader forever), and every size in the
// file is checked against the file's size before anything of that size is allocated.
BOOST_AUTO_TEST_CASE(special_files_and_huge_sizes_are_refused_before_reading) {
    TempDir tmp;
    const fs::path fifo = tmp.path / "checkpoint.safetensors";
    BOOST_TEST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    std::string msg = error_of([&] { load_safetensors(fifo); });
    CHECK_MESSAGE_HAS(msg, fifo.string());
    CHECK_MESSAGE_HAS(msg, "is a FIFO (named pipe), not a regular file");
    CHECK_MESSAGE_HAS(error_of([&] { load_safetensors("/dev/zero"); }), "'/dev/zero' is a character device");

    // A header of 150 MB in a (sparse) file that holds it: refused before reading or parsing it.
    const fs::path big = tmp.path / "big.safetensors";
    write_bytes(big, le64(150'000'000) + "{");
    fs::resize_file(big, 8 + 150'000'000);
    msg = error_of([&] { load_safetensors(big); });
    CHECK_MESSAGE_HAS(msg, "header says 150000000 bytes, more than the 100000000 a safetensors header may have");

    // A tensor of 4 GB in a file of 8 data bytes: refused by its range, not by a failed allocation.
    const fs::path huge = tmp.path / "huge.safetensors";
    write_bytes(huge, st_file(R"({"x": {"dtype": "F32", "shape": [1000000000], "data_offsets": [0, 4000000000]}})",
                              f32_bytes({1, 2})));
    msg = error_of([&] { load_safetensors(huge); });
    CHECK_MESSAGE_HAS(msg, "truncated: tensor \"x\" ends at byte 4000000000 of the data section, but the file has only 8");
}

BOOST_AUTO_TEST_CASE(bad_tensor_files_are_refused_on_save) {
    TempDir tmp;
    const fs::path path = tmp.path / "bad.safetensors";
    const Tensor<float> t(Shape{2}, 1.0f);
    TensorFile f;
    f.tensors = {{"a", t}, {"", t}};
    CHECK_MESSAGE_HAS(error_of([&] { save_safetensors(path, f); }), "empty name");
    f.tensors = {{"a", t}, {"b", t}, {"a", t}};
    CHECK_MESSAGE_HAS(error_of([&] { save_safetensors(path, f); }), "two tensors are named \"a\"");
    f.tensors = {{"__metadata__", t}};
    CHECK_MESSAGE_HAS(error_of([&] { save_safetensors(path, f); }), "reserved");
    f.tensors = {{"bad\xff", t}};
    CHECK_MESSAGE_HAS(error_of([&] { save_safetensors(path, f); }), "UTF-8");
    BOOST_TEST(tmp.files().empty());  // nothing was written
}

BOOST_AUTO_TEST_CASE(saving_replaces_atomically_and_leaves_no_temp_file) {
    TempDir tmp;
    const fs::path path = tmp.path / "ckpt.safetensors";
    TensorFile first;
    first.tensors.emplace_back("w", Tensor<float>(Shape{100}, 1.0f));
    save_safetensors(path, first);
    TensorFile second;
    second.tensors.emplace_back("v", Tensor<float>(Shape{3}, 2.0f));
    second.metadata["epoch"] = "2";
    save_safetensors(path, second);
    check_same(load_safetensors(path), second);
    BOOST_TEST((tmp.files() == std::vector<std::string>{"ckpt.safetensors"}));

    // A relative path (no directory part) works too.
    const fs::path cwd = fs::current_path();
    fs::current_path(tmp.path);
    save_safetensors("rel.safetensors", second);
    fs::current_path(cwd);
    check_same(load_safetensors(tmp.path / "rel.safetensors"), second);
}

BOOST_AUTO_TEST_CASE(failed_saves_leave_the_old_file_and_no_temp_file) {
    TempDir tmp;
    const fs::path path = tmp.path / "ckpt.safetensors";
    TensorFile old;
    old.tensors.emplace_back("w", Tensor<float>(Shape{4}, 1.0f));
    save_safetensors(path, old);
    const std::string old_bytes = read_bytes(path);

    TensorFile big;
    big.tensors.emplace_back("w", Tensor<float>(Shape{256, 256}, 3.0f));  // 256 KiB

    // Into a directory that does not exist.
    const fs::path nowhere = tmp.path / "no" / "such" / "dir" / "ckpt.safetensors";
    std::string msg = error_of([&] { save_safetensors(nowhere, big); });
    CHECK_MESSAGE_HAS(msg, nowhere.string());
    CHECK_MESSAGE_HAS(msg, "does the directory");
    BOOST_TEST(!fs::exists(tmp.path / "no"));

    // Over something rename cannot replace (a non-empty directory).
    fs::create_directories(tmp.path / "adir" / "inside");
    msg = error_of([&] { save_safetensors(tmp.path / "adir", big); });
    CHECK_MESSAGE_HAS(msg, (tmp.path / "adir").string());
    BOOST_TEST(fs::is_directory(tmp.path / "adir" / "inside"));
    BOOST_TEST(!fs::exists(tmp.path / "adir.tmp"));

    // A write that fails half way (the file-size limit stands in for a full disk).
    {
        FileSizeLimit limit(64 * 1024);
        msg = error_of([&] { save_safetensors(path, big); });
    }
    CHECK_MESSAGE_HAS(msg, path.string());
    CHECK_MESSAGE_HAS(msg, "failed after");
    BOOST_TEST(read_bytes(path) == old_bytes);
    BOOST_TEST((tmp.files() == std::vector<std::string>{"adir", "ckpt.safetensors"}));
}

BOOST_AUTO_TEST_CASE(stale_temp_file_does_not_break_the_next_save) {
    TempDir tmp;
    const fs::path path = tmp.path / "ckpt.safetensors";
    fs::path stale = path;
    stale += ".tmp";
    write_bytes(stale, std::string(100000, 'x'));  // half a checkpoint from a crashed save
    fs::permissions(stale, fs::perms::owner_read);  // and read-only
    TensorFile f;
    f.tensors.emplace_back("w", Tensor<float>(Shape{3}, 5.0f));
    save_safetensors(path, f);
    check_same(load_safetensors(path), f);
    BOOST_TEST(!fs::exists(stale));
    BOOST_TEST(fs::file_size(path) == 8u + 56u + 12u);
}

// ---- checkpoints of a model and its optimiser -------------------------------------------------------

namespace {

constexpr float nan_value = std::numeric_limits<float>::quiet_NaN();
constexpr float inf_value = std::numeric_limits<float>::infinity();

/// A SimpleCNN (10 parameters) and an SGD with momentum after one step, so that every momentum
/// buffer holds values.
struct Trained {
    Rng rng{3};
    SimpleCNN<float> model{rng};
    Sgd<float> sgd{model.parameters(), {.lr = 0.1, .momentum = 0.9}};
    Trained() {
        for (auto* p : model.parameters()) p->grad.fill(0.5f);
        sgd.step();
    }
    Tensor<float>& momentum(const std::string& parameter) {
        for (std::size_t i = 0; i < model.parameters().size(); ++i)
            if (model.parameters()[i]->name == parameter) return sgd.momentum_buffers()[i];
        BOOST_FAIL("no parameter " << parameter);
        throw;
    }
};

/// `file` with `name`'s element `index` set to `value`.
TensorFile with_value(TensorFile file, const std::string& name, std::size_t index, float value) {
    bool found = false;
    for (auto& [n, t] : file.tensors)
        if (n == name) {
            t[index] = value;
            found = true;
        }
    BOOST_TEST_REQUIRE(found, "no tensor " << name);
    return file;
}

/// `file` without the tensors called `names`.
TensorFile without(TensorFile file, const std::vector<std::string>& names) {
    std::erase_if(file.tensors, [&](const auto& t) { return std::find(names.begin(), names.end(), t.first) != names.end(); });
    return file;
}

/// True when every parameter and momentum buffer of `a` equals `b`'s bit for bit (NaN never does).
bool same_state(Trained& a, Trained& b) {
    for (std::size_t i = 0; i < a.model.parameters().size(); ++i) {
        if (!(a.model.parameters()[i]->value.array() == b.model.parameters()[i]->value.array()).all()) return false;
        const Tensor<float>& x = a.sgd.momentum_buffers()[i];
        const Tensor<float>& y = b.sgd.momentum_buffers()[i];
        if (x.shape() != y.shape() || !(x.array() == y.array()).all()) return false;
    }
    return true;
}

}  // namespace

BOOST_AUTO_TEST_CASE(non_finite_values_are_never_saved_and_are_named) {
    TempDir tmp;
    const fs::path path = tmp.path / "c.safetensors";
    Trained t;
    BOOST_TEST(!first_non_finite(t.model, &t.sgd).has_value());
    t.model.fc2.weight.value[125] = nan_value;  // fc2.weight is 84 x 120: row 1, column 5
    const auto bad = first_non_finite(t.model, &t.sgd);
    BOOST_TEST_REQUIRE(bad.has_value());
    BOOST_TEST(bad->tensor == "model/fc2.weight");
    BOOST_TEST(bad->index == 125u);
    BOOST_TEST(bad->str() == "model/fc2.weight holds nan at element 125 (index [1, 5] of [84, 120])");
    std::string msg = error_of([&] { save_checkpoint(path, t.model, &t.sgd, "simple", {}); });
    CHECK_MESSAGE_HAS(msg, "not saved");
    CHECK_MESSAGE_HAS(msg, "model/fc2.weight holds nan at element 125");
    BOOST_TEST(!fs::exists(path));

    // the optimiser's state is checked too: conv1.weight is 6 x 3 x 5 x 5, element 80 is [1, 0, 1, 0]
    t.model.fc2.weight.value[125] = 0.5f;
    t.momentum("conv1.weight")[80] = -inf_value;
    msg = error_of([&] { save_checkpoint(path, t.model, &t.sgd, "simple", {}); });
    CHECK_MESSAGE_HAS(msg, "sgd/momentum/conv1.weight holds -inf at element 80 (index [1, 0, 1, 0] of [6, 3, 5, 5])");
    BOOST_TEST(!fs::exists(path));
    // a parameter comes before any state; without the optimiser only parameters are looked at
    t.model.fc3.bias.value[0] = inf_value;
    BOOST_TEST(first_non_finite(t.model, &t.sgd)->tensor == "model/fc3.bias");
    t.model.fc3.bias.value[0] = 0;
    BOOST_TEST(!first_non_finite(t.model, nullptr).has_value());
}

BOOST_AUTO_TEST_CASE(non_finite_checkpoints_are_refused_naming_the_tensor) {
    TempDir tmp;
    const fs::path path = tmp.path / "c.safetensors";
    Trained saved;
    save_checkpoint(path, saved.model, &saved.sgd, "simple", {});
    const TensorFile good = load_safetensors(path);

    // one NaN in sgd/momentum/fc2.weight: refused, and nothing changes in the model or optimiser
    save_safetensors(path, with_value(good, "sgd/momentum/fc2.weight", 7, nan_value));
    Trained target, before;
    target.model.fc1.weight.value[0] = before.model.fc1.weight.value[0] = 2.0f;  // differs from the file
    std::string msg = error_of([&] { load_checkpoint(path, target.model, &target.sgd, "simple"); });
    CHECK_MESSAGE_HAS(msg, "cannot load a non-finite checkpoint");
    CHECK_MESSAGE_HAS(msg, "sgd/momentum/fc2.weight holds nan at element 7");
    BOOST_TEST(same_state(target, before));
    // without an optimiser the state is not read: the parameters load
    load_checkpoint(path, target.model, nullptr, "simple");
    BOOST_TEST((target.model.fc1.weight.value.array() == saved.model.fc1.weight.value.array()).all());

    save_safetensors(path, with_value(good, "model/conv2.bias", 3, -inf_value));
    msg = error_of([&] { load_checkpoint(path, target.model, nullptr, "simple"); });
    CHECK_MESSAGE_HAS(msg, "model/conv2.bias holds -inf at element 3 (index [3] of [16])");
}

BOOST_AUTO_TEST_CASE(missing_optimizer_state_is_refused_naming_it) {
    TempDir tmp;
    const fs::path path = tmp.path / "c.safetensors";
    Trained saved;
    save_checkpoint(path, saved.model, &saved.sgd, "simple", {});
    const TensorFile good = load_safetensors(path);
    BOOST_TEST(good.metadata.at("optimizer_state_empty") == "[]");

    Trained target, before;
    save_safetensors(path, without(good, {"sgd/momentum/fc3.bias", "sgd/momentum/fc2.weight"}));
    std::string msg = error_of([&] { load_checkpoint(path, target.model, &target.sgd, "simple"); });
    CHECK_MESSAGE_HAS(msg, "missing 2 of its 10 tensors (sgd/momentum/fc2.weight, sgd/momentum/fc3.bias)");
    CHECK_MESSAGE_HAS(msg, "--reset-optimizer");
    BOOST_TEST(same_state(target, before));

    std::vector<std::string> state;
    for (const auto& [name, t] : saved.sgd.state()) state.push_back(name);
    save_safetensors(path, without(good, state));
    msg = error_of([&] { load_checkpoint(path, target.model, &target.sgd, "simple"); });
    CHECK_MESSAGE_HAS(msg, "missing 10 of its 10 tensors (sgd/momentum/conv1.weight, ");
    CHECK_MESSAGE_HAS(msg, " and 4 more)");
    load_checkpoint(path, target.model, nullptr, "simple");  // the parameters alone load
    BOOST_TEST((target.model.fc3.bias.value.array() == saved.model.fc3.bias.value.array()).all());

    // a checkpoint written before empty state was listed: a missing tensor is missing
    TensorFile old = without(good, {"sgd/momentum/fc1.bias"});
    old.metadata.erase("optimizer_state_empty");
    save_safetensors(path, old);
    CHECK_MESSAGE_HAS(error_of([&] { load_checkpoint(path, target.model, &target.sgd, "simple"); }),
                      "missing 1 of its 10 tensors (sgd/momentum/fc1.bias)");
}

BOOST_AUTO_TEST_CASE(empty_optimizer_state_is_listed_and_restored_empty) {
    TempDir tmp;
    const fs::path path = tmp.path / "c.safetensors";
    // momentum 0 keeps no buffers at all; momentum 0.9 keeps none before its first step
    for (const double momentum : {0.0, 0.9}) {
        Rng rng(4);
        SimpleCNN<float> model(rng);
        Sgd<float> sgd(model.parameters(), {.lr = 0.1, .momentum = momentum});
        if (momentum == 0) {
            for (auto* p : model.parameters()) p->grad.fill(0.5f);
            sgd.step();
        }
        save_checkpoint(path, model, &sgd, "simple", {});
        const TensorFile file = load_safetensors(path);
        BOOST_TEST(file.tensors.size() == 10u);  // the parameters only
        BOOST_TEST(contains(file.metadata.at("optimizer_state_empty"), "\"sgd/momentum/fc3.bias\""));
        Trained target;  // buffers full: loading empties them, as they were when saved
        load_checkpoint(path, target.model, &target.sgd, "simple");
        for (const Tensor<float>& b : target.sgd.momentum_buffers()) BOOST_TEST(b.empty());
    }
    // the list must make sense
    Trained t;
    save_checkpoint(path, t.model, &t.sgd, "simple", {});
    const TensorFile good = load_safetensors(path);
    const auto with_list = [&](const std::string& list) {
        TensorFile f = good;
        f.metadata["optimizer_state_empty"] = list;
        save_safetensors(path, f);
        return error_of([&] { load_checkpoint(path, t.model, &t.sgd, "simple"); });
    };
    CHECK_MESSAGE_HAS(with_list("[\"sgd/momentum/fc1.bias\"]"), "'sgd/momentum/fc1.bias' is stored and also listed as empty");
    CHECK_MESSAGE_HAS(with_list("[\"sgd/momentum/fc9.bias\"]"), "lists 'sgd/momentum/fc9.bias', which is no state of this optimiser");
    CHECK_MESSAGE_HAS(with_list("sgd/momentum/fc1.bias"), "must be a JSON list of distinct names");
    CHECK_MESSAGE_HAS(with_list("[1, 2]"), "must be a JSON list of distinct names");
}

BOOST_AUTO_TEST_CASE(unknown_tensors_are_refused) {
    TempDir tmp;
    const fs::path path = tmp.path / "c.safetensors";
    Trained t;
    save_checkpoint(path, t.model, &t.sgd, "simple", {});
    const TensorFile good = load_safetensors(path);
    TensorFile extra = good;
    extra.tensors.emplace_back("model/fc4.weight", Tensor<float>(Shape{2, 2}));
    save_safetensors(path, extra);
    std::string msg = error_of([&] { load_checkpoint(path, t.model, nullptr, "simple"); });
    CHECK_MESSAGE_HAS(msg, "1 tensor(s) that this model do not have: model/fc4.weight");
    // another optimiser's state: refused when loading the state, not read when loading the model only
    extra = good;
    extra.tensors.emplace_back("adam/m/fc1.weight", Tensor<float>(Shape{2}));
    save_safetensors(path, extra);
    msg = error_of([&] { load_checkpoint(path, t.model, &t.sgd, "simple"); });
    CHECK_MESSAGE_HAS(msg, "that this model and its optimiser do not have: adam/m/fc1.weight");
    load_checkpoint(path, t.model, nullptr, "simple");
}

BOOST_AUTO_TEST_SUITE_END()
