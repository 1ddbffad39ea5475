// safetensors reader and writer (https://github.com/huggingface/safetensors, format section):
//
//   [8 bytes]  N, little-endian uint64: size of the header
//   [N bytes]  UTF-8 JSON object: "name": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}
//              for each tensor, plus an optional "__metadata__": {string: string}; the writer pads
//              it with spaces to a multiple of 8 bytes, as the reference implementation does
//   [rest]     the data section: tensor bytes, little-endian, row-major; data_offsets are relative
//              to its start and the tensors' ranges tile it exactly
//
// Saving goes through "<path>.tmp" (created fresh, written, fsync'ed, closed) and rename(2) over
// <path>, then fsyncs the directory, so a crash at any point leaves the old file or the new one.
// Every failed call is an error naming the file and the reason, and removes "<path>.tmp"; SIGXFSZ
// is ignored meanwhile, so that the file-size limit gives EFBIG instead of ending the process.
// POSIX only (open/write/fsync/rename), like the rest of the project's targets.
#include "mcnn/train/checkpoint.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../util/files.hpp"
#include "file_size_signal.hpp"

namespace mcnn {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;  // keeps the header's key order (used to order empty tensors)

namespace {

constexpr const char* metadata_key = "__metadata__";
static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559, "F32 must be IEEE-754 binary32");
constexpr bool host_is_little = std::endian::native == std::endian::little;

std::string errno_text(int err) { return std::system_category().message(err); }

[[maybe_unused]] void byteswap4(char* p, std::size_t n_words) {  // used on big-endian hosts only
    for (std::size_t i = 0; i < n_words; ++i, p += 4) {
        std::swap(p[0], p[3]);
        std::swap(p[1], p[2]);
    }
}

// ---- reading --------------------------------------------------------------------------------

struct Entry {
    std::string name;
    Shape shape;
    std::uint64_t begin = 0, end = 0;
    std::size_t header_index = 0;  // position in the header, to keep a stable order
};

std::string type_of(const Json& j) { return j.type_name(); }

// Parses the header, rejecting duplicate keys (nlohmann would silently keep one of them).
Json parse_header(const std::string& text, const std::string& p) {
    std::vector<std::set<std::string>> keys;  // one set per open object
    std::string duplicate;
    const Json::parser_callback_t callback = [&](int, Json::parse_event_t event, Json& parsed) {
        switch (event) {
            case Json::parse_event_t::object_start: keys.emplace_back(); break;
            case Json::parse_event_t::object_end:
                if (!keys.empty()) keys.pop_back();
                break;
            case Json::parse_event_t::key:
                if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second && duplicate.empty())
                    duplicate = parsed.get<std::string>();
                break;
            default: break;
        }
        return true;
    };
    Json header;
    try {
        header = Json::parse(text.begin(), text.end(), callback);
    } catch (const Json::exception& e) {
        fail("load_safetensors {}: header ({} bytes) is not valid JSON: {}", p, text.size(), e.what());
    }
    if (!header.is_object()) fail("load_safetensors {}: header is a JSON {}, not an object", p, type_of(header));
    if (!duplicate.empty()) fail("load_safetensors {}: header has the key \"{}\" more than once", p, duplicate);
    return header;
}

// A non-negative JSON integer no larger than `max`, or nothing.
std::optional<std::uint64_t> as_count(const Json& j, std::uint64_t max) {
    if (!j.is_number_unsigned()) return std::nullopt;  // nlohmann stores every parsed n >= 0 as unsigned
    const auto v = j.get<std::uint64_t>();
    if (v > max) return std::nullopt;
    return v;
}

