// posenc: a reader of Hugging Face .safetensors files and sharded checkpoints (posenc::hf: needs
// nlohmann/json >= 3.4; posenc::posenc itself never includes this header).
//
// The format (huggingface/safetensors): 8 bytes N, a little-endian uint64; N bytes of UTF-8 JSON,
// the header, an object whose keys are tensor names, each mapped to
//   {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
// with begin and end byte offsets into the data section, and an optional "__metadata__" object
// of strings; then the data section, the rest of the file: each tensor's elements little-endian
// in row-major order.
//
// File checks what the reference implementation (safetensors/src/tensor.rs, read_metadata and
// Metadata::validate) checks, and refuses what it refuses: a file shorter than 8 bytes, a header
// length over its MAX_HEADER_SIZE (100,000,000 bytes) or beyond the file, a header that is not a
// JSON object, an unknown dtype, a shape or data_offsets of the wrong type, a byte size that does
// not match shape x dtype, and tensors that, sorted by their offsets, do not tile the data section
// exactly: an overlap, a hole between two tensors or bytes after the last one are errors, as they
// are for the reference. It also refuses what the reference's JSON parser silently resolves: a key
// that appears twice in one object (serde and nlohmann keep one of them), an empty tensor name,
// and JSON nested deeper than 64 levels (a valid header nests 3). Every refusal is a
// posenc::error whose message starts with the file's path and names the tensor, field and values.
// Dimensions must fit in int64, and so must the product of the non-zero ones times the item size
// in bits (the .npy reader's rule; the reference asks the same of uint64).
//
// The file is memory-mapped (POSIX mmap, read-only, private); where mmap is unavailable
// (_WIN32, or POSENC_SAFETENSORS_NO_MMAP defined) or fails, it is read into memory. A mapped file
// that another process truncates while it is mapped makes reading its tensors raise SIGBUS, as
// with every mmap-based reader (safetensors' own included).
//
// Reading a tensor as float or double converts from F64, F32, F16 and BF16. F16 and BF16 decode
// exactly (subnormals, infinities and NaN included); F32 to float and anything to double are
// exact. F64 to float rounds to nearest; a finite F64 value beyond float's range is an error
// naming the tensor and the element (instead of a silent infinity), while infinities and NaN in
// the file are returned as they are (the encoders check their own tables). Other dtypes (I64,
// U8, ...) are an error naming the tensor and its dtype.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/checked.hpp"
#include "error.hpp"
#include "types.hpp"

#if !defined(_WIN32) && !defined(POSENC_SAFETENSORS_NO_MMAP)
#define POSENC_SAFETENSORS_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#else
#define POSENC_SAFETENSORS_MMAP 0
#endif

POSENC_NAMESPACE_BEGIN
namespace safetensors {

/// The element types posenc names; every other dtype of the format (U16, U32, U64, C64, the F8,
/// F6 and F4 types) is `other`, with its name in TensorInfo::dtype_name.
enum class Dtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, other };

/// safetensors' MAX_HEADER_SIZE: longer headers are refused.
constexpr std::uint64_t max_header_size = 100000000;
/// The deepest nesting of JSON arrays and objects accepted in a header or index (a header
/// nests 3: the root, a tensor's entry, its shape).
constexpr std::size_t max_json_depth = 64;

/// One tensor of a file, as its header declares it (validated).
struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::other;
  std::string dtype_name;  // as in the header: "F32", "BF16", "F8_E4M3", ...
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;  // byte offsets into the data section: [begin, end)

  /// The product of the shape (1 for a 0-d tensor).
  std::int64_t elements() const {
    std::int64_t n = 1;
    for (auto s : shape)
      n = detail::checked_mul(n, s, "safetensors::TensorInfo '", name, "': the element count");
    return n;
  }
};

}  // namespace safetensors

template <>
struct enum_names<safetensors::Dtype> {
  static constexpr std::array<std::pair<std::string_view, safetensors::Dtype>, 11> table{
      {{"F64", safetensors::Dtype::F64},
       {"F32", safetensors::Dtype::F32},
       {"F16", safetensors::Dtype::F16},
       {"BF16", safetensors::Dtype::BF16},
       {"I64", safetensors::Dtype::I64},
       {"I32", safetensors::Dtype::I32},
       {"I16", safetensors::Dtype::I16},
       {"I8", safetensors::Dtype::I8},
       {"U8", safetensors::Dtype::U8},
       {"BOOL", safetensors::Dtype::BOOL},
       {"other", safetensors::Dtype::other}}};
};

