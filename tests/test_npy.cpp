// The .npy reader and writer (tools/npy/npy.hpp): files NumPy wrote (tests/reference/data/npy,
// from make_npy_cases.py) read back exactly, write_npy reproduces numpy.save byte for byte, and
// malformed files, built here byte by byte, are refused with a message naming the file and the
// problem.
#include <npy.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using Catch::Contains;
using posenc_npy::NpyArray;
using posenc_npy::parse_npy;
using posenc_npy::read_npy;
using posenc_npy::write_npy;

/// A private directory, removed with everything in it at the end of the test case.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "posenc_test_npy.XXXXXX").string();
    REQUIRE(::mkdtemp(&templ[0]) != nullptr);
    path = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string file = (path / name).string();
    std::ofstream out(file, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
    return file;
  }
};

std::string reference(const std::string& name) {
  return std::string(POSENC_TEST_DATA_DIR) + "/npy/" + name + ".npy";
}

std::string file_bytes(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// The little-endian bytes of v.
std::string le(std::uint64_t v, int bytes) {
  std::string s;
  for (int i = 0; i < bytes; ++i)
    s += static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

/// magic, version major.minor, the header length (2 bytes in 1.0, 4 after), the header as
/// given (no padding added), the data.
std::string npy_file(const std::string& header, const std::string& data = "", int major = 1,
                     int minor = 0) {
  std::string s = "\x93NUMPY";
  s += static_cast<char>(major);
  s += static_cast<char>(minor);
  return s + le(header.size(), major == 1 ? 2 : 4) + header + data;
}

/// numpy's dict for a C-order array.
std::string dict(const std::string& descr, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
}

std::string zeros(std::size_t bytes) {
  return std::string(bytes, '\0');
}

/// The value make_npy_cases.py stores at element i of n: (i - n/3) / 7 in float64.
double v_of(std::int64_t i, std::int64_t n) {
  return (static_cast<double>(i) - static_cast<double>(n) / 3) / 7;
}

/// Both the file reader and the in-memory parser refuse `bytes` with posenc::error, and the
/// message names the file and contains `fragment`.
void check_rejected(const TempDir& dir, const std::string& bytes, const std::string& fragment) {
  const std::string file = dir.write("bad.npy", bytes);
  INFO("expected: " << fragment);
  CHECK_THROWS_AS(read_npy(file), posenc::error);
  CHECK_THROWS_WITH(read_npy(file), Contains(file) && Contains(fragment));
  CHECK_THROWS_AS(parse_npy(bytes.data(), bytes.size(), "mem.npy"), posenc::error);
  CHECK_THROWS_WITH(parse_npy(bytes.data(), bytes.size(), "mem.npy"),
                    Contains("mem.npy") && Contains(fragment));
}

struct Bad {
  const char* what;
  std::string bytes;
  const char* message;
};

void check_all(const std::vector<Bad>& cases) {
  const TempDir dir;
  for (const Bad& c : cases) {
    INFO(c.what);
    check_rejected(dir, c.bytes, c.message);
  }
}

const std::string f8_2x3_data = zeros(48);

}  // namespace

// ------------------------------------------------------------------------------------------------
// Files NumPy wrote.

TEST_CASE("npy: every file NumPy wrote reads back with its exact shape and values", "[npy]") {
  struct Case {
    const char* name;
    const char* dtype;
    std::vector<std::int64_t> shape;
  };
  const std::vector<Case> cases = {
      {"v1_f4_2x3", "<f4", {2, 3}},
      {"v1_f8_5", "<f8", {5}},
      {"v1_f4_2x3x4", "<f4", {2, 3, 4}},
      {"v1_f8_1500", "<f8", {1500}},
      {"v1_f8_0", "<f8", {0}},
      {"v1_f4_0x3", "<f4", {0, 3}},
      {"v1_f8_2x0x4", "<f8", {2, 0, 4}},
      {"v1_f8_3_trailing", "<f8", {3}},
      {"v2_f8_3x2", "<f8", {3, 2}},
      {"v3_f4_4", "<f4", {4}},
      {"v1_f8_20d", "<f8", {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    const NpyArray a = read_npy(reference(c.name));
    CHECK(a.dtype == c.dtype);
    CHECK(a.shape == c.shape);
    const std::int64_t n = a.size();
    REQUIRE(a.data.size() == static_cast<std::size_t>(n) * a.item_size());
    for (std::int64_t i = 0; i < n; ++i) {
      const double expected = a.dtype == "<f4" ? static_cast<float>(v_of(i, n)) : v_of(i, n);
      REQUIRE(a.as_double(i) == expected);
    }
  }
}

TEST_CASE("npy: 0-d arrays, int64 extremes and IEEE specials from NumPy", "[npy]") {
  const NpyArray s = read_npy(reference("v1_f8_0d"));
  CHECK(s.dtype == "<f8");
  CHECK(s.shape.empty());
  CHECK(s.size() == 1);
  CHECK(s.as_double(0) == 0.1);
  const NpyArray s4 = read_npy(reference("v2_f4_0d"));
  CHECK(s4.shape.empty());
  CHECK(s4.as_double(0) == 2.5);
  const NpyArray si = read_npy(reference("v1_i8_0d"));
  CHECK(si.shape.empty());
  CHECK(si.as_int(0) == -5);

  const NpyArray e = read_npy(reference("v1_i8_extremes"));
  CHECK(e.dtype == "<i8");
  REQUIRE(e.shape == std::vector<std::int64_t>{5});
  CHECK(e.as_int(0) == std::numeric_limits<std::int64_t>::min());
  CHECK(e.as_int(1) == -1);
  CHECK(e.as_int(2) == 0);
  CHECK(e.as_int(3) == 1);
  CHECK(e.as_int(4) == std::numeric_limits<std::int64_t>::max());

  const NpyArray v3 = read_npy(reference("v3_i8_2x2x2"));
  REQUIRE(v3.shape == std::vector<std::int64_t>{2, 2, 2});
  for (std::int64_t i = 0; i < 8; ++i)
    CHECK(v3.as_int(i) == i - 4);

  const NpyArray sp = read_npy(reference("v1_f4_specials"));
  REQUIRE(sp.shape == std::vector<std::int64_t>{6});
  CHECK(std::isnan(sp.as_double(0)));
  CHECK(sp.as_double(1) == INFINITY);
  CHECK(sp.as_double(2) == -INFINITY);
  CHECK(sp.as_double(3) == 0.0);
  CHECK(std::signbit(sp.as_double(3)));
  CHECK(sp.as_double(4) == static_cast<double>(std::numeric_limits<float>::denorm_min()));
  CHECK(sp.as_double(5) == static_cast<double>(std::numeric_limits<float>::max()));
}

TEST_CASE("npy: the in-memory parser agrees with the file reader on NumPy's files", "[npy]") {
  for (const char* name : {"v1_f4_2x3", "v1_f8_0d", "v1_f8_1500", "v1_f8_3_trailing", "v2_f8_3x2",
                           "v3_i8_2x2x2", "v1_f8_2x0x4"}) {
    INFO(name);
    const std::string bytes = file_bytes(reference(name));
    const NpyArray m = parse_npy(bytes.data(), bytes.size(), name);
    const NpyArray f = read_npy(reference(name));
    CHECK(m.dtype == f.dtype);
    CHECK(m.shape == f.shape);
    CHECK(m.data == f.data);
  }
}

TEST_CASE("npy: write_npy writes exactly the bytes numpy.save wrote", "[npy]") {
  const TempDir dir;
  for (const char* name :
       {"v1_f4_2x3", "v1_f8_5", "v1_f8_0d", "v1_f4_2x3x4", "v1_f8_0", "v1_f4_0x3", "v1_f8_2x0x4",
        "v1_f8_20d", "v1_f8_1500", "v1_i8_extremes", "v1_i8_0d", "v1_f4_specials"}) {
    INFO(name);
    const NpyArray a = read_npy(reference(name));
    const std::string out = (dir.path / "out.npy").string();
    write_npy(out, a.dtype, a.shape, a.data.data());
    CHECK(file_bytes(out) == file_bytes(reference(name)));
  }
}

TEST_CASE("npy: write_npy round trip, and headers numpy pads to 64 bytes", "[npy]") {
  const TempDir dir;
  const std::string out = (dir.path / "rt.npy").string();
  const std::vector<std::vector<std::int64_t>> shapes = {
      {}, {0}, {1}, {7}, {3, 4}, {2, 0, 5}, {1, 2, 3, 4}, {123456789012, 0}};
  for (const auto& shape : shapes) {
    std::int64_t n = 1;
    for (auto s : shape)
      n *= s;
    std::vector<double> v(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i)
      v[static_cast<std::size_t>(i)] = v_of(i, n);
    write_npy(out, "<f8", shape, v.data());
    const std::string bytes = file_bytes(out);
    const std::size_t header_end = bytes.size() - v.size() * 8;
    CHECK(header_end % 64 == 0);
    CHECK(bytes[header_end - 1] == '\n');
    const NpyArray a = read_npy(out);
    CHECK(a.dtype == "<f8");
    CHECK(a.shape == shape);
    for (std::int64_t i = 0; i < n; ++i)
      CHECK(a.as_double(i) == v[static_cast<std::size_t>(i)]);
  }
}

// ------------------------------------------------------------------------------------------------
// Hand-built headers that numpy would also load.

TEST_CASE("npy: header variants NumPy accepts are read", "[npy]") {
  const TempDir dir;
  struct Good {
    const char* what;
    std::string header;
    std::vector<std::int64_t> shape;
    int major;
  };
  const std::vector<Good> cases = {
      {"no padding, no newline",
       "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)}",
       {2, 3},
       1},
      {"double quotes",
       "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (2, 3), }",
       {2, 3},
       1},
      {"keys in another order",
       "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f8'}",
       {2, 3},
       1},
      {"tabs, CR, LF and form feeds between tokens",
       "\t{\n'descr'\t:\r\n'<f8' ,\f'fortran_order':False,'shape':( 2 ,3 , ) ,}\r\n \t",
       {2, 3},
       2},
      {"trailing comma in the shape",
       "{'descr': '<f8', 'fortran_order': False, 'shape': (6,)}",
       {6},
       1},
      {"empty tuple with spaces",
       "{'descr': '<f8', 'fortran_order': False, 'shape': ( ), }",
       {},
       3},
      {"Python 2 long integers in a 1.0 header",
       "{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 3L), }",
       {2, 3},
       1},
      {"all-zero dimension 00",
       "{'descr': '<f8', 'fortran_order': False, 'shape': (00, 3), }",
       {0, 3},
       1},
      {"exactly the 10000 bytes numpy allows",
       dict("<f8", "(6,)") + std::string(10000 - dict("<f8", "(6,)").size() - 1, ' ') + "\n",
       {6},
       2},
      {"64 dimensions",
       [] {
         std::string s = "(";
         for (int i = 0; i < 64; ++i)
           s += i ? ", 1" : "1";
         return dict("<f8", s + ")");
       }(),
       std::vector<std::int64_t>(64, 1), 1},
  };
  for (const Good& c : cases) {
    INFO(c.what);
    std::int64_t n = 1;
    for (auto s : c.shape)
      n *= s;
    const std::string bytes = npy_file(c.header, zeros(static_cast<std::size_t>(n) * 8), c.major);
    const std::string file = dir.write("good.npy", bytes);
    const NpyArray a = read_npy(file);
    CHECK(a.dtype == "<f8");
    CHECK(a.shape == c.shape);
    CHECK(a.size() == n);
    const NpyArray m = parse_npy(bytes.data(), bytes.size(), "mem.npy");
    CHECK(m.shape == c.shape);
  }
}

// ------------------------------------------------------------------------------------------------
// Malformed files: each refused with a message that says what and where.

TEST_CASE("npy: malformed preambles are refused", "[npy]") {
  const std::string h = dict("<f8", "(2, 3)");
  std::string len_past_end = npy_file(h, f8_2x3_data);
  len_past_end[8] = static_cast<char>(0xff);  // header length 0x..ff: past the end of the file
  check_all({
      {"empty file", "", "not a .npy file (bad magic: the file has only 0 bytes)"},
      {"text", "this is not numpy\n", "not a .npy file (bad magic)"},
      {"5 bytes of magic", "\x93NUMP", "bad magic"},
      {"wrong magic", "\x93NUMPX\x01\x00" + le(h.size(), 2) + h + f8_2x3_data, "bad magic"},
      {"magic without a version", std::string("\x93NUMPY\x01"),
       "truncated .npy header: the file ends inside the format version"},
      {"version 4.0", npy_file(h, f8_2x3_data, 4), "unsupported .npy format version 4.0"},
      {"version 0.0", npy_file(h, f8_2x3_data, 0), "unsupported .npy format version 0.0"},
      {"version 1.1", npy_file(h, f8_2x3_data, 1, 1), "unsupported .npy format version 1.1"},
      {"1.0 with one byte of header length", std::string("\x93NUMPY\x01\x00\x10", 9),
       "truncated .npy header: the file ends inside the header length"},
      {"2.0 with three bytes of header length", std::string("\x93NUMPY\x02\x00\x10\x00\x00", 11),
       "truncated .npy header: the file ends inside the header length"},
      {"header length 10001", npy_file(h + std::string(10001 - h.size(), ' '), f8_2x3_data, 2),
       "the .npy header length 10001 is over 10000 bytes"},
      {"header length 2^32 - 1", std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff", 12) + h,
       "the .npy header length 4294967295 is over 10000 bytes"},
      {"header cut by the end of the file", npy_file(h, f8_2x3_data).substr(0, 30),
       "truncated .npy header: the header length is 59 bytes but the file ends after 20 of them"},
      {"header length past the end of the file", len_past_end,
       "truncated .npy header: the header length is 255 bytes but the file ends after 107"},
  });
}

TEST_CASE("npy: header lengths that disagree with the dict are refused", "[npy]") {
  const std::string h = dict("<f8", "(2, 3)");
  // The declared length stops inside the dict, or runs past it into the data.
  std::string short_len = npy_file(h, f8_2x3_data);
  short_len[8] = 40;
  std::string long_len = npy_file(h, std::string(48, 'x'));
  long_len[8] = static_cast<char>(h.size() + 8);
  check_all({
      {"length ends inside the dict", short_len,
       "at byte 40 (file offset 50): expected a quoted key or '}', got the end of the header"},
      {"length runs into the data", long_len,
       "at byte 59 (file offset 69): unexpected 'x' after the dict's closing '}'"},
  });
}

TEST_CASE("npy: malformed header syntax is refused", "[npy]") {
  const std::string d = f8_2x3_data;
  const std::string tail = "'fortran_order': False, 'shape': (2, 3), }";
  check_all({
      {"empty header", npy_file("", d), "the header is empty"},
      {"blank header", npy_file("   \n", d), "at byte 4 (file offset 14): the header is empty"},
      {"a list", npy_file("['descr', '<f8']\n", d),
       "the header is not a dict: expected '{', got '['"},
      {"a string", npy_file("'descr'\n", d), "the header is not a dict"},
      {"NUL in the padding", npy_file(dict("<f8", "(2, 3)") + std::string(" \0\n", 3), d),
       "at byte 60 (file offset 70): NUL byte"},
      {"NUL in a string", npy_file(std::string("{'descr': '<f8\0', ", 19) + tail, d),
       "at byte 14 (file offset 24): NUL byte"},
      {"unterminated key", npy_file("{'descr", d),
       "at byte 1 (file offset 11): unterminated string (no closing ' before the end of the "
       "header)"},
      {"unterminated value", npy_file("{'descr': \"<f8, " + tail, d),
       "at byte 10 (file offset 20): unterminated string (no closing \" before the end of the "
       "header)"},
      {"newline inside a string", npy_file("{'descr': '<f8\n', " + tail, d),
       "unterminated string (no closing ' before the end of the line)"},
      {"backslash escape", npy_file("{'descr': '<\\x66\\x38', " + tail, d),
       "at byte 12 (file offset 22): backslash escapes are not supported"},
      {"latin-1 byte in a 1.0 key", npy_file("{'d\xe9scr': '<f8', " + tail, d),
       "non-ASCII byte 0xe9 in a string"},
      {"utf-8 in a 3.0 key", npy_file("{'d\xc3\xa9scr': '<f8', " + tail, d, 3),
       "non-ASCII byte 0xc3 in a string (utf-8 keys and dtypes are not supported)"},
      {"control character in a string",
       npy_file("{'descr': '<f\x01"
                "8', " +
                    tail,
                d),
       "at byte 13 (file offset 23): control character byte 0x01 in a string"},
      {"tab in a string", npy_file("{'descr': '<f8\t', " + tail, d),
       "control character byte 0x09 in a string"},
      {"unquoted key", npy_file("{descr: '<f8', " + tail, d),
       "at byte 1 (file offset 11): expected a quoted key or '}', got 'd'"},
      {"missing colon", npy_file("{'descr' '<f8', " + tail, d),
       "expected ':' after the key 'descr', got '''"},
      {"missing comma", npy_file("{'descr': '<f8' " + tail, d),
       "expected ',' or '}' after the value of 'descr', got '''"},
      {"two commas", npy_file("{'descr': '<f8',, " + tail, d),
       "expected a quoted key or '}', got ','"},
      {"a comment", npy_file("{'descr': '<f8', # the dtype\n" + tail, d),
       "expected a quoted key or '}', got '#'"},
      {"no closing brace", npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)", d),
       "expected ',' or '}' after the value of 'shape', got the end of the header"},
      {"text after the dict", npy_file(dict("<f8", "(2, 3)") + " extra\n", d),
       "at byte 60 (file offset 70): unexpected 'e' after the dict's closing '}'"},
      {"two dicts", npy_file(dict("<f8", "(2, 3)") + dict("<f8", "(2, 3)"), d),
       "unexpected '{' after the dict's closing '}'"},
      {"vertical tab (not Python whitespace)", npy_file("{'descr': '<f8',\v" + tail, d),
       "expected a quoted key or '}', got byte 0x0b"},
  });
}

TEST_CASE("npy: wrong, missing, duplicate and extra keys are refused", "[npy]") {
  const std::string d = f8_2x3_data;
  check_all({
      {"duplicate shape",
       npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), 'shape': (6,), }", d),
       "at byte 58 (file offset 68): duplicate key 'shape'"},
      {"duplicate descr with the same value",
       npy_file("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)}", d),
       "duplicate key 'descr'"},
      {"no descr", npy_file("{'fortran_order': False, 'shape': (2, 3), }", d),
       "malformed .npy header: no key 'descr'"},
      {"no fortran_order", npy_file("{'descr': '<f8', 'shape': (2, 3), }", d),
       "no key 'fortran_order'"},
      {"no shape", npy_file("{'descr': '<f8', 'fortran_order': False, }", d), "no key 'shape'"},
      {"empty dict", npy_file("{}", d), "no key 'descr'"},
      {"extra key",
       npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}", d),
       "unexpected key 'extra'"},
      {"'shape' only inside a string value",
       npy_file("{'descr': \"'shape': (2, 3)\", 'fortran_order': False}", d), "no key 'shape'"},
      {"'shape' inside the value of another key",
       npy_file("{'descr': '<f8', 'fortran_order': False, 'note': \"'shape': (6,)\"}", d),
       "unexpected key 'note'"},
      {"key in another case",
       npy_file("{'descr': '<f8', 'fortran_order': False, 'Shape': (6,)}", d),
       "unexpected key 'Shape'"},
  });
}

