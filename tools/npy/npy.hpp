// posenc's tools: reading and writing NumPy .npy files (format versions 1.0, 2.0 and 3.0;
// little-endian <f4, <f8, <f2, <u2 and <i8; C order), for the command line, the tests, the
// benchmarks and the fuzzers. Not part of the installed library.
//
// The format is numpy.lib.format's (NEP 1): the magic "\x93NUMPY", a major and a minor version
// byte, the header length (uint16 little-endian in 1.0, uint32 in 2.0 and 3.0), then the header:
// the repr of a Python dict, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), },
// padded with spaces and a final '\n', latin-1 in 1.0 and 2.0, utf-8 in 3.0. The data follow.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <Eigen/Core>
#include <posenc/detail/checked.hpp>
#include <posenc/error.hpp>

namespace posenc_npy {

using posenc::detail::checked_mul;
using posenc::detail::fail;
using posenc::detail::require;

/// Bytes per element of a supported dtype.
inline std::size_t npy_item_size(const std::string& dtype) {
  return dtype == "<f4" ? 4 : (dtype == "<f2" || dtype == "<u2") ? 2 : 8;
}

inline bool npy_supported(const std::string& dtype) {
  return dtype == "<f4" || dtype == "<f8" || dtype == "<f2" || dtype == "<u2" || dtype == "<i8";
}

struct NpyArray {
  std::string dtype;  // "<f4", "<f8", "<f2", "<u2" or "<i8"
  std::vector<std::int64_t> shape;
  std::vector<char> data;

  std::int64_t size() const {
    std::int64_t n = 1;
    for (auto s : shape)
      n = checked_mul(n, s, "NpyArray: the element count");
    return n;
  }
  std::size_t item_size() const { return npy_item_size(dtype); }
  /// Element i converted to double (to int64 for "<i8" first).
  double as_double(std::int64_t i) const {
    const char* p = data.data() + static_cast<std::size_t>(i) * item_size();
    if (dtype == "<f4") {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    if (dtype == "<f8") {
      double d;
      std::memcpy(&d, p, 8);
      return d;
    }
    if (dtype == "<f2" || dtype == "<u2") {  // <u2: the raw integer (bfloat16 bits: the caller's)
      std::uint16_t u;
      std::memcpy(&u, p, 2);
      if (dtype == "<u2") return u;
      return static_cast<double>(
          static_cast<float>(Eigen::half(Eigen::half_impl::raw_uint16_to_half(u))));
    }
    std::int64_t v;
    std::memcpy(&v, p, 8);
    return static_cast<double>(v);
  }
  std::int64_t as_int(std::int64_t i) const {
    require(dtype == "<i8", "npy: expected dtype <i8, the array is ", dtype);
    std::int64_t v;
    std::memcpy(&v, data.data() + static_cast<std::size_t>(i) * 8, 8);
    return v;
  }
};

/// numpy's reader refuses longer headers unless allow_pickle (numpy.lib.format._MAX_HEADER_SIZE);
/// no header numpy writes for a supported dtype comes near it.
constexpr std::size_t npy_max_header_size = 10000;
/// NPY_MAXDIMS of NumPy 2 (NumPy 1.x: 32).
constexpr std::size_t npy_max_dims = 64;

/// What a .npy preamble and header declare.
struct NpyHeader {
  int major = 0, minor = 0;
  std::string dtype;
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
  std::int64_t count = 0;        // elements: the product of shape (1 for a 0-d array)
  std::int64_t data_offset = 0;  // bytes before the data
  std::int64_t data_bytes = 0;   // count * item size
};

/// "(2, 3)", "(5,)", "()": the shape as Python writes the tuple.
inline std::string npy_shape_repr(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    s += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) s += ",";
    if (i + 1 < shape.size()) s += " ";
  }
  return s + ")";
}