namespace detail {

/// Every dtype of the format with its size in bits (safetensors' Dtype::bitsize).
struct StDtype {
  std::string_view name;
  safetensors::Dtype dtype;
  int bits;
};
inline constexpr StDtype st_dtypes[] = {
    {"F64", safetensors::Dtype::F64, 64},      {"F32", safetensors::Dtype::F32, 32},
    {"F16", safetensors::Dtype::F16, 16},      {"BF16", safetensors::Dtype::BF16, 16},
    {"I64", safetensors::Dtype::I64, 64},      {"I32", safetensors::Dtype::I32, 32},
    {"I16", safetensors::Dtype::I16, 16},      {"I8", safetensors::Dtype::I8, 8},
    {"U8", safetensors::Dtype::U8, 8},         {"BOOL", safetensors::Dtype::BOOL, 8},
    {"U64", safetensors::Dtype::other, 64},    {"U32", safetensors::Dtype::other, 32},
    {"U16", safetensors::Dtype::other, 16},    {"C64", safetensors::Dtype::other, 64},
    {"F8_E5M2", safetensors::Dtype::other, 8}, {"F8_E4M3", safetensors::Dtype::other, 8},
    {"F8_E8M0", safetensors::Dtype::other, 8}, {"F6_E2M3", safetensors::Dtype::other, 6},
    {"F6_E3M2", safetensors::Dtype::other, 6}, {"F4", safetensors::Dtype::other, 4}};

inline const StDtype* st_find_dtype(std::string_view name) {
  for (const auto& d : st_dtypes)
    if (d.name == name) return &d;
  return nullptr;
}

inline std::string st_dtype_list() {
  std::string s;
  for (const auto& d : st_dtypes) {
    if (!s.empty()) s += ", ";
    s += d.name;
  }
  return s;
}

/// s quoted for a message: 'name', control bytes as \xNN, a long string cut after 200 bytes
/// (at a UTF-8 character boundary) with "...".
inline std::string st_quote(std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  std::size_t n = s.size();
  bool cut = false;
  if (n > 200) {
    n = 200;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80)
      --n;
    cut = true;
  }
  std::string out = "'";
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + (cut ? "...'" : "'");
}

/// Printable ASCII for a message quoting another library's text (bytes outside it as \xNN).
inline std::string st_printable(std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out += ch;
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

/// A JSON value for a message: its compact text (ASCII), cut after 60 characters.
inline std::string st_brief(const nlohmann::json& j) {
  std::string s = j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return st_printable(s);
}

inline const char* st_kind(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "an integer";
    case nlohmann::json::value_t::number_float:
      return "a floating-point number";
    default:
      return "not a JSON value";
  }
}

inline std::string st_shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

/// Parses the JSON text [first, last) of `file` (`what`: "the header", "the index"), refusing
/// a key that appears twice in one object and nesting deeper than max_json_depth. The keys of
/// the root object are appended to root_keys in the order of the text, and those of the object
/// root[child] to *child_keys (nlohmann::json itself keeps an object's keys sorted).
inline nlohmann::json st_parse_json(const char* first, const char* last, const std::string& file,
                                    const char* what, std::vector<std::string>& root_keys,
                                    const char* child = nullptr,
                                    std::vector<std::string>* child_keys = nullptr) {
  using json = nlohmann::json;
  std::vector<std::set<std::string>> open;  // the keys seen in each open object or array
  const json::parser_callback_t callback = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (open.size() >= safetensors::max_json_depth)
          fail(file, ": ", what, " nests JSON arrays and objects deeper than ",
               safetensors::max_json_depth, " levels");
        open.emplace_back();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!open.empty()) open.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (open.empty()) break;
        if (!open.back().insert(key).second) {
          if (open.size() == 1) fail(file, ": ", what, " has the key ", st_quote(key), " twice");
          fail(file, ": ", what, " has the key ", st_quote(key), " twice in one object",
               root_keys.empty() ? std::string() : " (in " + st_quote(root_keys.back()) + ")");
        }
        if (open.size() == 1) root_keys.push_back(key);
        if (open.size() == 2 && child && child_keys && !root_keys.empty() &&
            root_keys.back() == child)
          child_keys->push_back(key);
        break;
      }
      default:
        break;
    }
    return true;
  };
#if POSENC_HAS_EXCEPTIONS
  try {
    return json::parse(first, last, callback);
  } catch (const json::exception& e) {
    std::string msg = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, ...": without the bracket.
    const std::size_t close = msg.find("] ");
    if (!msg.empty() && msg[0] == '[' && close != std::string::npos) msg.erase(0, close + 2);
    fail(file, ": ", what, " is not valid JSON: ", st_printable(msg));
  }
#else
  json j = json::parse(first, last, callback, false);
  if (j.is_discarded()) fail(file, ": ", what, " is not valid JSON");
  return j;
#endif
}