Entry parse_entry(const std::string& name, const Json& info, std::size_t index, const std::string& p) {
    // What the writer cannot write, the reader does not take (found by fuzz/safetensors.cpp's round trip).
    if (name.empty()) fail("load_safetensors {}: a tensor has an empty name", p);
    if (!info.is_object())
        fail("load_safetensors {}: entry for tensor \"{}\" is a JSON {}, not an object", p, name, type_of(info));
    for (const char* field : {"dtype", "shape", "data_offsets"})
        if (!info.contains(field)) fail("load_safetensors {}: tensor \"{}\" has no \"{}\"", p, name, field);

    const Json& dtype = info["dtype"];
    if (!dtype.is_string())
        fail("load_safetensors {}: tensor \"{}\" has a dtype that is a JSON {}, not a string", p, name, type_of(dtype));
    if (dtype.get<std::string>() != "F32")
        fail("load_safetensors {}: unsupported dtype {} for tensor \"{}\", ManualCNN stores F32", p,
             dtype.get<std::string>(), name);

    const Json& shape = info["shape"];
    if (!shape.is_array())
        fail("load_safetensors {}: tensor \"{}\" has a shape that is a JSON {}, not an array", p, name, type_of(shape));
    if (shape.size() > static_cast<std::size_t>(Shape::max_rank))
        fail("load_safetensors {}: tensor \"{}\" has shape {} of rank {}; ManualCNN supports ranks 0 to {}", p, name,
             shape.dump(), shape.size(), Shape::max_rank);
    std::vector<int> dims;
    std::uint64_t numel = 1;
    bool overflow = false;
    for (const Json& d : shape) {
        const auto v = as_count(d, INT_MAX);
        if (!v)
            fail("load_safetensors {}: tensor \"{}\" has shape {}: dimensions must be integers from 0 to {}", p, name,
                 shape.dump(), INT_MAX);
        dims.push_back(static_cast<int>(*v));
        overflow |= __builtin_mul_overflow(numel, *v, &numel);
    }
    std::uint64_t bytes = 0;
    overflow |= __builtin_mul_overflow(numel, std::uint64_t{4}, &bytes);
    if (overflow) fail("load_safetensors {}: tensor \"{}\" has shape {}, too large to address", p, name, shape.dump());

    const Json& offsets = info["data_offsets"];
    const bool pair = offsets.is_array() && offsets.size() == 2;
    const auto b = pair ? as_count(offsets[0], UINT64_MAX) : std::nullopt;
    const auto e = pair ? as_count(offsets[1], UINT64_MAX) : std::nullopt;
    if (!b || !e || *e < *b)
        fail("load_safetensors {}: tensor \"{}\" has data_offsets {}; want [begin, end], integers with 0 <= begin <= end",
             p, name, offsets.dump());
    if (*e - *b != bytes)
        fail("load_safetensors {}: tensor \"{}\" has shape {} ({} F32 values, {} bytes) but data_offsets [{}, {}] span {} "
             "bytes",
             p, name, shape.dump(), numel, bytes, *b, *e, *e - *b);
    return {name, Shape(dims), *b, *e, index};
}

}  // namespace

namespace {

/// Throws unless the tensors' data ranges (sorted by begin) tile [0, data_size) exactly: no
/// overlap, no gap, nothing past the end, nothing left over.
void check_tiling(const std::vector<Entry>& entries, std::uint64_t data_size, const std::string& p) {
    std::uint64_t covered = 0;  // the ranges so far tile [0, covered)
    const Entry* last = nullptr;
    for (const Entry& e : entries) {
        if (e.begin < covered)
            fail("load_safetensors {}: data ranges overlap: tensor \"{}\" has data_offsets [{}, {}] but tensor \"{}\" "
                 "has [{}, {}]",
                 p, e.name, e.begin, e.end, last->name, last->begin, last->end);
        if (e.begin > covered)
            fail("load_safetensors {}: gap in the data section: bytes [{}, {}) belong to no tensor (before tensor "
                 "\"{}\")",
                 p, covered, e.begin, e.name);
        covered = e.end;
        last = &e;
    }
    if (covered > data_size)
        fail("load_safetensors {}: truncated: tensor \"{}\" ends at byte {} of the data section, but the file has only "
             "{} data bytes",
             p, last->name, covered, data_size);
    if (covered < data_size)
        fail("load_safetensors {}: {} byte(s) after the last tensor's data (the data section has {} bytes, the "
             "tensors cover {})",
             p, data_size - covered, data_size, covered);

}

}  // namespace