TEST_CASE("npy: descr and fortran_order values are checked", "[npy]") {
  const std::string d = f8_2x3_data;
  const auto with_descr = [&](const std::string& v) {
    return npy_file("{'descr': " + v + ", 'fortran_order': False, 'shape': (2, 3), }", d);
  };
  const auto with_fortran = [&](const std::string& v) {
    return npy_file("{'descr': '<f8', 'fortran_order': " + v + ", 'shape': (2, 3), }", d);
  };
  check_all({
      {"structured descr", with_descr("[('a', '<f4'), ('b', '<i8')]"),
       "at byte 10 (file offset 20): structured dtypes are not supported"},
      {"subarray descr", with_descr("('<f4', (2,))"), "subarray dtypes are not supported"},
      {"nested dict as descr", with_descr("{'a': 1}"),
       "descr must be a quoted dtype string such as '<f4', got a dict"},
      {"unquoted descr", with_descr("f8"),
       "descr must be a quoted dtype string such as '<f4', got 'f8'"},
      {"bytes literal descr", with_descr("b'<f8'"), "descr must be a quoted dtype string"},
      {"int16", with_descr("'<i2'"),
       "unsupported dtype '<i2' (expected <f4, <f8, <f2, <u2 or <i8)"},
      {"empty descr", with_descr("''"), "unsupported dtype ''"},
      {"dtype name instead of descr", with_descr("'float64'"), "unsupported dtype 'float64'"},
      {"big-endian float64", with_descr("'>f8'"), "big-endian dtype '>f8' is not supported"},
      {"fortran_order 0", with_fortran("0"), "fortran_order must be True or False, got '0'"},
      {"fortran_order a string", with_fortran("'False'"),
       "fortran_order must be True or False, got a string"},
      {"fortran_order lower case", with_fortran("false"),
       "fortran_order must be True or False, got 'false'"},
      {"fortran_order None", with_fortran("None"), "got 'None'"},
      {"fortran_order Falsey", with_fortran("Falsey"), "got 'Falsey'"},
      {"fortran_order missing", with_fortran(""), "fortran_order must be True or False, got ','"},
      {"Fortran order", with_fortran("True"), "Fortran-ordered arrays are not supported"},
  });
}