/// Levenshtein distance of a and b (each cut to 256 bytes).
inline std::size_t st_edit_distance(std::string_view a, std::string_view b) {
  a = a.substr(0, 256);
  b = b.substr(0, 256);
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

/// True when one of a, b ends with the other at a '.' boundary ("q_proj.weight" and
/// "model.layers.0.self_attn.q_proj.weight").
inline bool st_dotted_suffix(std::string_view a, std::string_view b) {
  if (a.size() > b.size()) std::swap(a, b);
  if (a.empty() || b.size() == a.size()) return false;
  return b.compare(b.size() - a.size(), a.size(), a) == 0 && b[b.size() - a.size() - 1] == '.';
}

/// The number of trailing '.'-separated components a and b share.
inline std::size_t st_common_components(std::string_view a, std::string_view b) {
  std::size_t n = 0, i = a.size(), j = b.size(), components = 0;
  while (i > 0 && j > 0 && a[i - 1] == b[j - 1]) {
    --i;
    --j;
    ++n;
    if (a[i] == '.') ++components;
  }
  if ((i == 0 || a[i - 1] == '.') && (j == 0 || b[j - 1] == '.') && n > 0) ++components;
  return components;
}

/// "; close names: 'a', 'b'" (up to 5 of `names`: a dotted suffix of each other first, then by
/// edit distance and shared trailing components), or a sentence saying there is none.
inline std::string st_close_names(std::string_view query, const std::vector<std::string>& names) {
  if (names.empty()) return " (there are no tensors)";
  struct Candidate {
    bool suffix;
    std::size_t components, distance;
    const std::string* name;
  };
  std::vector<Candidate> c;
  const std::size_t limit = std::max<std::size_t>(2, std::min<std::size_t>(query.size(), 256) / 3);
  for (const auto& n : names) {
    const bool suffix = st_dotted_suffix(query, n);
    const std::size_t d = st_edit_distance(query, n);
    const std::size_t comps = st_common_components(query, n);
    if (suffix || d <= limit || comps >= 2) c.push_back({suffix, comps, d, &n});
  }
  if (c.empty())
    return " (none of the " + std::to_string(names.size()) + " tensors has a close name)";
  std::sort(c.begin(), c.end(), [](const Candidate& x, const Candidate& y) {
    if (x.suffix != y.suffix) return x.suffix;
    if (x.distance != y.distance) return x.distance < y.distance;
    if (x.components != y.components) return x.components > y.components;
    return *x.name < *y.name;
  });
  std::string s = "; close names: ";
  for (std::size_t i = 0; i < c.size() && i < 5; ++i)
    s += (i > 0 ? ", " : "") + st_quote(*c[i].name);
  return s;
}

/// The bytes of a whole file: mapped read-only where possible, else read into memory.
/// Movable, not copyable.
class StBytes {
 public:
  StBytes() = default;
  StBytes(const StBytes&) = delete;
  StBytes& operator=(const StBytes&) = delete;
  StBytes(StBytes&& o) noexcept { swap(o); }
  StBytes& operator=(StBytes&& o) noexcept {
    if (this != &o) {
      release();
      swap(o);
    }
    return *this;
  }
  ~StBytes() { release(); }

  const unsigned char* data() const {
    return map_ ? static_cast<const unsigned char*>(map_) : buffer_.data();
  }
  std::uint64_t size() const { return size_; }
  bool mapped() const { return map_ != nullptr; }

  /// Opens a regular file (a directory, FIFO, device or socket is refused, without blocking).
  static StBytes open(const std::string& path) {
    StBytes b;
#if POSENC_SAFETENSORS_MMAP
    int flags = O_RDONLY | O_NONBLOCK;
#ifdef O_CLOEXEC
    flags |= O_CLOEXEC;
#endif
    const int fd = ::open(path.c_str(), flags);
    if (fd < 0) fail(path, ": cannot open (", errno_text(), ")");
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st;
    if (::fstat(fd, &st) != 0) fail(path, ": cannot open (", errno_text(), ")");
    if (S_ISDIR(st.st_mode)) fail(path, ": is a directory");
    if (!S_ISREG(st.st_mode)) fail(path, ": is not a regular file");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size > std::numeric_limits<std::size_t>::max())
      fail(path, ": the file (", size, " bytes) is larger than this process can address");
    b.size_ = size;
    if (size == 0) return b;
    void* p = ::mmap(nullptr, static_cast<std::size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      b.map_ = p;
      b.map_len_ = static_cast<std::size_t>(size);
      return b;
    }
    // No mapping (a file system without mmap): read it.
    b.buffer_ = read_all(path, size, [&](unsigned char* dst, std::size_t n, std::uint64_t at) {
      const ssize_t got = ::pread(fd, dst, n, static_cast<off_t>(at));
      return got < 0 ? std::int64_t{-1} : static_cast<std::int64_t>(got);
    });
    return b;
#else
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (st.type() == fs::file_type::not_found || (ec && st.type() == fs::file_type::none))
      fail(path, ": cannot open (", ec ? ec.message() : std::string("no such file"), ")");
    if (st.type() == fs::file_type::directory) fail(path, ": is a directory");
    if (st.type() != fs::file_type::regular) fail(path, ": is not a regular file");
    std::FILE* fp = std::fopen(path.c_str(), "rb");
    if (!fp) fail(path, ": cannot open (", errno_text(), ")");
    struct Closer {
      std::FILE* fp;
      ~Closer() { std::fclose(fp); }
    } closer{fp};
    const std::uintmax_t size = fs::file_size(path, ec);
    if (ec) fail(path, ": cannot open (", ec.message(), ")");
    if (size > std::numeric_limits<std::size_t>::max())
      fail(path, ": the file (", size, " bytes) is larger than this process can address");
    b.size_ = size;
    b.buffer_ = read_all(path, size, [&](unsigned char* dst, std::size_t n, std::uint64_t) {
      const std::size_t got = std::fread(dst, 1, n, fp);
      return got == 0 && std::ferror(fp) ? std::int64_t{-1} : static_cast<std::int64_t>(got);
    });
    return b;
#endif
  }

 private:
  static std::string errno_text() {
    const int err = errno;
    return err ? std::strerror(err) : "unknown error";
  }

  template <class Read>
  static std::vector<unsigned char> read_all(const std::string& path, std::uint64_t size,
                                             Read&& read) {
    std::vector<unsigned char> buf;
    allocate(
        static_cast<std::int64_t>(size), 1, [&] { buf.resize(static_cast<std::size_t>(size)); },
        path);
    std::uint64_t at = 0;
    while (at < size) {
      const std::size_t chunk =
          static_cast<std::size_t>(std::min<std::uint64_t>(size - at, std::uint64_t{1} << 30));
      const std::int64_t got = read(buf.data() + at, chunk, at);
      if (got < 0) fail(path, ": read failed (", errno_text(), ")");
      if (got == 0)
        fail(path, ": read failed: the file ended after ", at, " of its ", size,
             " bytes (it shrank while it was read)");
      at += static_cast<std::uint64_t>(got);
    }
    return buf;
  }

  void swap(StBytes& o) noexcept {
    std::swap(map_, o.map_);
    std::swap(map_len_, o.map_len_);
    std::swap(size_, o.size_);
    buffer_.swap(o.buffer_);
  }
  void release() noexcept {
#if POSENC_SAFETENSORS_MMAP
    if (map_) ::munmap(map_, map_len_);
#endif
    map_ = nullptr;
    map_len_ = 0;
    size_ = 0;
    std::vector<unsigned char>().swap(buffer_);
  }

  void* map_ = nullptr;
  std::size_t map_len_ = 0;
  std::uint64_t size_ = 0;
  std::vector<unsigned char> buffer_;
};