namespace {

/// Where the reader takes its bytes from: a file (read as it goes, so a large checkpoint is not
/// held twice in memory) or bytes already in memory (parse_safetensors, the fuzz harness).
class ByteSource {
public:
    virtual ~ByteSource() = default;
    /// Copies the next `n` bytes to `out`; returns how many there were (fewer at the end).
    virtual std::uint64_t read(char* out, std::uint64_t n) = 0;
};

class FileSource final : public ByteSource {
public:
    explicit FileSource(std::ifstream& in) : in_(in) {}
    std::uint64_t read(char* out, std::uint64_t n) override {
        in_.read(out, static_cast<std::streamsize>(n));
        return static_cast<std::uint64_t>(in_.gcount());
    }

private:
    std::ifstream& in_;
};

class MemorySource final : public ByteSource {
public:
    explicit MemorySource(std::string_view bytes) : rest_(bytes) {}
    std::uint64_t read(char* out, std::uint64_t n) override {
        const std::size_t k = std::min<std::uint64_t>(n, rest_.size());
        if (k > 0) std::memcpy(out, rest_.data(), k);
        rest_.remove_prefix(k);
        return k;
    }

private:
    std::string_view rest_;
};

/// The reader proper: `in` holds `size` bytes, `p` names them in messages.
TensorFile read_safetensors(ByteSource& in, std::uint64_t size, const std::string& p) {
    if (size < 8)
        fail("load_safetensors {}: truncated: file has {} bytes, fewer than the 8-byte header length", p, size);
    unsigned char len_bytes[8];
    if (in.read(reinterpret_cast<char*>(len_bytes), 8) != 8) fail("load_safetensors {}: cannot read the header length", p);
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
    if (n > size - 8)
        fail("load_safetensors {}: truncated: header says {} bytes, file has {} bytes after the 8-byte length "
             "(or it is not a safetensors file)",
             p, n, size - 8);
    // The largest header read (safetensors' own reader has the same bound): a checkpoint's header
    // is a few kilobytes, and parsing JSON takes several times its size in memory.
    constexpr std::uint64_t max_header_bytes = 100'000'000;
    if (n > max_header_bytes)
        fail("load_safetensors {}: header says {} bytes, more than the {} a safetensors header may have (not a "
             "safetensors file?)",
             p, n, max_header_bytes);

    std::string text(static_cast<std::size_t>(n), '\0');
    if (in.read(text.data(), n) != n) fail("load_safetensors {}: cannot read the header", p);
    const Json header = parse_header(text, p);

    TensorFile out;
    std::vector<Entry> entries;
    std::size_t index = 0;
    for (const auto& [key, value] : header.items()) {
        if (key == metadata_key) {
            if (!value.is_object())
                fail("load_safetensors {}: \"{}\" is a JSON {}, not an object", p, metadata_key, type_of(value));
            for (const auto& [k, v] : value.items()) {
                if (!v.is_string())
                    fail("load_safetensors {}: metadata value for key \"{}\" is a JSON {}, not a string", p, k, type_of(v));
                out.metadata[k] = v.get<std::string>();
            }
            continue;
        }
        entries.push_back(parse_entry(key, value, index++, p));
    }

    // File order; at equal begins the empty tensors ([b, b]) come first, then header order.
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    check_tiling(entries, size - 8 - n, p);

    out.tensors.reserve(entries.size());
    for (const Entry& e : entries) {
        Tensor<float> t(e.shape);
        const std::uint64_t bytes = e.end - e.begin;
        if (bytes > 0) {
            const std::uint64_t got = in.read(reinterpret_cast<char*>(t.data()), bytes);
            if (got != bytes)
                fail("load_safetensors {}: truncated: could read only {} of the {} bytes of tensor \"{}\"", p, got,
                     bytes, e.name);
            if constexpr (!host_is_little) byteswap4(reinterpret_cast<char*>(t.data()), t.numel());
        }
        out.tensors.emplace_back(e.name, std::move(t));
    }
    return out;
}

}  // namespace

TensorFile load_safetensors(const fs::path& path) {
    const std::string p = path.string();
    // A regular file only (a FIFO would block the reader), and its size known before anything is
    // allocated: every later size is checked against it.
    const std::uint64_t size = files::regular_file_size(path, "load_safetensors: file");
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("load_safetensors {}: cannot open for reading: {}", p, errno_text(errno));
    FileSource source(in);
    return read_safetensors(source, size, p);
}

TensorFile parse_safetensors(std::string_view bytes, const std::string& name) {
    MemorySource source(bytes);
    return read_safetensors(source, bytes.size(), name);
}

// ---- writing --------------------------------------------------------------------------------