/// A strict parser of the header dict: the Python literal syntax numpy writes, and the variants
/// another writer plausibly produces (either quote, the keys in any order, optional trailing
/// commas, spaces, tabs, CR, LF and form feeds between tokens). Everything else
/// ast.literal_eval would also evaluate (escapes, comments, other literals and numbers than
/// decimal integers) is refused with a message saying what and at which byte.
class NpyHeaderParser {
 public:
  NpyHeaderParser(const char* p, std::size_t n, std::int64_t file_offset, int major,
                  const std::string& file)
      : p_(p), n_(n), file_offset_(file_offset), major_(major), file_(file) {}

  void parse(NpyHeader& h) {
    // Python refuses a source with NUL bytes ("source code string cannot contain null bytes"),
    // wherever they are.
    const void* nul = std::memchr(p_, '\0', n_);
    if (nul) fail_at(static_cast<std::size_t>(static_cast<const char*>(nul) - p_), "NUL byte");
    skip_space();
    if (i_ == n_) fail_at(i_, "the header is empty (expected a dict {'descr': ...})");
    if (p_[i_] != '{') fail_at(i_, "the header is not a dict: expected '{', got ", got());
    ++i_;
    bool have_descr = false, have_fortran = false, have_shape = false;
    for (;;) {
      skip_space();
      if (peek() == '}') break;  // an empty dict, or a trailing comma
      if (peek() != '\'' && peek() != '"') fail_at(i_, "expected a quoted key or '}', got ", got());
      const std::size_t key_at = i_;
      const std::string key = parse_string();
      bool* seen = key == "descr"           ? &have_descr
                   : key == "fortran_order" ? &have_fortran
                   : key == "shape"         ? &have_shape
                                            : nullptr;
      if (!seen)
        fail_at(key_at, "unexpected key '", key,
                "' (a .npy header has exactly the keys 'descr', 'fortran_order' and 'shape')");
      // ast.literal_eval keeps the last of duplicate keys; a header that says two things is
      // rejected here instead of guessing which one its writer meant.
      if (*seen) fail_at(key_at, "duplicate key '", key, "'");
      *seen = true;
      skip_space();
      if (peek() != ':') fail_at(i_, "expected ':' after the key '", key, "', got ", got());
      ++i_;
      skip_space();
      if (key == "descr") {
        h.dtype = parse_descr();
      } else if (key == "fortran_order") {
        h.fortran_order = parse_bool();
      } else {
        h.shape = parse_shape();
      }
      skip_space();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() != '}')
        fail_at(i_, "expected ',' or '}' after the value of '", key, "', got ", got());
      break;
    }
    ++i_;  // the '}'
    skip_space();
    if (i_ != n_)
      fail_at(i_, "unexpected ", got(),
              " after the dict's closing '}' (only spaces and newlines may pad the header)");
    // numpy.lib.format: "Header does not contain the correct keys".
    const char* missing = !have_descr     ? "descr"
                          : !have_fortran ? "fortran_order"
                          : !have_shape   ? "shape"
                                          : nullptr;
    if (missing)
      fail(file_, ": malformed .npy header: no key '", missing,
           "' (a .npy header has exactly the keys 'descr', 'fortran_order' and 'shape')");
  }

 private:
  template <class... Args>
  [[noreturn]] void fail_at(std::size_t at, Args&&... args) const {
    fail(file_, ": malformed .npy header at byte ", at, " (file offset ",
         file_offset_ + static_cast<std::int64_t>(at), "): ", std::forward<Args>(args)...);
  }

  int peek() const { return i_ < n_ ? static_cast<unsigned char>(p_[i_]) : -1; }

  /// The byte at the cursor, for messages: 'x', byte 0x93, or the end of the header.
  std::string got() const { return describe(i_); }
  std::string describe(std::size_t at) const {
    if (at >= n_) return "the end of the header";
    const auto c = static_cast<unsigned char>(p_[at]);
    if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
    static const char hex[] = "0123456789abcdef";
    return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
  }

  // Python's whitespace between tokens (\v is not: the tokenizer rejects it).
  static bool is_space(int c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
  }
  static bool is_digit(int c) { return c >= '0' && c <= '9'; }
  static bool is_word(int c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  }
  void skip_space() {
    while (is_space(peek()))
      ++i_;
  }

  /// The token at `at`, for messages: a word or number ('Falsey', '2.0'), else what kind of
  /// literal starts there (a string, a tuple, ...), else the byte.
  std::string word_at(std::size_t at) const {
    const int c = at < n_ ? static_cast<unsigned char>(p_[at]) : -1;
    if (c == '\'' || c == '"') return "a string";
    if (c == '(') return "a tuple";
    if (c == '[') return "a list";
    if (c == '{') return "a dict";
    std::size_t j = at;
    while (j < n_ && j - at < 32 && (is_word(static_cast<unsigned char>(p_[j])) || p_[j] == '.'))
      ++j;
    return j == at ? describe(at) : "'" + std::string(p_ + at, j - at) + "'";
  }

  /// A single- or double-quoted string of printable ASCII without escapes (every key and
  /// every descr numpy writes for a supported dtype is one), so that a message quoting it is
  /// one printable line.
  std::string parse_string() {
    const char quote = p_[i_];
    const std::size_t start = i_++;
    std::string s;
    for (;;) {
      const int c = peek();
      if (c < 0 || c == '\n' || c == '\r')
        fail_at(start, "unterminated string (no closing ", quote, " before ",
                c < 0 ? "the end of the header" : "the end of the line", ")");
      ++i_;
      if (c == quote) return s;
      if (c == '\\') fail_at(i_ - 1, "backslash escapes are not supported in .npy header strings");
      if (c >= 0x80)
        fail_at(i_ - 1, "non-ASCII ", describe(i_ - 1), " in a string",
                major_ >= 3 ? " (utf-8 keys and dtypes are not supported)" : "");
      if (c < 0x20 || c == 0x7f)
        fail_at(i_ - 1, "control character ", describe(i_ - 1), " in a string");
      s += static_cast<char>(c);
    }
  }

  std::string parse_descr() {
    const int c = peek();
    if (c == '\'' || c == '"') return parse_string();
    if (c == '[') fail_at(i_, "structured dtypes are not supported (descr is a list of fields)");
    if (c == '(') fail_at(i_, "subarray dtypes are not supported (descr is a tuple)");
    fail_at(i_, "descr must be a quoted dtype string such as '<f4', got ", word_at(i_));
  }

  bool parse_bool() {
    const std::size_t start = i_;
    while (is_word(peek()))
      ++i_;
    const std::string w(p_ + start, i_ - start);
    if (w == "True") return true;
    if (w == "False") return false;
    fail_at(start, "fortran_order must be True or False, got ", word_at(start));
  }

  /// A tuple of non-negative decimal integers: (), (5,), (2, 3), (2, 3,).
  std::vector<std::int64_t> parse_shape() {
    if (peek() != '(')
      fail_at(i_, "shape must be a tuple of integers such as (2, 3), got ", word_at(i_));
    const std::size_t open = i_++;
    std::vector<std::int64_t> shape;
    bool comma = false;  // a comma after the last element
    for (;;) {
      skip_space();
      if (peek() == ')') break;
      shape.push_back(parse_dim());
      if (shape.size() > npy_max_dims)
        fail_at(i_, "the shape has more than ", npy_max_dims, " dimensions");
      skip_space();
      comma = peek() == ',';
      if (comma) {
        ++i_;
        continue;
      }
      if (peek() != ')')
        fail_at(i_, "expected ',' or ')' after a dimension of the shape, got ", got());
      break;
    }
    ++i_;  // the ')'
    // (5) is the int 5 in Python, not a tuple: numpy says "shape is not valid".
    if (shape.size() == 1 && !comma)
      fail_at(open, "the shape (", shape[0], ") is an int, not a tuple (a 1-d shape is (", shape[0],
              ",))");
    return shape;
  }

  std::int64_t parse_dim() {
    const std::size_t start = i_;
    if (peek() == '-') {
      std::size_t j = i_ + 1;
      while (j < n_ && is_digit(static_cast<unsigned char>(p_[j])))
        ++j;
      fail_at(start, "negative dimension ", std::string(p_ + start, j - start), " in the shape");
    }
    if (!is_digit(peek()))
      fail_at(start, "expected a non-negative integer dimension or ')' in the shape, got ",
              peek() == '(' ? std::string("a nested tuple") : word_at(start));
    std::int64_t v = 0;
    bool nonzero = false;
    while (is_digit(peek())) {
      const int d = peek() - '0';
      if (v > (std::numeric_limits<std::int64_t>::max() - d) / 10) {
        while (is_digit(peek()))
          ++i_;
        fail_at(start, "the dimension ", std::string(p_ + start, i_ - start),
                " does not fit in int64");
      }
      v = v * 10 + d;
      nonzero = nonzero || d != 0;
      ++i_;
    }
    // Python 3 rejects 05 ("leading zeros in decimal integer literals are not permitted").
    if (p_[start] == '0' && nonzero)
      fail_at(start, "the dimension ", std::string(p_ + start, i_ - start),
              " has a leading zero (not a Python integer literal)");
    // Python 2 wrote long integers as 2L; numpy drops the L when reading 1.0 and 2.0 headers
    // (numpy.lib.format._filter_header).
    if (peek() == 'L' && major_ <= 2 &&
        !is_word(i_ + 1 < n_ ? static_cast<unsigned char>(p_[i_ + 1]) : ' '))
      ++i_;
    if (is_word(peek()) || peek() == '.')
      fail_at(start, "the dimension ", word_at(start), " is not a decimal integer");
    return v;
  }

  const char* p_;
  std::size_t n_;
  std::int64_t file_offset_;
  int major_;
  const std::string& file_;
  std::size_t i_ = 0;
};