inline std::uint64_t st_le64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}

/// A non-negative JSON integer that fits in int64 (uint64 when `wide`), or an error naming
/// `field` of tensor `name`.
inline std::uint64_t st_unsigned(const nlohmann::json& j, bool wide, const std::string& file,
                                 const std::string& name, const std::string& field) {
  if (j.is_number_unsigned()) {
    const auto v = j.get<std::uint64_t>();
    if (!wide && v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail(file, ": tensor ", st_quote(name), ": ", field, " = ", v, " does not fit in int64");
    return v;
  }
  if (j.is_number_integer()) {
    const auto v = j.get<std::int64_t>();
    if (v < 0) fail(file, ": tensor ", st_quote(name), ": ", field, " = ", v, " is negative");
    return static_cast<std::uint64_t>(v);
  }
  if (j.is_number_float())
    fail(file, ": tensor ", st_quote(name), ": ", field, " = ", st_brief(j), " is not an integer");
  fail(file, ": tensor ", st_quote(name), ": ", field, " is ", st_kind(j), ", not an integer");
}

/// Parses and validates the header of a file of `size` bytes at `p`; returns the offset of the
/// data section.
inline std::uint64_t st_read_header(const unsigned char* p, std::uint64_t size,
                                    const std::string& file,
                                    std::vector<safetensors::TensorInfo>& tensors,
                                    std::map<std::string, std::string>& metadata) {
  using json = nlohmann::json;
  using safetensors::TensorInfo;
  if (size < 8)
    fail(file, ": not a safetensors file: it has ", size,
         " bytes, fewer than the 8 of the header length");
  const std::uint64_t n = st_le64(p);
  if (n > safetensors::max_header_size)
    fail(file, ": the header length ", n, " is larger than safetensors' limit of ",
         safetensors::max_header_size, " bytes");
  if (n > size - 8)
    fail(file, ": truncated: the header length is ", n, " bytes but the file has ", size - 8,
         " bytes after the 8-byte length");
  const std::uint64_t data_size = size - 8 - n;

  std::vector<std::string> keys;
  const char* text = reinterpret_cast<const char*>(p + 8);
  const json root = st_parse_json(text, text + n, file, "the header", keys);
  if (!root.is_object())
    fail(file, ": the header is ", st_kind(root), ", not a JSON object of tensors");

  tensors.clear();
  metadata.clear();
  tensors.reserve(keys.size());
  for (const auto& name : keys) {
    const json& entry = root.at(name);
    if (name == "__metadata__") {
      if (entry.is_null()) continue;
      if (!entry.is_object())
        fail(file, ": \"__metadata__\" is ", st_kind(entry), ", not an object of strings");
      for (auto it = entry.begin(); it != entry.end(); ++it) {
        if (!it.value().is_string())
          fail(file, ": \"__metadata__\" ", st_quote(it.key()), " is ", st_kind(it.value()),
               ", not a string");
        metadata[it.key()] = it.value().get<std::string>();
      }
      continue;
    }
    const std::string q = st_quote(name);
    if (name.empty()) fail(file, ": the header has a tensor with an empty name");
    if (!entry.is_object())
      fail(file, ": tensor ", q, ": the entry is ", st_kind(entry),
           ", not an object with \"dtype\", \"shape\" and \"data_offsets\"");
    TensorInfo t;
    t.name = name;

    const auto dt = entry.find("dtype");
    if (dt == entry.end()) fail(file, ": tensor ", q, ": no \"dtype\"");
    if (!dt->is_string())
      fail(file, ": tensor ", q, ": \"dtype\" is ", st_kind(*dt), ", not a string");
    t.dtype_name = dt->get<std::string>();
    const StDtype* d = st_find_dtype(t.dtype_name);
    if (!d)
      fail(file, ": tensor ", q, ": unknown dtype ", st_quote(t.dtype_name),
           " (safetensors' dtypes: ", st_dtype_list(), ")");
    t.dtype = d->dtype;

    const auto sh = entry.find("shape");
    if (sh == entry.end()) fail(file, ": tensor ", q, ": no \"shape\"");
    if (!sh->is_array())
      fail(file, ": tensor ", q, ": \"shape\" is ", st_kind(*sh),
           ", not an array of non-negative integers");
    t.shape.reserve(sh->size());
    for (std::size_t i = 0; i < sh->size(); ++i)
      t.shape.push_back(static_cast<std::int64_t>(
          st_unsigned((*sh)[i], false, file, name, "shape[" + std::to_string(i) + "]")));

    const auto off = entry.find("data_offsets");
    if (off == entry.end()) fail(file, ": tensor ", q, ": no \"data_offsets\"");
    if (!off->is_array() || off->size() != 2)
      fail(file, ": tensor ", q, ": \"data_offsets\" must be an array [begin, end], got ",
           st_brief(*off));
    t.begin = st_unsigned((*off)[0], true, file, name, "data_offsets[0] (begin)");
    t.end = st_unsigned((*off)[1], true, file, name, "data_offsets[1] (end)");
    if (t.begin > t.end)
      fail(file, ": tensor ", q, ": data_offsets [", t.begin, ", ", t.end, "] has begin > end");
    if (t.end > data_size)
      fail(file, ": tensor ", q, ": data_offsets [", t.begin, ", ", t.end,
           "] end beyond the data section, which has ", data_size, " bytes");

    // Bits = (product of the non-zero extents) x item bits must fit in int64, then 0 when an
    // extent is 0.
    const std::string shape = st_shape_text(t.shape);
    std::int64_t bits = d->bits;
    bool empty = false;
    for (auto s : t.shape) {
      if (s == 0)
        empty = true;
      else
        bits = checked_mul(bits, s, file, ": tensor ", q, ": the shape ", shape, " of ",
                           t.dtype_name, " is too large (its size in bits)");
    }
    if (empty) bits = 0;
    if (bits % 8 != 0)
      fail(file, ": tensor ", q, ": the shape ", shape, " of ", t.dtype_name, " has ", bits,
           " bits, not a whole number of bytes");
    const auto bytes = static_cast<std::uint64_t>(bits / 8);
    if (t.end - t.begin != bytes)
      fail(file, ": tensor ", q, ": data_offsets [", t.begin, ", ", t.end, "] span ",
           t.end - t.begin, " bytes, but the shape ", shape, " of ", t.dtype_name, " needs ",
           bytes);
    tensors.push_back(std::move(t));
  }

  // Sorted by their offsets, the tensors must tile [0, data_size) exactly (the reference's
  // Metadata::validate and its MetadataIncompleteBuffer check).
  std::vector<std::size_t> order(tensors.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const auto &x = tensors[a], &y = tensors[b];
    return x.begin != y.begin ? x.begin < y.begin : x.end < y.end;
  });
  std::uint64_t at = 0;
  const TensorInfo* prev = nullptr;
  for (std::size_t i : order) {
    const TensorInfo& t = tensors[i];
    if (t.begin < at)
      fail(file, ": tensors ", st_quote(prev->name), " (data_offsets [", prev->begin, ", ",
           prev->end, "]) and ", st_quote(t.name), " (data_offsets [", t.begin, ", ", t.end,
           "]) overlap");
    if (t.begin > at)
      fail(file, ": bytes [", at, ", ", t.begin,
           ") of the data section belong to no tensor (a hole ",
           prev ? "between " + st_quote(prev->name) + " and " : std::string("before "),
           st_quote(t.name),
           "; safetensors requires the tensors to cover the data section "
           "without gaps)");
    at = t.end;
    prev = &t;
  }
  if (at != data_size)
    fail(file, ": bytes [", at, ", ", data_size, ") at the end of the data section belong to no ",
         "tensor (the tensors cover ", at, " of its ", data_size,
         " bytes; safetensors requires them to cover it exactly)");
  return 8 + n;
}

