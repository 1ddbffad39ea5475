#pragma once
// Private to lib/src/plot: running gnuplot and writing its PNG atomically, shared by the charts
// (curves.cpp) and the image grids (images.cpp). Defined in curves.cpp.
//
// gnuplot runs as a child process (posix_spawnp, no shell) fed through a gnuplot-iostream
// `Gnuplot` stream; its messages are captured and put into the error when it fails. The picture is
// drawn into "<png>.tmp.png" and renamed onto <png> once gnuplot has exited, so a reader never
// sees half a picture.
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include <gnuplot-iostream.h>

namespace mcnn::plot::detail {

/// A gnuplot single-quoted string: no escapes inside except '' for '; control characters (which
/// would end the command) become spaces.
std::string quote(std::string_view text);

/// `text` without surrounding white space, cut to `max_chars` (for gnuplot's messages in errors).
std::string trimmed(std::string text, std::size_t max_chars = 4000);

/// The `set output` command for `file` (a name starting with '|' is made "./|...", never a pipe).
std::string set_output(const std::string& file);

/// Throws mcnn::Error ("<caller> <png>: ...") unless `png` names a file in an existing folder.
void check_png_path(const std::filesystem::path& png, const char* caller);

/// Writes the script for a PNG: `terminal` is png_terminal(), `output` the file to draw into
/// (already safe to put in `set output`'s quotes).
using PngScript = std::function<void(Gnuplot& gp, const std::string& terminal, const std::string& output)>;

/// Runs gnuplot with `script` drawing into a temporary file next to `png`, then renames it onto
/// `png`. Throws mcnn::Error ("<caller> <png>: ...") with gnuplot's messages when gnuplot cannot
/// be run or fails; no temporary file is left behind.
void render_png(const std::filesystem::path& png, const char* caller, const PngScript& script);

}  // namespace mcnn::plot::detail
