// posenc internals: reading and writing NumPy .npy files (format versions 1.0, 2.0 and 3.0;
// little-endian <f4, <f8 and <i8; C order), for the tests and the command line.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../error.hpp"

namespace posenc {
namespace detail {

struct NpyArray {
  std::string dtype;  // "<f4", "<f8" or "<i8"
  std::vector<std::int64_t> shape;
  std::vector<char> data;

  std::int64_t size() const {
    std::int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
  std::size_t item_size() const { return dtype == "<f4" ? 4 : 8; }
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

inline std::string npy_dict_value(const std::string& header, const std::string& key,
                                  const std::string& file) {
  const std::string k = "'" + key + "'";
  const auto at = header.find(k);
  require(at != std::string::npos, file, ": malformed .npy header: no ", k);
  auto colon = header.find(':', at + k.size());
  require(colon != std::string::npos, file, ": malformed .npy header after ", k);
  auto start = header.find_first_not_of(' ', colon + 1);
  require(start != std::string::npos, file, ": malformed .npy header after ", k);
  if (header[start] == '(') {
    const auto end = header.find(')', start);
    require(end != std::string::npos, file, ": malformed .npy header: unterminated shape");
    return header.substr(start, end - start + 1);
  }
  const auto end = header.find_first_of(",}", start);
  require(end != std::string::npos, file, ": malformed .npy header after ", k);
  auto v = header.substr(start, end - start);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"')) v = v.substr(1, v.size() - 2);
  return v;
}

/// Reads a .npy file; throws posenc::error naming the file and the problem.
inline NpyArray read_npy(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int err = errno;
    fail(file, ": cannot open", err ? std::string(" (") + std::strerror(err) + ")" : std::string());
  }
  in.seekg(0, std::ios::end);
  const std::streamoff file_size = in.tellg();
  in.seekg(0, std::ios::beg);
  char magic[8];
  in.read(magic, 8);
  require(in.gcount() == 8 && std::memcmp(magic, "\x93NUMPY", 6) == 0, file,
          ": not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(magic[6]);
  require(major >= 1 && major <= 3, file, ": unsupported .npy format version ", major);
  std::uint32_t header_len = 0;
  unsigned char len[4] = {0, 0, 0, 0};
  in.read(reinterpret_cast<char*>(len), major == 1 ? 2 : 4);
  require(in.gcount() == (major == 1 ? 2 : 4), file, ": truncated .npy header");
  header_len = len[0] | (len[1] << 8) | (static_cast<std::uint32_t>(len[2]) << 16) |
               (static_cast<std::uint32_t>(len[3]) << 24);
  require(header_len < (1u << 24), file, ": .npy header length ", header_len, " is implausible");
  std::string header(header_len, '\0');
  in.read(&header[0], header_len);
  require(in.gcount() == static_cast<std::streamsize>(header_len), file, ": truncated .npy header");

  NpyArray a;
  a.dtype = npy_dict_value(header, "descr", file);
  if (!a.dtype.empty() && a.dtype[0] == '>' && a.dtype.size() > 1 && a.dtype[1] != '1')
    fail(file, ": big-endian dtype '", a.dtype,
         "' is not supported (expected little-endian <f4, <f8 or <i8)");
  require(a.dtype == "<f4" || a.dtype == "<f8" || a.dtype == "<i8", file, ": unsupported dtype '",
          a.dtype, "' (expected <f4, <f8 or <i8)");
  const auto fortran = npy_dict_value(header, "fortran_order", file);
  require(fortran == "False", file, ": Fortran-ordered arrays are not supported (fortran_order ",
          fortran, ")");
  const auto shape = npy_dict_value(header, "shape", file);
  require(shape.size() >= 2 && shape.front() == '(', file, ": malformed .npy shape ", shape);
  std::size_t i = 1;
  while (i < shape.size() - 1) {
    while (i < shape.size() - 1 && (shape[i] == ' ' || shape[i] == ',')) ++i;
    if (i >= shape.size() - 1) break;
    std::size_t j = i;
    while (j < shape.size() - 1 && shape[j] >= '0' && shape[j] <= '9') ++j;
    require(j > i && j - i <= 15, file, ": malformed .npy shape ", shape);
    a.shape.push_back(std::stoll(shape.substr(i, j - i)));
    i = j;
  }
  // The element count, checked against the bytes the file has before anything is allocated.
  const std::int64_t data_offset = (major == 1 ? 10 : 12) + static_cast<std::int64_t>(header_len);
  const std::int64_t available = std::max<std::int64_t>(0, file_size - data_offset);
  const std::int64_t item = static_cast<std::int64_t>(a.item_size());
  const std::int64_t max_items = available / item;
  std::int64_t n = 1;
  if (std::find(a.shape.begin(), a.shape.end(), std::int64_t{0}) != a.shape.end()) {
    n = 0;
  } else {
    for (auto s : a.shape) {
      if (n > max_items / s) {
        n = -1;  // more than the file holds (and possibly more than int64)
        break;
      }
      n *= s;
    }
  }
  if (n < 0) {
    double needed = static_cast<double>(item);
    for (auto s : a.shape) needed *= static_cast<double>(s);
    std::ostringstream need;
    if (needed < 9e18) need << static_cast<std::int64_t>(needed);
    else need << needed;
    fail(file, ": truncated .npy data: the shape ", shape, " needs ", need.str(),
         " bytes of data, the file has ", available);
  }
  a.data.resize(static_cast<std::size_t>(n) * a.item_size());
  in.read(a.data.data(), static_cast<std::streamsize>(a.data.size()));
  require(in.gcount() == static_cast<std::streamsize>(a.data.size()), file,
          ": truncated .npy data: expected ", a.data.size(), " bytes, got ", in.gcount());
  return a;
}

/// Writes a .npy (version 1.0) file of dtype "<f4", "<f8" or "<i8" from raw little-endian data.
inline void write_npy(const std::string& file, const std::string& dtype,
                      const std::vector<std::int64_t>& shape, const void* data) {
  require(dtype == "<f4" || dtype == "<f8" || dtype == "<i8", "write_npy: unsupported dtype ", dtype);
  std::string header = "{'descr': '" + dtype + "', 'fortran_order': False, 'shape': (";
  std::int64_t n = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    header += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
    if (i + 1 < shape.size()) header += " ";
    n *= shape[i];
  }
  header += "), }";
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  require(header.size() <= 65535, file, ": .npy header for shape of ", shape.size(),
          " dimensions is too long for format 1.0");
  std::ofstream out(file, std::ios::binary);
  require(static_cast<bool>(out), file, ": cannot open for writing");
  out.write("\x93NUMPY\x01\x00", 8);
  const auto hl = static_cast<std::uint16_t>(header.size());
  const char len[2] = {static_cast<char>(hl & 0xff), static_cast<char>(hl >> 8)};
  out.write(len, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n) * (dtype == "<f4" ? 4 : 8));
  out.close();  // flushes: a full disk shows here
  require(!out.fail(), file, ": write failed");
}

}  // namespace detail
}  // namespace posenc