/// Decodes the n elements of t at p into out (row-major); `cols` (0 for 1-D) only for messages.
template <class T>
void st_decode(const unsigned char* p, const safetensors::TensorInfo& t, std::int64_t n,
               std::int64_t cols, T* out, const std::string& file) {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                "safetensors: tensors are read as float or double");
  using safetensors::Dtype;
  const auto u16 = [&](std::int64_t i) {
    const unsigned char* q = p + 2 * i;
    return static_cast<std::uint16_t>(q[0] | (q[1] << 8));
  };
  const auto u32 = [&](const unsigned char* q) {
    return static_cast<std::uint32_t>(q[0]) | (static_cast<std::uint32_t>(q[1]) << 8) |
           (static_cast<std::uint32_t>(q[2]) << 16) | (static_cast<std::uint32_t>(q[3]) << 24);
  };
  const auto from_bits = [](std::uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  };
  switch (t.dtype) {
    case Dtype::F32:
      for (std::int64_t i = 0; i < n; ++i)
        out[i] = static_cast<T>(from_bits(u32(p + 4 * i)));
      return;
    case Dtype::BF16:
      for (std::int64_t i = 0; i < n; ++i)
        out[i] = static_cast<T>(from_bits(static_cast<std::uint32_t>(u16(i)) << 16));
      return;
    case Dtype::F16:
      for (std::int64_t i = 0; i < n; ++i) {
        const std::uint32_t h = u16(i), sign = (h >> 15) << 31, exp = (h >> 10) & 0x1fu,
                            mant = h & 0x3ffu;
        float f;
        if (exp == 0) {  // zero or subnormal: mant x 2^-24, exact in float
          f = std::ldexp(static_cast<float>(mant), -24);
          if (sign) f = -f;
        } else if (exp == 31) {  // infinity or NaN (payload kept)
          f = from_bits(sign | 0x7f800000u | (mant << 13));
        } else {
          f = from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
        }
        out[i] = static_cast<T>(f);
      }
      return;
    case Dtype::F64:
      for (std::int64_t i = 0; i < n; ++i) {
        const std::uint64_t bits = static_cast<std::uint64_t>(u32(p + 8 * i)) |
                                   (static_cast<std::uint64_t>(u32(p + 8 * i + 4)) << 32);
        double d;
        std::memcpy(&d, &bits, 8);
        if constexpr (std::is_same<T, float>::value) {
          // Round to nearest overflows from FLT_MAX + half an ulp = 2^128 - 2^103 on.
          constexpr double overflow = 340282356779733661637539395458142568448.0;
          if (std::isfinite(d) && std::abs(d) >= overflow)
            fail(file, ": tensor ", st_quote(t.name), ": element ", i,
                 cols > 0 ? " (row " + std::to_string(i / cols) + ", column " +
                                std::to_string(i % cols) + ")"
                          : std::string(),
                 " = ", d, " (F64) is beyond the range of float (largest ",
                 std::numeric_limits<float>::max(), ")");
        }
        out[i] = static_cast<T>(d);
      }
      return;
    default:
      fail(file, ": tensor ", st_quote(t.name), " has dtype ", t.dtype_name, "; only F64, F32, ",
           "F16 and BF16 tensors can be read as ",
           std::is_same<T, float>::value ? "float" : "double");
  }
}

}  // namespace detail