TEST_CASE("npy: malformed shapes are refused", "[npy]") {
  const std::string d = f8_2x3_data;
  const auto with_shape = [&](const std::string& v) {
    return npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': " + v + ", }", d);
  };
  std::string dims65 = "(";
  for (int i = 0; i < 65; ++i)
    dims65 += "1, ";
  check_all({
      {"(2 4)", with_shape("(2 4)"),
       "at byte 53 (file offset 63): expected ',' or ')' after a dimension of the shape, got '4'"},
      {"(2,,4)", with_shape("(2,,4)"),
       "at byte 53 (file offset 63): expected a non-negative integer dimension or ')' in the "
       "shape, got ','"},
      {"(,)", with_shape("(,)"), "expected a non-negative integer dimension or ')'"},
      {"(5) is an int", with_shape("(6)"),
       "at byte 50 (file offset 60): the shape (6) is an int, not a tuple (a 1-d shape is (6,))"},
      {"bare int", with_shape("6"), "shape must be a tuple of integers such as (2, 3), got '6'"},
      {"a list", with_shape("[2, 3]"),
       "shape must be a tuple of integers such as (2, 3), got a list"},
      {"a string", with_shape("'(2, 3)'"),
       "shape must be a tuple of integers such as (2, 3), got a string"},
      {"negative dimension", with_shape("(2, -3)"), "negative dimension -3 in the shape"},
      {"float dimension", with_shape("(2.0, 3)"), "the dimension '2.0' is not a decimal integer"},
      {"hex dimension", with_shape("(0x2, 3)"), "the dimension '0x2' is not a decimal integer"},
      {"underscore dimension", with_shape("(1_0,)"),
       "the dimension '1_0' is not a decimal integer"},
      {"leading zero", with_shape("(02, 3)"), "the dimension 02 has a leading zero"},
      {"plus sign", with_shape("(+2, 3)"),
       "expected a non-negative integer dimension or ')' in "
       "the shape, got '+'"},
      {"nested tuple", with_shape("((2, 3),)"), "got a nested tuple"},
      {"string dimension", with_shape("('2', 3)"), "got a string"},
      {"bool dimension", with_shape("(True, 3)"), "got 'True'"},
      {"unterminated tuple", with_shape("(2, 3"),
       "expected a non-negative integer dimension or ')' in the shape, got '}'"},
      {"L suffix in a 3.0 header",
       npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 3L), }", d, 3),
       "the dimension '2L' is not a decimal integer"},
      {"dimension beyond int64", with_shape("(99999999999999999999,)"),
       "the dimension 99999999999999999999 does not fit in int64"},
      {"65 dimensions", with_shape(dims65 + ")"), "the shape has more than 64 dimensions"},
      {"product overflows int64", with_shape("(4294967296, 4294967296)"),
       "the .npy shape (4294967296, 4294967296) is too large: 4294967296 * 4294967296 overflows "
       "int64"},
      {"bytes overflow int64", with_shape("(2305843009213693952, 2)"),
       "is too large in bytes: 4611686018427387904 * 8 overflows int64"},
      {"zero extent beside overflowing ones", with_shape("(0, 4611686018427387904, 4)"),
       "the .npy shape (0, 4611686018427387904, 4) is too large"},
  });
}