/// Parses the preamble and header of a .npy file of `file_size` bytes whose first `n` bytes
/// are at `p` (all of them, or at least the preamble and the whole header), and checks the
/// declared data against `file_size`. Bytes after the data are ignored, as numpy.load (which
/// reads exactly count items with numpy.fromfile) ignores them. Throws posenc::error naming
/// `file` and what is wrong.
inline NpyHeader parse_npy_header(const char* p, std::size_t n, std::int64_t file_size,
                                  const std::string& file) {
  static const char magic[] = "\x93NUMPY";
  if (n < 6 || std::memcmp(p, magic, 6) != 0)
    fail(file, ": not a .npy file (bad magic",
         n < 6 ? ": the file has only " + std::to_string(n) + " bytes)" : ")");
  if (n < 8) fail(file, ": truncated .npy header: the file ends inside the format version");
  NpyHeader h;
  h.major = static_cast<unsigned char>(p[6]);
  h.minor = static_cast<unsigned char>(p[7]);
  if (h.major < 1 || h.major > 3 || h.minor != 0)
    fail(file, ": unsupported .npy format version ", h.major, ".", h.minor,
         " (expected 1.0, 2.0 or 3.0)");
  const std::size_t len_bytes = h.major == 1 ? 2 : 4;
  if (n < 8 + len_bytes)
    fail(file, ": truncated .npy header: the file ends inside the header length");
  std::uint32_t header_len = 0;
  for (std::size_t i = 0; i < len_bytes; ++i)
    header_len |= static_cast<std::uint32_t>(static_cast<unsigned char>(p[8 + i])) << (8 * i);
  if (header_len > npy_max_header_size)
    fail(file, ": the .npy header length ", header_len, " is over ", npy_max_header_size,
         " bytes (numpy's limit for loading without allow_pickle)");
  const std::size_t start = 8 + len_bytes;
  h.data_offset = static_cast<std::int64_t>(start + header_len);
  if (n < start + header_len)
    fail(file, ": truncated .npy header: the header length is ", header_len,
         " bytes but the file ends after ", n - start, " of them");

  NpyHeaderParser(p + start, header_len, static_cast<std::int64_t>(start), h.major, file).parse(h);
  if (h.fortran_order)
    fail(file, ": Fortran-ordered arrays are not supported (fortran_order True)");

  if (h.dtype.size() > 1 && h.dtype[0] == '>' && h.dtype[1] != '1')
    fail(file, ": big-endian dtype '", h.dtype,
         "' is not supported (expected little-endian <f4, <f8, <f2, <u2 or <i8)");
  if (!npy_supported(h.dtype))
    fail(file, ": unsupported dtype '", h.dtype, "' (expected <f4, <f8, <f2, <u2 or <i8)");
  const auto item = static_cast<std::int64_t>(npy_item_size(h.dtype));
  // The product of the non-zero extents, times the item size, must fit in int64 even when an
  // extent is 0 (numpy also refuses (0, 2^62, 2^62): "array is too big"), so that the product of
  // any subset of the dimensions a caller forms fits too.
  const std::string shape = npy_shape_repr(h.shape);
  std::int64_t product = 1;
  bool empty = false;
  for (auto s : h.shape) {
    if (s == 0)
      empty = true;
    else
      product = checked_mul(product, s, file, ": the .npy shape ", shape, " is too large");
  }
  checked_mul(product, item, file, ": the .npy shape ", shape, " is too large in bytes");
  h.count = empty ? 0 : product;
  h.data_bytes = h.count * item;
  const std::int64_t available = file_size - h.data_offset;
  if (h.data_bytes > available)
    fail(file, ": truncated .npy data: the shape ", shape, " of ", h.dtype, " needs ", h.data_bytes,
         " bytes of data, the file has ", available);
  return h;
}