namespace safetensors {

/// One .safetensors file, memory-mapped and validated on construction. Movable, not copyable;
/// the TensorInfo references it hands out live as long as it does.
class File {
 public:
  explicit File(const std::string& path) : path_(path), bytes_(detail::StBytes::open(path)) {
    data_offset_ = detail::st_read_header(bytes_.data(), bytes_.size(), path_, tensors_, metadata_);
    names_.reserve(tensors_.size());
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      index_.emplace(tensors_[i].name, i);
      names_.push_back(tensors_[i].name);
    }
  }
  File(File&&) noexcept = default;
  File& operator=(File&&) noexcept = default;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  /// The tensors in the order of the header.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  /// The tensor names in the order of the header.
  const std::vector<std::string>& names() const { return names_; }
  /// The "__metadata__" strings (empty without it).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  /// The tensor `name`, or nullptr.
  const TensorInfo* find(std::string_view name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
  }
  /// The tensor `name`; throws posenc::error naming it, the file and up to 5 close names.
  const TensorInfo& info(std::string_view name) const {
    if (const TensorInfo* t = find(name)) return *t;
    detail::fail(path_, ": no tensor ", detail::st_quote(name),
                 detail::st_close_names(name, names_));
  }

  /// The raw bytes of a tensor (end - begin of them).
  const unsigned char* bytes(const TensorInfo& t) const {
    return bytes_.data() + data_offset_ + t.begin;
  }

