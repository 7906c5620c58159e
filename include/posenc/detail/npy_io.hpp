// posenc: a minimal, self-contained .npy writer and reader for float32 / float64 C-order arrays
// (NEP 1, numpy.lib.format), for posenc/training_io.hpp. The writer emits format 1.0 exactly as
// numpy.save lays it out (the header padded with spaces and '\n' so that the data start at a
// multiple of 64 bytes); the reader takes format 1.0, 2.0 and 3.0 headers of the form numpy
// writes, dtype '<f4' or '<f8', fortran_order False, and a shape of up to 2 dimensions.
// (tools/npy/npy.hpp is the project's full reader and writer; the library cannot depend on it.)
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../error.hpp"
#include "checked.hpp"

POSENC_NAMESPACE_BEGIN
namespace detail {
namespace npy {

inline bool little_endian() {
  const std::uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

/// A .npy array read back: dtype "<f4" or "<f8", its shape, the data converted to double.
struct Array {
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::vector<double> values;
};

inline std::string shape_repr(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    s += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) s += ",";
    if (i + 1 < shape.size()) s += " ";
  }
  return s + ")";
}

/// Writes `count` values of type F (float or double) with `shape` to file (format 1.0).
template <class F>
void write(const std::string& file, const std::vector<std::int64_t>& shape, const F* data) {
  static_assert(sizeof(F) == 4 || sizeof(F) == 8, "npy::write: float or double");
  require(little_endian(), "npy::write: ", file, ": big-endian hosts are not supported");
  std::int64_t count = 1;
  for (const auto s : shape) {
    require(s >= 0, "npy::write: ", file, ": negative extent ", s);
    count = checked_mul(count, s, "npy::write: ", file, ": the element count");
  }
  std::string header = std::string("{'descr': '") + (sizeof(F) == 4 ? "<f4" : "<f8") +
                       "', 'fortran_order': False, 'shape': " + shape_repr(shape) + ", }";
  // magic (6) + version (2) + length (2) + header + '\n', a multiple of 64
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  require(header.size() <= 65535, "npy::write: ", file, ": the header is too long");
  std::string pre = "\x93NUMPY";
  pre += '\x01';
  pre += '\x00';
  pre += static_cast<char>(header.size() & 0xff);
  pre += static_cast<char>(header.size() >> 8);
  pre += header;
  std::FILE* fp = std::fopen(file.c_str(), "wb");
  if (!fp) {
    const int err = errno;
    fail("npy::write: ", file, ": cannot open for writing (",
         err ? std::strerror(err) : "unknown error", ")");
  }
  const std::size_t bytes = static_cast<std::size_t>(count) * sizeof(F);
  bool ok = std::fwrite(pre.data(), 1, pre.size(), fp) == pre.size() &&
            (bytes == 0 || std::fwrite(data, 1, bytes, fp) == bytes);
  int err = ok ? 0 : errno;
  if (std::fclose(fp) != 0 && ok) {  // a full disk often shows only here
    ok = false;
    err = errno;
  }
  if (!ok) fail("npy::write: ", file, ": write failed (", err ? std::strerror(err) : "?", ")");
}

namespace parse {
inline void skip(const std::string& h, std::size_t& i) {
  while (i < h.size() && (h[i] == ' ' || h[i] == '\t' || h[i] == '\n' || h[i] == '\r'))
    ++i;
}
/// The text after `'key':` in the header dict, or fail.
inline std::size_t value_of(const std::string& h, const char* key, const std::string& file) {
  for (const char q : {'\'', '"'}) {
    const std::string k = std::string(1, q) + key + q;
    const std::size_t at = h.find(k);
    if (at == std::string::npos) continue;
    std::size_t i = at + k.size();
    skip(h, i);
    require(i < h.size() && h[i] == ':', "npy::read: ", file, ": expected ':' after '", key,
            "' in the header");
    ++i;
    skip(h, i);
    return i;
  }
  fail("npy::read: ", file, ": the header has no '", key, "' (header: ", h, ")");
}
}  // namespace parse

/// Reads a float32 or float64 C-order .npy file of at most 2 dimensions.
inline Array read(const std::string& file) {
  require(little_endian(), "npy::read: ", file, ": big-endian hosts are not supported");
  std::FILE* fp = std::fopen(file.c_str(), "rb");
  if (!fp) {
    const int err = errno;
    fail("npy::read: ", file, ": cannot open (", err ? std::strerror(err) : "unknown error", ")");
  }
  std::vector<char> bytes;
  char buf[65536];
  std::size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, fp)) > 0)
    bytes.insert(bytes.end(), buf, buf + got);
  const bool bad = std::ferror(fp) != 0;
  std::fclose(fp);
  require(!bad, "npy::read: ", file, ": read error");
  require(bytes.size() >= 10 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0, "npy::read: ", file,
          ": not a .npy file (no \\x93NUMPY magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  require(major >= 1 && major <= 3, "npy::read: ", file, ": format version ", major,
          ".x is not supported (1.0, 2.0, 3.0)");
  const auto byte = [&](std::size_t i) {
    return static_cast<std::size_t>(static_cast<unsigned char>(bytes[i]));
  };
  std::size_t hlen, start;
  if (major == 1) {
    hlen = byte(8) | (byte(9) << 8);
    start = 10;
  } else {
    require(bytes.size() >= 12, "npy::read: ", file, ": truncated preamble");
    hlen = byte(8) | (byte(9) << 8) | (byte(10) << 16) | (byte(11) << 24);
    start = 12;
  }
  require(hlen <= bytes.size() - start, "npy::read: ", file, ": the header (", hlen,
          " bytes) runs past the end of the file (", bytes.size(), " bytes)");
  const std::string h(bytes.data() + start, hlen);
  Array a;
  // descr
  std::size_t i = parse::value_of(h, "descr", file);
  require(i < h.size() && (h[i] == '\'' || h[i] == '"'), "npy::read: ", file,
          ": 'descr' is not a string");
  const std::size_t e = h.find(h[i], i + 1);
  require(e != std::string::npos, "npy::read: ", file, ": unterminated 'descr'");
  a.dtype = h.substr(i + 1, e - i - 1);
  require(a.dtype == "<f4" || a.dtype == "<f8", "npy::read: ", file, ": dtype '", a.dtype,
          "' is not supported (float32 '<f4' or float64 '<f8')");
  // fortran_order
  i = parse::value_of(h, "fortran_order", file);
  if (h.compare(i, 4, "True") == 0)
    fail("npy::read: ", file, ": Fortran-order arrays are not supported (C order only)");
  require(h.compare(i, 5, "False") == 0, "npy::read: ", file,
          ": 'fortran_order' is neither True nor False");
  // shape
  i = parse::value_of(h, "shape", file);
  require(i < h.size() && h[i] == '(', "npy::read: ", file, ": 'shape' is not a tuple");
  ++i;
  for (;;) {
    parse::skip(h, i);
    require(i < h.size(), "npy::read: ", file, ": unterminated 'shape'");
    if (h[i] == ')') break;
    require(h[i] >= '0' && h[i] <= '9', "npy::read: ", file, ": bad 'shape' entry at '",
            h.substr(i, 8), "'");
    std::int64_t v = 0;
    while (i < h.size() && h[i] >= '0' && h[i] <= '9') {
      v = checked_add(checked_mul(v, 10, "npy::read: ", file, ": shape"), h[i] - '0',
                      "npy::read: ", file, ": shape");
      ++i;
    }
    a.shape.push_back(v);
    parse::skip(h, i);
    if (i < h.size() && h[i] == ',') ++i;
  }
  require(a.shape.size() <= 2, "npy::read: ", file, ": ", a.shape.size(),
          "-dimensional arrays are not supported (at most 2)");
  std::int64_t count = 1;
  for (const auto s : a.shape)
    count = checked_mul(count, s, "npy::read: ", file, ": elements");
  const std::size_t item = a.dtype == "<f4" ? 4 : 8;
  const std::size_t data = start + hlen;
  require(static_cast<std::uint64_t>(count) <= (bytes.size() - data) / item, "npy::read: ", file,
          ": the data are truncated (", count, " elements of ", item, " bytes declared, ",
          bytes.size() - data, " bytes present)");
  a.values.resize(static_cast<std::size_t>(count));
  for (std::size_t k = 0; k < a.values.size(); ++k) {
    if (item == 4) {
      float f;
      std::memcpy(&f, bytes.data() + data + 4 * k, 4);
      a.values[k] = f;
    } else {
      std::memcpy(&a.values[k], bytes.data() + data + 8 * k, 8);
    }
  }
  return a;
}

}  // namespace npy
}  // namespace detail
POSENC_NAMESPACE_END