namespace {

/// " (disk full)", " (over the file-size limit: see ulimit -f)", ...: what a write error means for the user.
std::string write_error_hint(int err) {
    switch (err) {
        case ENOSPC:
        case EDQUOT: return " (disk full)";
        case EFBIG: return " (over the file-size limit: see ulimit -f)";
        case EROFS: return " (read-only file system)";
        case EACCES:
        case EPERM: return " (no permission to write there)";
        default: return "";
    }
}

// Owns "<path>.tmp" while it is being written: closes it and removes it unless committed. Every
// failure (open, write, fsync, close, rename) throws naming the file and the errno text, and the
// destructor then removes the temporary file, so a failed save leaves the old file as it was.
class TempFile {
public:
    TempFile(fs::path tmp, const char* op, const std::string& p) : tmp_(std::move(tmp)), op_(op), p_(p) {
        // A stale temp file from a crashed save is replaced, whatever its permissions.
        if (::unlink(tmp_.c_str()) != 0 && errno != ENOENT)
            fail("{} {}: cannot remove the stale temporary file {}: {}", op_, p_, tmp_.string(),
                 errno_text(errno));
        fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd_ < 0) {
            const int err = errno;
            fail("{} {}: cannot create the temporary file {}: {}{}", op_, p_, tmp_.string(), errno_text(err),
                 err == ENOENT ? fmt::format(" (does the directory {} exist?)", tmp_.parent_path().string())
                               : write_error_hint(err));
        }
        created_ = true;
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    ~TempFile() {
        if (fd_ >= 0) ::close(fd_);
        if (created_) ::unlink(tmp_.c_str());
    }

    void write(const char* data, std::size_t n) {
        while (n > 0) {
            const ssize_t w = ::write(fd_, data, std::min<std::size_t>(n, std::size_t{1} << 30));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                const int err = w < 0 ? errno : ENOSPC;
                fail("{} {}: writing the temporary file {} failed after {} bytes: {}{}", op_, p_, tmp_.string(),
                     written_, errno_text(err), write_error_hint(err));
            }
            data += w;
            n -= static_cast<std::size_t>(w);
            written_ += static_cast<std::uint64_t>(w);
        }
    }

    // fsync + close + rename over `target`; afterwards the temporary file is gone.
    void commit(const fs::path& target) {
        int r;
        do r = ::fsync(fd_);
        while (r != 0 && errno == EINTR);
        if (r != 0) {
            const int err = errno;
            fail("{} {}: fsync of the temporary file {} failed: {}{}", op_, p_, tmp_.string(), errno_text(err),
                 write_error_hint(err));
        }
        const int fd = fd_;
        fd_ = -1;
        // EINTR: Linux has closed the descriptor anyway, and the data is on disk (fsync above).
        if (::close(fd) != 0 && errno != EINTR) {
            const int err = errno;
            fail("{} {}: closing the temporary file {} failed: {}{}", op_, p_, tmp_.string(), errno_text(err),
                 write_error_hint(err));
        }
        if (::rename(tmp_.c_str(), target.c_str()) != 0) {
            const int err = errno;
            fail("{} {}: cannot rename {} over it: {}{}", op_, p_, tmp_.string(), errno_text(err), write_error_hint(err));
        }
        created_ = false;
    }

private:
    detail::FileSizeSignalIgnored no_sigxfsz_;  // first in, last out: covers every write and the cleanup
    fs::path tmp_;
    const char* op_;
    std::string p_;
    int fd_ = -1;
    bool created_ = false;
    std::uint64_t written_ = 0;
};

// Makes the rename durable. The new file is already in place; a file system that cannot fsync a
// directory (EINVAL) is fine, any other failure (EIO) is reported.
void sync_directory(const fs::path& dir, const char* op, const std::string& p) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    int r;
    do r = ::fsync(fd);
    while (r != 0 && errno == EINTR);
    const int err = r != 0 ? errno : 0;
    ::close(fd);
    if (err != 0 && err != EINVAL && err != ENOTSUP)
        fail("{} {}: the new file is in place, but fsync of the directory {} failed (it may not survive a crash): {}", op, p,
             dir.string(), errno_text(err));
}

fs::path directory_of(const fs::path& path) { return path.has_parent_path() ? path.parent_path() : fs::path("."); }

}  // namespace