TEST_CASE("npy: data shorter than the shape needs is refused before allocating", "[npy]") {
  const std::string h = dict("<f8", "(2, 3)");
  check_all({
      {"8 bytes short", npy_file(h, zeros(40)),
       "truncated .npy data: the shape (2, 3) of <f8 needs 48 bytes of data, the file has 40"},
      {"no data", npy_file(h), "needs 48 bytes of data, the file has 0"},
      {"1-d float32", npy_file(dict("<f4", "(3,)"), zeros(11)), "needs 12 bytes of data"},
      {"0-d int64", npy_file(dict("<i8", "()"), zeros(7)), "the shape () of <i8 needs 8 bytes"},
      // 8e18 bytes: fits int64, so only the file's size refuses it, without allocating.
      {"10^9 x 10^9", npy_file(dict("<f8", "(1000000000, 1000000000)"), zeros(64)),
       "needs 8000000000000000000 bytes of data, the file has 64"},
  });
}

TEST_CASE("npy: arrays NumPy writes in unsupported dtypes and orders are refused", "[npy]") {
  struct Case {
    const char* name;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {"bad_big_endian", "big-endian dtype '>f8' is not supported"},
           {"bad_fortran", "Fortran-ordered arrays are not supported"},
           {"bad_structured", "structured dtypes are not supported"},
           {"bad_i4", "unsupported dtype '<i4'"},
           {"bad_u1", "unsupported dtype '|u1'"},
           {"bad_bool", "unsupported dtype '|b1'"},
           {"bad_complex", "unsupported dtype '<c8'"},
           {"bad_unicode", "unsupported dtype '<U2'"},
       }) {
    INFO(c.name);
    const std::string file = reference(c.name);
    CHECK_THROWS_AS(read_npy(file), posenc::error);
    CHECK_THROWS_WITH(read_npy(file), Contains(file) && Contains(c.message));
  }
}

