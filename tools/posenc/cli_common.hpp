// posenc command line: shared helpers (errors, atomic .npy output, loading input arrays).
#pragma once

#include <posenc/detail/npy.hpp>
#include <posenc/error.hpp>
#include <posenc/types.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace posenc_cli {

/// A user error: printed as one line "posenc: error: <what>", exit status 2.
struct CliError : std::runtime_error {
  using runtime_error::runtime_error;
};

/// "[3, 4, 5]"
inline std::string shape_str(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// The message on one line (newlines become "; ").
inline std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  std::string out;
  for (char c : s) {
    if (c == '\n') out += "; ";
    else if (c != '\r') out += c;
  }
  return out;
}

/// Throws unless the product of `dims` (all >= 0) stays within 2^32 elements.
inline void check_elements(const std::string& what, std::initializer_list<std::int64_t> dims) {
  constexpr std::int64_t limit = std::int64_t{1} << 32;
  std::int64_t n = 1;
  std::string s;
  for (auto d : dims) {
    s += (s.empty() ? "" : " x ") + std::to_string(d);
    if (d < 0) throw CliError(what + ": negative extent in " + s);
    if (d != 0 && n > limit / d) n = limit + 1;
    else n *= d;
  }
  if (n > limit)
    throw CliError(what + " would have " + s + " elements, more than the limit 2^32");
}

/// Writes via a temporary file in the same directory, renamed into place on success; on any
/// exception the temporary is removed, and `path` is left as it was (absent, or untouched).
inline void write_atomically(const std::string& path,
                             const std::function<void(const std::string& tmp_path)>& write) {
  if (path.empty()) throw CliError("-o: empty output path");
  std::string templ = path + ".tmp.XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  const int fd = ::mkstemp(buf.data());
  if (fd < 0)
    throw CliError("-o " + path + ": cannot create a temporary file next to it: " +
                   std::strerror(errno));
  // mkstemp creates the file 0600; give the output the mode a plain open() would (0666 & ~umask).
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);
  ::close(fd);
  const std::string tmp(buf.data());
  try {
    try {
      write(tmp);
    } catch (const posenc::error& e) {  // e.g. "<tmp>: write failed": name the output instead
      std::string msg = e.what();
      for (auto at = msg.find(tmp); at != std::string::npos; at = msg.find(tmp))
        msg.replace(at, tmp.size(), path);
      throw CliError("-o " + msg);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw CliError("-o " + path + ": cannot rename the temporary file into place: " +
                     std::strerror(errno));
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

/// .npy output of a row-major matrix with a given logical shape (its product must equal the
/// matrix size), dtype "f32" or "f64", written atomically.
template <class T>
void write_npy_matrix(const std::string& path, const posenc::Matrix<T>& m,
                      const std::vector<std::int64_t>& shape, const std::string& dtype) {
  std::int64_t n = 1;
  for (auto s : shape) n *= s;
  if (n != static_cast<std::int64_t>(m.size()))
    throw CliError("internal: output shape " + shape_str(shape) + " does not match " +
                   std::to_string(m.size()) + " values");
  write_atomically(path, [&](const std::string& tmp) {
    if (dtype == "f32") {
      const posenc::Matrix<float> f = m.template cast<float>();
      posenc::detail::write_npy(tmp, "<f4", shape, f.data());
    } else if (dtype == "f64") {
      const posenc::Matrix<double> d = m.template cast<double>();
      posenc::detail::write_npy(tmp, "<f8", shape, d.data());
    } else {
      throw CliError("--dtype: expected f32 or f64, got '" + dtype + "'");
    }
  });
}

/// An input array as a double matrix [shape[0], prod(shape[1:])] (a 1-d array is [n, 1]).
struct Array {
  std::vector<std::int64_t> shape;
  std::string dtype;  // "f32" or "f64"
  posenc::Matrix<double> data;
};

inline posenc::detail::NpyArray read_npy_for(const std::string& flag, const std::string& path) {
  try {
    return posenc::detail::read_npy(path);
  } catch (const posenc::error& e) {
    throw CliError(flag + ": " + e.what());
  }
}

/// Loads a float .npy ('<f4' or '<f8'); errors name the flag and the file.
inline Array load_array(const std::string& flag, const std::string& path) {
  const auto a = read_npy_for(flag, path);
  if (a.dtype != "<f4" && a.dtype != "<f8")
    throw CliError(flag + ": " + path + ": expected dtype <f4 or <f8, got " + a.dtype);
  if (a.shape.empty())
    throw CliError(flag + ": " + path + ": expected an array, got a 0-d scalar");
  Array out;
  out.shape = a.shape;
  out.dtype = a.dtype == "<f4" ? "f32" : "f64";
  std::int64_t cols = 1;
  for (std::size_t i = 1; i < a.shape.size(); ++i) cols *= a.shape[i];
  out.data.resize(static_cast<posenc::Index>(a.shape[0]), static_cast<posenc::Index>(cols));
  const std::int64_t n = a.size();
  double* d = out.data.data();
  for (std::int64_t i = 0; i < n; ++i) d[i] = a.as_double(i);
  return out;
}

/// Loads a 1-d '<i8' array of non-negative positions; errors name the flag and the file.
inline std::vector<std::int64_t> load_positions(const std::string& flag, const std::string& path) {
  const auto a = read_npy_for(flag, path);
  if (a.dtype != "<i8")
    throw CliError(flag + ": " + path + ": expected dtype <i8, got " + a.dtype);
  if (a.shape.size() != 1)
    throw CliError(flag + ": " + path + ": expected shape [N], got " + shape_str(a.shape));
  std::vector<std::int64_t> p(static_cast<std::size_t>(a.size()));
  for (std::size_t i = 0; i < p.size(); ++i) {
    p[i] = a.as_int(static_cast<std::int64_t>(i));
    if (p[i] < 0)
      throw CliError(flag + ": " + path + ": position[" + std::to_string(i) + "] = " +
                     std::to_string(p[i]) + " must be >= 0");
  }
  return p;
}

/// Throws unless `a` has exactly `expected` shape (-1 in `expected` matches any extent).
inline void expect_shape(const std::string& flag, const std::string& path, const Array& a,
                         const std::vector<std::int64_t>& expected, const std::string& what = "") {
  bool ok = a.shape.size() == expected.size();
  for (std::size_t i = 0; ok && i < expected.size(); ++i)
    ok = expected[i] < 0 || expected[i] == a.shape[i];
  if (ok) return;
  std::string e = "[";
  for (std::size_t i = 0; i < expected.size(); ++i)
    e += (i ? ", " : "") + (expected[i] < 0 ? std::string("*") : std::to_string(expected[i]));
  e += "]";
  throw CliError(flag + ": " + path + ": expected shape " + e + (what.empty() ? "" : " " + what) +
                 ", got " + shape_str(a.shape));
}

}  // namespace posenc_cli