/// Parses a whole .npy file held in memory; `name` names it in messages.
inline NpyArray parse_npy(const char* data, std::size_t n, const std::string& name) {
  const NpyHeader h = parse_npy_header(data, n, static_cast<std::int64_t>(n), name);
  NpyArray a;
  a.dtype = h.dtype;
  a.shape = h.shape;
  const char* begin = data + h.data_offset;
  a.data.assign(begin, begin + h.data_bytes);
  return a;
}

/// Reads a .npy file; throws posenc::error naming the file and the problem. Only regular files
/// are opened: a directory, FIFO, socket or device is refused before open(), so a FIFO without
/// a writer cannot block the reader.
inline NpyArray read_npy(const std::string& file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(file, ec);
  if (st.type() == fs::file_type::not_found || (ec && st.type() == fs::file_type::none))
    fail(file, ": cannot open (", ec ? ec.message() : std::string(std::strerror(ENOENT)), ")");
  if (st.type() == fs::file_type::directory) fail(file, ": is a directory");
  if (st.type() != fs::file_type::regular) fail(file, ": is not a regular file");

  std::FILE* fp = std::fopen(file.c_str(), "rb");
  if (!fp) {
    const int err = errno;
    fail(file, ": cannot open (", err ? std::strerror(err) : "unknown error", ")");
  }
  struct Closer {
    std::FILE* fp;
    ~Closer() { std::fclose(fp); }
  } closer{fp};
  const auto read_failed = [&] {
    const int err = errno;
    fail(file, ": read failed (", err ? std::strerror(err) : "unknown error", ")");
  };
  const std::uintmax_t size = fs::file_size(file, ec);
  if (ec) fail(file, ": cannot open (", ec.message(), ")");
  const auto file_size = static_cast<std::int64_t>(size);

  // The preamble and the header: at most 12 + npy_max_header_size bytes.
  std::vector<char> head(static_cast<std::size_t>(
      std::min<std::int64_t>(file_size, 12 + static_cast<std::int64_t>(npy_max_header_size))));
  std::size_t got = std::fread(head.data(), 1, head.size(), fp);
  if (got != head.size() && std::ferror(fp)) read_failed();
  head.resize(got);
  const NpyHeader h = parse_npy_header(head.data(), head.size(), file_size, file);

  // Allocated only now, and at most file_size bytes (checked by parse_npy_header).
  NpyArray a;
  a.dtype = h.dtype;
  a.shape = h.shape;
  a.data.resize(static_cast<std::size_t>(h.data_bytes));
  const std::size_t in_head =
      std::min(head.size() - static_cast<std::size_t>(h.data_offset), a.data.size());
  if (in_head > 0) std::memcpy(a.data.data(), head.data() + h.data_offset, in_head);
  const std::size_t rest = a.data.size() - in_head;
  got = rest > 0 ? std::fread(a.data.data() + in_head, 1, rest, fp) : 0;
  if (got != rest) {
    if (std::ferror(fp)) read_failed();
    fail(file, ": truncated .npy data: expected ", a.data.size(), " bytes, got ", in_head + got,
         " (the file shrank while it was read)");
  }
  return a;
}