  /// A 2-D tensor [r, c] as a row-major [r, c] matrix.
  template <class T>
  Matrix<T> matrix(std::string_view name) const {
    const TensorInfo& t = info(name);
    require_rank(t, 2);
    return read_matrix<T>(t);
  }
  /// The same, and the shape must be [rows, cols].
  template <class T>
  Matrix<T> matrix(std::string_view name, Index rows, Index cols) const {
    const TensorInfo& t = info(name);
    require_shape(t, {rows, cols});
    return read_matrix<T>(t);
  }
  /// A 1-D tensor [n].
  template <class T>
  Vector<T> vector(std::string_view name) const {
    const TensorInfo& t = info(name);
    require_rank(t, 1);
    return read_vector<T>(t);
  }
  template <class T>
  Vector<T> vector(std::string_view name, Index n) const {
    const TensorInfo& t = info(name);
    require_shape(t, {n});
    return read_vector<T>(t);
  }
  /// A 2-D tensor stored [rows, cols] (a PyTorch Linear weight [out, in]) as its transpose
  /// [cols, rows] (the [in, out] matrix posenc multiplies from the right).
  template <class T>
  Matrix<T> transposed(std::string_view name, Index rows, Index cols) const {
    const TensorInfo& t = info(name);
    require_shape(t, {rows, cols});
    const Matrix<T> m = read_matrix<T>(t);
    Matrix<T> out = detail::new_matrix<T>(cols, rows, path_, ": tensor ", detail::st_quote(name),
                                          " transposed");
    out = m.transpose();
    return out;
  }

 private:
  void require_rank(const TensorInfo& t, std::size_t rank) const {
    detail::require(t.shape.size() == rank, path_, ": tensor ", detail::st_quote(t.name),
                    " has shape ", detail::st_shape_text(t.shape), " (", t.shape.size(),
                    "-D), expected a ", rank, "-D ", rank == 2 ? "matrix" : "vector");
  }
  void require_shape(const TensorInfo& t, const std::vector<std::int64_t>& expected) const {
    detail::require(t.shape == expected, path_, ": tensor ", detail::st_quote(t.name),
                    " has shape ", detail::st_shape_text(t.shape), ", expected ",
                    detail::st_shape_text(expected));
  }
  template <class T>
  Matrix<T> read_matrix(const TensorInfo& t) const {
    Matrix<T> m =
        detail::new_matrix<T>(t.shape[0], t.shape[1], path_, ": tensor ", detail::st_quote(t.name));
    detail::st_decode(bytes(t), t, m.size(), t.shape[1], m.data(), path_);
    return m;
  }
  template <class T>
  Vector<T> read_vector(const TensorInfo& t) const {
    const std::int64_t n =
        detail::checked_elements(t.shape[0], 1, path_, ": tensor ", detail::st_quote(t.name));
    Vector<T> v = detail::allocate(
        n, static_cast<std::int64_t>(sizeof(T)), [&] { return Vector<T>(n); }, path_, ": tensor ",
        detail::st_quote(t.name));
    detail::st_decode(bytes(t), t, n, 0, v.data(), path_);
    return v;
  }