TEST_CASE("npy: inputs that are not regular files are refused without opening them", "[npy]") {
  const TempDir dir;
  const std::string sub = (dir.path / "a_directory.npy").string();
  fs::create_directory(sub);
  CHECK_THROWS_AS(read_npy(sub), posenc::error);
  CHECK_THROWS_WITH(read_npy(sub), Contains(sub + ": is a directory"));

  // A FIFO without a writer: open() would block for ever; the reader must not open it.
  const std::string fifo = (dir.path / "fifo.npy").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(read_npy(fifo), Contains(fifo + ": is not a regular file"));

  CHECK_THROWS_WITH(read_npy("/dev/null"), Contains("/dev/null: is not a regular file"));

  const std::string missing = (dir.path / "missing.npy").string();
  CHECK_THROWS_WITH(read_npy(missing),
                    Contains(missing + ": cannot open (No such file or directory)"));
  const std::string file = dir.write("file.npy", npy_file(dict("<f8", "()"), zeros(8)));
  CHECK_THROWS_WITH(read_npy(file + "/x.npy"), Contains(": cannot open (Not a directory)"));
  // A symbolic link to a regular file is read.
  const std::string link = (dir.path / "link.npy").string();
  fs::create_symlink(file, link);
  CHECK(read_npy(link).shape.empty());
}