namespace {

/// The file's first part: the 8-byte header length, then the JSON header padded with spaces to a
/// multiple of 8 bytes. Refuses names it cannot store; `what` starts the messages.
std::string header_bytes(const TensorFile& file, const std::string& what) {
    std::set<std::string> names;
    for (std::size_t i = 0; i < file.tensors.size(); ++i) {
        const std::string& name = file.tensors[i].first;
        if (name.empty()) fail("{}: tensor {} has an empty name", what, i);
        if (name == metadata_key) fail("{}: tensor {} is named \"{}\", which is reserved", what, i, name);
        if (!names.insert(name).second) fail("{}: two tensors are named \"{}\"", what, name);
    }

    Json header = Json::object();
    if (!file.metadata.empty()) {
        Json meta = Json::object();
        for (const auto& [k, v] : file.metadata) meta[k] = v;
        header[metadata_key] = std::move(meta);
    }
    std::uint64_t offset = 0;
    for (const auto& [name, t] : file.tensors) {
        const std::uint64_t bytes = 4 * static_cast<std::uint64_t>(t.numel());
        Json info = Json::object();
        info["dtype"] = "F32";
        info["shape"] = Json::array();
        for (int d : t.shape().dims()) info["shape"].push_back(d);
        info["data_offsets"] = Json::array({offset, offset + bytes});
        header[name] = std::move(info);
        offset += bytes;
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const Json::exception& e) {
        fail("{}: a tensor name or metadata string is not valid UTF-8: {}", what, e.what());
    }
    text.append((8 - text.size() % 8) % 8, ' ');

    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((static_cast<std::uint64_t>(text.size()) >> (8 * i)) & 0xff);
    return out + text;
}

/// Calls put(bytes, size) with each tensor's data in file order, little-endian.
template <class Put>
void for_each_data(const TensorFile& file, Put put) {
    std::vector<char> swapped;
    for (const auto& [name, t] : file.tensors) {
        const char* bytes = reinterpret_cast<const char*>(t.data());
        if constexpr (!host_is_little) {
            swapped.assign(bytes, bytes + 4 * t.numel());
            byteswap4(swapped.data(), t.numel());
            bytes = swapped.data();
        }
        put(bytes, 4 * t.numel());
    }
}

}  // namespace

std::string serialize_safetensors(const TensorFile& file, const std::string& name) {
    std::string out = header_bytes(file, "save_safetensors " + name);
    for_each_data(file, [&](const char* bytes, std::size_t n) { out.append(bytes, n); });
    return out;
}

void save_safetensors(const fs::path& path, const TensorFile& file) {
    const std::string p = path.string();
    if (path.empty() || !path.has_filename()) fail("save_safetensors '{}': path names no file", p);
    const std::string header = header_bytes(file, "save_safetensors " + p);

    fs::path tmp = path;
    tmp += ".tmp";
    TempFile out(tmp, "save_safetensors", p);
    out.write(header.data(), header.size());
    for_each_data(file, [&](const char* bytes, std::size_t n) { out.write(bytes, n); });
    out.commit(path);
    sync_directory(directory_of(path), "save_safetensors", p);
}

void write_file_atomically(const fs::path& path, std::string_view bytes) {
    const std::string p = path.string();
    if (path.empty() || !path.has_filename()) fail("write {}: path names no file", p);
    fs::path tmp = path;
    tmp += ".tmp";
    TempFile out(tmp, "write", p);
    out.write(bytes.data(), bytes.size());
    out.commit(path);
    sync_directory(directory_of(path), "write", p);
}

void append_to_file(const fs::path& path, std::string_view bytes) {
    const std::string p = path.string();
    const detail::FileSizeSignalIgnored no_sigxfsz;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd < 0) {
        const int err = errno;
        fail("append to {}: cannot open it: {}{}", p, errno_text(err), write_error_hint(err));
    }
    struct stat st {};
    const off_t old_size = ::fstat(fd, &st) == 0 ? st.st_size : -1;
    std::size_t done = 0;
    int err = 0;
    while (done < bytes.size()) {
        const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            err = w < 0 ? errno : ENOSPC;
            break;
        }
        done += static_cast<std::size_t>(w);
    }
    if (err != 0 && done > 0 && old_size >= 0) (void)::ftruncate(fd, old_size);  // no half line left behind
    if (::close(fd) != 0 && errno != EINTR && err == 0) err = errno;
    if (err != 0) fail("append to {}: writing {} bytes failed: {}{}", p, bytes.size(), errno_text(err), write_error_hint(err));
}

// ---- TensorFile -----------------------------------------------------------------------------

bool TensorFile::contains(const std::string& name) const {
    return std::any_of(tensors.begin(), tensors.end(), [&](const auto& t) { return t.first == name; });
}

const Tensor<float>& TensorFile::at(const std::string& name) const {
    for (const auto& [n, t] : tensors)
        if (n == name) return t;
    std::vector<std::string> have;
    for (std::size_t i = 0; i < tensors.size() && i < 20; ++i) have.push_back(fmt::format("\"{}\"", tensors[i].first));
    if (tensors.size() > 20) have.push_back(fmt::format("... ({} more)", tensors.size() - 20));
    fail("TensorFile: no tensor named \"{}\"; the file has {} tensor(s): {}", name, tensors.size(),
         have.empty() ? std::string("none") : fmt::format("{}", fmt::join(have, ", ")));
}

}  // namespace mcnn