  std::string path_;
  detail::StBytes bytes_;
  std::uint64_t data_offset_ = 0;
  std::vector<TensorInfo> tensors_;
  std::vector<std::string> names_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

/// A checkpoint: one .safetensors file, or the shards a model.safetensors.index.json lists in
/// its "weight_map" (tensor name -> shard file, relative to the index's directory), or a
/// directory holding model.safetensors (preferred) or model.safetensors.index.json. Every shard
/// is opened and validated on construction, and every tensor of the weight_map must be in its
/// shard. With an index, the checkpoint's tensors are those of the weight_map (a shard's other
/// tensors are not part of it).
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& path) : path_(path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::string target = path;
    if (fs::is_directory(path, ec)) {
      const fs::path dir(path);
      if (fs::exists(dir / "model.safetensors", ec)) {
        target = (dir / "model.safetensors").string();
      } else if (fs::exists(dir / "model.safetensors.index.json", ec)) {
        target = (dir / "model.safetensors.index.json").string();
      } else {
        detail::fail(path, ": the directory has neither model.safetensors nor ",
                     "model.safetensors.index.json");
      }
    }
    const std::string suffix = ".json";
    if (target.size() >= suffix.size() &&
        target.compare(target.size() - suffix.size(), suffix.size(), suffix) == 0) {
      open_index(target);
    } else {
      files_.emplace_back(target);
      const File& f = files_.back();
      names_ = f.names();
      for (const auto& n : names_)
        shard_of_.emplace(n, 0);
    }
  }

  /// The path given to the constructor.
  const std::string& path() const { return path_; }
  /// The shard files (one without an index), in the order the weight_map first names them.
  const std::vector<File>& files() const { return files_; }
  /// The tensor names: the weight_map's keys in its order, or the file's in header order.
  std::vector<std::string> names() const { return names_; }
  bool contains(std::string_view name) const { return shard_of_.find(name) != shard_of_.end(); }
  /// The shard holding `name`; throws like info().
  const File& file(std::string_view name) const {
    const auto it = shard_of_.find(name);
    if (it == shard_of_.end())
      detail::fail(
          path_, ": no tensor ", detail::st_quote(name), " in the checkpoint",
          files_.size() > 1 ? " (" + std::to_string(files_.size()) + " shards)" : std::string(),
          detail::st_close_names(name, names_));
    return files_[it->second];
  }
  const TensorInfo& info(std::string_view name) const { return file(name).info(name); }

  template <class T>
  Matrix<T> matrix(std::string_view name) const {
    return file(name).template matrix<T>(name);
  }
  template <class T>
  Matrix<T> matrix(std::string_view name, Index rows, Index cols) const {
    return file(name).template matrix<T>(name, rows, cols);
  }
  template <class T>
  Vector<T> vector(std::string_view name) const {
    return file(name).template vector<T>(name);
  }
  template <class T>
  Vector<T> vector(std::string_view name, Index n) const {
    return file(name).template vector<T>(name, n);
  }
  template <class T>
  Matrix<T> transposed(std::string_view name, Index rows, Index cols) const {
    return file(name).template transposed<T>(name, rows, cols);
  }

 private:
  void open_index(const std::string& index) {
    namespace fs = std::filesystem;
    using json = nlohmann::json;
    const detail::StBytes bytes = detail::StBytes::open(index);
    if (bytes.size() > max_header_size)
      detail::fail(index, ": the index has ", bytes.size(), " bytes, more than the limit of ",
                   max_header_size);
    const char* text = reinterpret_cast<const char*>(bytes.data());
    // nlohmann::json sorts an object's keys: the parser records the weight_map's order.
    std::vector<std::string> root_keys, order;
    const json root = detail::st_parse_json(text, text + bytes.size(), index, "the index",
                                            root_keys, "weight_map", &order);
    if (!root.is_object())
      detail::fail(index, ": the index is ", detail::st_kind(root), ", not a JSON object");
    const auto wm = root.find("weight_map");
    if (wm == root.end()) detail::fail(index, ": the index has no \"weight_map\"");
    if (!wm->is_object())
      detail::fail(index, ": \"weight_map\" is ", detail::st_kind(*wm),
                   ", not an object of tensor name -> shard file");
    const fs::path dir = fs::path(index).parent_path();
    std::map<std::string, std::size_t> shard_index;
    std::vector<std::vector<std::string>> listed;
    for (const auto& name : order) {
      const json& v = (*wm)[name];
      const std::string q = detail::st_quote(name);
      if (name.empty()) detail::fail(index, ": \"weight_map\" has an empty tensor name");
      if (!v.is_string())
        detail::fail(index, ": \"weight_map\" ", q, " is ", detail::st_kind(v),
                     ", not a shard file name");
      const std::string shard = v.get<std::string>();
      auto it = shard_index.find(shard);
      if (it == shard_index.end()) {
        const fs::path rel(shard);
        bool up = false;
        for (const auto& part : rel)
          up = up || part == "..";
        if (shard.empty() || rel.is_absolute() || rel.has_root_name() || up)
          detail::fail(index, ": \"weight_map\" ", q, ": the shard ", detail::st_quote(shard),
                       " is not a file name relative to the index's directory");
        // Its path starts the messages of its own errors: printable, as every message is.
        for (char c : shard)
          if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            detail::fail(index, ": \"weight_map\" ", q, ": the shard ", detail::st_quote(shard),
                         " has a control character in its name");
        const std::string file = (dir / rel).string();
        std::error_code ec;
        if (!fs::exists(file, ec))
          detail::fail(index, ": \"weight_map\" ", q, ": the shard ", detail::st_quote(shard),
                       " does not exist (", file, ")");
        files_.emplace_back(file);
        listed.emplace_back();
        it = shard_index.emplace(shard, files_.size() - 1).first;
      }
      listed[it->second].push_back(name);
      shard_of_.emplace(name, it->second);
      names_.push_back(name);
    }
    for (std::size_t s = 0; s < files_.size(); ++s)
      for (const auto& name : listed[s])
        if (!files_[s].find(name))
          detail::fail(index, ": \"weight_map\" puts tensor ", detail::st_quote(name), " in ",
                       files_[s].path(), ", which has no tensor of that name",
                       detail::st_close_names(name, files_[s].names()));
  }

  std::string path_;
  std::vector<File> files_;
  std::vector<std::string> names_;
  std::map<std::string, std::size_t, std::less<>> shard_of_;
};

}  // namespace safetensors
POSENC_NAMESPACE_END