TEST_CASE("npy: write_npy reports the system's reason for a failed open or write", "[npy]") {
  const TempDir dir;
  const double v[4] = {1, 2, 3, 4};
  const std::string nodir = (dir.path / "no" / "such.npy").string();
  CHECK_THROWS_AS(write_npy(nodir, "<f8", {4}, v), posenc::error);
  CHECK_THROWS_WITH(write_npy(nodir, "<f8", {4}, v),
                    Contains(nodir + ": cannot open for writing (No such file or directory)"));
  CHECK_THROWS_WITH(write_npy(dir.path.string(), "<f8", {4}, v),
                    Contains(": cannot open for writing (Is a directory)"));
  // /dev/full accepts the open and fails every write with ENOSPC.
  if (fs::exists("/dev/full"))
    CHECK_THROWS_WITH(write_npy("/dev/full", "<f8", {4}, v),
                      Contains("/dev/full: write failed (No space left on device)"));
  CHECK_THROWS_WITH(write_npy((dir.path / "x.npy").string(), "<i4", {4}, v),
                    Contains("write_npy: unsupported dtype <i4"));
  CHECK_THROWS_WITH(write_npy((dir.path / "x.npy").string(), "<f8", {2, -2}, v),
                    Contains("write_npy: negative extent -2"));
}