/// The preamble and header numpy.save writes (format 1.0) for a C-order array of `dtype` and
/// `shape`: the dict, the spare spaces numpy >= 1.23 reserves for the first extent to grow to
/// 21 digits (GROWTH_AXIS_MAX_DIGITS), then 1 to 64 spaces and a '\n' so that the data start
/// at a multiple of 64 bytes (ARRAY_ALIGN).
inline std::string npy_header_bytes(const std::string& dtype,
                                    const std::vector<std::int64_t>& shape) {
  require(npy_supported(dtype), "write_npy: unsupported dtype ", dtype);
  for (auto s : shape)
    require(s >= 0, "write_npy: negative extent ", s, " in the shape");
  std::string header = "{'descr': '" + dtype +
                       "', 'fortran_order': False, 'shape': " + npy_shape_repr(shape) + ", }";
  if (!shape.empty()) {
    const std::size_t digits = std::to_string(shape[0]).size();
    header.append(digits < 21 ? 21 - digits : 0, ' ');
  }
  const std::size_t pad = 64 - (10 + header.size() + 1) % 64;
  header.append(pad, ' ');
  header += '\n';
  require(header.size() <= 65535, "write_npy: the .npy header for a shape of ", shape.size(),
          " dimensions is too long for format 1.0");
  const auto hl = static_cast<std::uint16_t>(header.size());
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(hl & 0xff);
  out += static_cast<char>(hl >> 8);
  return out + header;
}

/// Writes a .npy (version 1.0) file of a supported dtype from raw little-endian data,
/// byte for byte as numpy.save writes it.
inline void write_npy(const std::string& file, const std::string& dtype,
                      const std::vector<std::int64_t>& shape, const void* data) {
  const std::string header = npy_header_bytes(dtype, shape);
  auto n = static_cast<std::int64_t>(npy_item_size(dtype));
  for (auto s : shape)
    n = checked_mul(n, s, "write_npy: ", file, ": the data size");
  std::FILE* fp = std::fopen(file.c_str(), "wb");
  if (!fp) {
    const int err = errno;
    fail(file, ": cannot open for writing (", err ? std::strerror(err) : "unknown error", ")");
  }
  const auto bytes = static_cast<std::size_t>(n);
  bool ok = std::fwrite(header.data(), 1, header.size(), fp) == header.size() &&
            (bytes == 0 || std::fwrite(data, 1, bytes, fp) == bytes);
  int err = ok ? 0 : errno;
  // fclose flushes: a full disk often shows only here.
  if (std::fclose(fp) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) fail(file, ": write failed (", err ? std::strerror(err) : "unknown error", ")");
}

}  // namespace posenc_npy
