// The .safetensors reader (posenc/safetensors.hpp): files written by
// tests/reference/write_safetensors.py (tests/reference/data/safetensors) decode exactly to the
// values Python computed from the same bits (expected.json), sharded and directory checkpoints
// route to their shards, and every malformed file, header field and index is refused with a
// message naming the file and the problem.
#include <posenc/safetensors.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

namespace {

namespace fs = std::filesystem;
namespace st = posenc::safetensors;
using Catch::Contains;
using posenc::Matrix;
using posenc::Vector;

std::string dir() {
  return std::string(POSENC_TEST_DATA_DIR) + "/safetensors";
}
std::string path(const std::string& name) {
  return dir() + "/" + name;
}
std::string bad(const std::string& name) {
  return path("bad/" + name + ".safetensors");
}
std::string bad_index(const std::string& name) {
  return path("bad_index/" + name + ".index.json");
}

const nlohmann::json& expected() {
  static const nlohmann::json j = [] {
    std::ifstream in(path("expected.json"));
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
  }();
  return j;
}

/// The expected values of a tensor ("values": float64, "as_float": rounded to float32).
std::vector<double> values(const std::string& file, const std::string& tensor,
                           const char* which = "values") {
  std::vector<double> v;
  for (const auto& s : expected().at(file).at(tensor).at(which))
    v.push_back(std::strtod(s.get<std::string>().c_str(), nullptr));
  return v;
}

/// Bitwise-equal as doubles, except that any NaN equals any NaN (and +0 differs from -0).
bool same(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}

template <class M>
void check_values(const M& m, const std::vector<double>& want) {
  REQUIRE(static_cast<std::size_t>(m.size()) == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i << ": got " << m.data()[i] << ", expected " << want[i]);
    CHECK(same(static_cast<double>(m.data()[i]), want[i]));
  }
}

/// A private directory, removed at the end of the test case.
struct TempDir {
  fs::path p;
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "posenc_test_st.XXXXXX").string();
    REQUIRE(::mkdtemp(&templ[0]) != nullptr);
    p = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(p, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string file = (p / name).string();
    std::ofstream out(file, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
    return file;
  }
};

std::string le64(std::uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; ++i)
    s += static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

/// Opening `file` throws posenc::error containing the file's path and every fragment.
void require_refused(const std::string& file, const std::vector<std::string>& fragments) {
  INFO("file: " << file);
  try {
    st::File f(file);
    FAIL("no posenc::error");
  } catch (const posenc::error& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    CHECK(msg.rfind(file + ": ", 0) == 0);
    for (const auto& frag : fragments) {
      INFO("expected fragment: " << frag);
      CHECK(msg.find(frag) != std::string::npos);
    }
    bool control = false;
    for (char c : msg)
      control = control || static_cast<unsigned char>(c) < 0x20;
    CHECK_FALSE(control);
  }
}

void require_index_refused(const std::string& file, const std::vector<std::string>& fragments) {
  INFO("index: " << file);
  try {
    st::Checkpoint c(file);
    FAIL("no posenc::error");
  } catch (const posenc::error& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    for (const auto& frag : fragments) {
      INFO("expected fragment: " << frag);
      CHECK(msg.find(frag) != std::string::npos);
    }
  }
}

}  // namespace

TEST_CASE("safetensors: the header's tensors, in header order, with dtypes and metadata",
          "[safetensors]") {
  st::File f(path("mixed.safetensors"));
  CHECK(f.path() == path("mixed.safetensors"));
  std::vector<std::string> names;
  for (const auto& t : f.tensors())
    names.push_back(t.name);
  CHECK(names ==
        expected().at("mixed.safetensors").at("__order__").get<std::vector<std::string>>());
  CHECK(f.names() == names);
  CHECK(f.metadata().size() == 2);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("note") == "posenc test");

  const st::TensorInfo& m = f.info("z.f32_matrix");
  CHECK(m.dtype == st::Dtype::F32);
  CHECK(m.dtype_name == "F32");
  CHECK(m.shape == std::vector<std::int64_t>{2, 3});
  CHECK(m.end - m.begin == 24);
  CHECK(m.elements() == 6);
  CHECK(f.info("f16_vector").dtype == st::Dtype::F16);
  CHECK(f.info("bf16_matrix").dtype == st::Dtype::BF16);
  CHECK(f.info("f64_vector").dtype == st::Dtype::F64);
  CHECK(f.info("i64_vector").dtype == st::Dtype::I64);
  CHECK(f.info("u8_bytes").dtype == st::Dtype::U8);
  CHECK(f.info("scalar").shape.empty());
  CHECK(f.info("scalar").elements() == 1);
  CHECK(f.info("empty").elements() == 0);
  CHECK(f.find("nope") == nullptr);
  CHECK(f.find("f16_vector") == &f.info("f16_vector"));
  CHECK(posenc::name_of(st::Dtype::BF16) == "BF16");
  CHECK(posenc::from_name<st::Dtype>("I8", "dtype") == st::Dtype::I8);

  // Raw bytes: U8 [0, 1, 254, 255].
  const unsigned char* u8 = f.bytes(f.info("u8_bytes"));
  CHECK((u8[0] == 0 && u8[1] == 1 && u8[2] == 254 && u8[3] == 255));

  // Movable: the moved-to File serves the same tensors.
  st::File g(std::move(f));
  CHECK(g.info("z.f32_matrix").shape == std::vector<std::int64_t>{2, 3});
  st::File h(path("single/model.safetensors"));
  h = std::move(g);
  CHECK(h.matrix<float>("z.f32_matrix", 2, 3)(1, 1) == 3.4028234663852886e38f);
}

TEST_CASE("safetensors: F32, F16, BF16 and F64 decode exactly to float and double",
          "[safetensors]") {
  const st::File f(path("mixed.safetensors"));
  const std::string file = "mixed.safetensors";
  for (const char* name : {"z.f32_matrix", "bf16_matrix", "linear.weight"}) {
    INFO("tensor " << name);
    const Matrix<double> d = f.matrix<double>(name);
    const Matrix<float> s = f.matrix<float>(name);
    const auto& shape = expected().at(file).at(name).at("shape");
    CHECK(d.rows() == shape[0].get<int>());
    CHECK(d.cols() == shape[1].get<int>());
    check_values(d, values(file, name));
    check_values(s, values(file, name, "as_float"));
  }
  for (const char* name : {"f16_vector", "f64_vector"}) {
    INFO("tensor " << name);
    check_values(f.vector<double>(name), values(file, name));
    check_values(f.vector<float>(name), values(file, name, "as_float"));
  }
  // F16: the smallest subnormal 2^-24, the largest 1023 x 2^-24, 65504, infinities, -0, NaN.
  const Vector<float> h = f.vector<float>("f16_vector", 11);
  CHECK(h(0) == std::ldexp(1.0f, -24));
  CHECK(h(1) == std::ldexp(1023.0f, -24));
  CHECK(h(5) == 65504.0f);
  CHECK((std::isinf(h(6)) && h(6) > 0 && std::isinf(h(7)) && h(7) < 0));
  CHECK((h(8) == 0.0f && std::signbit(h(8))));
  CHECK(std::isnan(h(10)));
  // BF16 subnormal 2^-133 and its largest value.
  const Matrix<float> b = f.matrix<float>("bf16_matrix", 2, 3);
  CHECK(b(0, 2) == std::ldexp(1.0f, -133));
  CHECK(b(1, 0) == 3.3895313892515355e38f);
  // F64 to double is exact; to float rounds (-1e-300 to -0).
  const Vector<double> d = f.vector<double>("f64_vector", 4);
  CHECK(d(0) == 0.1);
  CHECK(f.vector<float>("f64_vector")(0) == 0.1f);
  CHECK(std::signbit(f.vector<float>("f64_vector")(1)));
  // Non-finite values come back as they are; 1e300 is beyond float.
  check_values(f.vector<double>("f64_huge"), values(file, "f64_huge"));
  REQUIRE_THROWS_WITH(f.vector<float>("f64_huge"),
                      Contains("mixed.safetensors: tensor 'f64_huge': element 1") &&
                          Contains("1e+300") && Contains("beyond the range of float"));
  // Empty and transposed.
  const Matrix<float> e = f.matrix<float>("empty", 0, 4);
  CHECK((e.rows() == 0 && e.cols() == 4));
  const Matrix<double> w = f.transposed<double>("linear.weight", 3, 2);
  REQUIRE((w.rows() == 2 && w.cols() == 3));
  CHECK(w(0, 0) == 1.0);
  CHECK(w(1, 0) == 2.0);
  CHECK(w(0, 2) == 5.0);
  CHECK(w(1, 2) == 6.0);
}

TEST_CASE("safetensors: wrong shape, rank, dtype or name is an error naming them",
          "[safetensors]") {
  const std::string p = path("mixed.safetensors");
  const st::File f(p);
  REQUIRE_THROWS_WITH(f.matrix<float>("z.f32_matrix", 3, 2),
                      Contains(p + ": tensor 'z.f32_matrix' has shape [2, 3], expected [3, 2]"));
  REQUIRE_THROWS_WITH(f.transposed<float>("linear.weight", 2, 3),
                      Contains("tensor 'linear.weight' has shape [3, 2], expected [2, 3]"));
  REQUIRE_THROWS_WITH(f.vector<float>("f16_vector", 10),
                      Contains("tensor 'f16_vector' has shape [11], expected [10]"));
  REQUIRE_THROWS_WITH(f.matrix<float>("f16_vector"),
                      Contains("has shape [11] (1-D), expected a 2-D matrix"));
  REQUIRE_THROWS_WITH(f.vector<double>("z.f32_matrix"),
                      Contains("has shape [2, 3] (2-D), expected a 1-D vector"));
  REQUIRE_THROWS_WITH(f.vector<double>("scalar"), Contains("has shape [] (0-D)"));
  REQUIRE_THROWS_WITH(
      f.vector<float>("i64_vector"),
      Contains(p + ": tensor 'i64_vector' has dtype I64") && Contains("can be read as float"));
  REQUIRE_THROWS_WITH(f.vector<double>("u8_bytes"),
                      Contains("has dtype U8") && Contains("read as double"));
  REQUIRE_THROWS_WITH(f.info("f32_matrix"), Contains(p + ": no tensor 'f32_matrix'") &&
                                                Contains("close names: 'z.f32_matrix'"));
  REQUIRE_THROWS_WITH(f.matrix<float>("bf16_matirx"),
                      Contains("no tensor 'bf16_matirx'; close names: 'bf16_matrix'"));
  REQUIRE_THROWS_WITH(f.info("completely_unrelated_name_xyz"),
                      Contains("none of the 10 tensors has a close name"));
}

TEST_CASE("safetensors: a sharded checkpoint routes each tensor to its shard", "[safetensors]") {
  const std::string key = "sharded";
  for (const std::string& where : {path("sharded/model.safetensors.index.json"), path("sharded")}) {
    INFO("checkpoint " << where);
    const st::Checkpoint c(where);
    CHECK(c.files().size() == 2);
    CHECK(c.names() == expected().at(key).at("__order__").get<std::vector<std::string>>());
    CHECK(c.contains("lm_head.weight"));
    CHECK_FALSE(c.contains("lm_head"));
    CHECK(c.info("model.layers.0.self_attn.k_proj.weight").dtype == st::Dtype::F16);
    CHECK(c.file("lm_head.weight").path() ==
          (fs::path(path("sharded")) / "model-00002-of-00002.safetensors").string());
    check_values(c.matrix<double>("model.embed_tokens.weight", 4, 2),
                 values(key, "model.embed_tokens.weight"));
    check_values(c.matrix<float>("model.layers.0.self_attn.q_proj.weight"),
                 values(key, "model.layers.0.self_attn.q_proj.weight", "as_float"));
    check_values(c.matrix<double>("model.layers.0.self_attn.k_proj.weight", 2, 2),
                 values(key, "model.layers.0.self_attn.k_proj.weight"));
    const Matrix<float> head = c.transposed<float>("lm_head.weight", 2, 4);
    CHECK((head.rows() == 4 && head.cols() == 2 && head(3, 1) == 7.0f && head(1, 0) == 1.0f));
    REQUIRE_THROWS_WITH(c.matrix<float>("lm_head.weight", 4, 2),
                        Contains("model-00002-of-00002.safetensors: tensor 'lm_head.weight' has "
                                 "shape [2, 4], expected [4, 2]"));
    REQUIRE_THROWS_WITH(
        c.info("layers.0.self_attn.q_proj.weight"),
        Contains(where + ": no tensor 'layers.0.self_attn.q_proj.weight' in the checkpoint "
                         "(2 shards); close names: 'model.layers.0.self_attn.q_proj.weight'"));
    REQUIRE_THROWS_WITH(c.vector<float>("q_proj.weight"),
                        Contains("close names: 'model.layers.0.self_attn.q_proj.weight'"));
  }
  // A single file and a directory holding model.safetensors.
  for (const std::string& where : {path("single"), path("single/model.safetensors")}) {
    const st::Checkpoint c(where);
    CHECK(c.names() == std::vector<std::string>{"w"});
    check_values(c.vector<double>("w", 2), values("single", "w"));
    REQUIRE_THROWS_WITH(c.info("v"), Contains("no tensor 'v' in the checkpoint; close names: 'w'"));
  }
  TempDir tmp;
  REQUIRE_THROWS_WITH(st::Checkpoint(tmp.p.string()),
                      Contains(tmp.p.string() + ": the directory has neither model.safetensors "
                                                "nor model.safetensors.index.json"));
}

TEST_CASE("safetensors: malformed preambles and headers are refused", "[safetensors]") {
  require_refused(bad("empty"), {"not a safetensors file: it has 0 bytes, fewer than the 8"});
  require_refused(bad("short"), {"it has 5 bytes"});
  require_refused(bad("header_over_limit"),
                  {"header length 100000001 is larger than safetensors' limit of 100000000"});
  require_refused(bad("header_beyond_file"),
                  {"truncated: the header length is 1000 bytes but the file has 8 bytes after"});
  require_refused(bad("not_json"), {"the header is not valid JSON: parse error"});
  require_refused(bad("trailing_garbage"), {"the header is not valid JSON"});
  require_refused(bad("invalid_utf8"), {"not valid JSON", "UTF-8"});
  require_refused(bad("not_object"), {"the header is an array, not a JSON object of tensors"});
  require_refused(bad("deep"), {"nests JSON arrays and objects deeper than 64 levels"});
  require_refused(bad("duplicate_name"), {"the header has the key 'a' twice"});
  require_refused(bad("duplicate_field"), {"the key 'dtype' twice in one object (in 'a')"});
  require_refused(bad("empty_name"), {"a tensor with an empty name"});
  require_refused(bad("entry_not_object"), {"tensor 'a': the entry is an array, not an object"});
  require_refused(bad("metadata_not_object"), {"\"__metadata__\" is a string, not an object"});
  require_refused(bad("metadata_not_strings"),
                  {"\"__metadata__\" 'k' is an integer, not a string"});
  require_refused(bad("bad_name_bytes"), {"tensor 'a\\x0ab\\x01'"});
}

TEST_CASE("safetensors: malformed tensor entries are refused", "[safetensors]") {
  require_refused(bad("no_dtype"), {"tensor 'a': no \"dtype\""});
  require_refused(bad("no_shape"), {"tensor 'a': no \"shape\""});
  require_refused(bad("no_offsets"), {"tensor 'a': no \"data_offsets\""});
  require_refused(bad("dtype_not_string"), {"\"dtype\" is an integer, not a string"});
  require_refused(bad("unknown_dtype"), {"unknown dtype 'F128'", "BF16"});
  require_refused(bad("shape_not_array"), {"\"shape\" is an integer, not an array"});
  require_refused(bad("negative_dim"), {"tensor 'a': shape[0] = -1 is negative"});
  require_refused(bad("float_dim"), {"shape[0] = 1.0 is not an integer"});
  require_refused(bad("string_dim"), {"shape[0] is a string, not an integer"});
  require_refused(bad("dim_over_int64"), {"shape[0] = 9223372036854775808 does not fit in int64"});
  require_refused(bad("shape_overflow"),
                  {"the shape [4294967296, 4294967296] of F32 is too large", "overflows int64"});
  require_refused(bad("offsets_one"), {"\"data_offsets\" must be an array [begin, end], got [0]"});
  require_refused(bad("offsets_string"), {"must be an array [begin, end], got \"0,4\""});
  require_refused(bad("offsets_negative"), {"data_offsets[0] (begin) = -4 is negative"});
  require_refused(bad("offsets_float"), {"data_offsets[1] (end) = 4.0 is not an integer"});
  require_refused(bad("begin_after_end"), {"data_offsets [4, 0] has begin > end"});
  require_refused(bad("end_beyond_data"),
                  {"data_offsets [0, 400] end beyond the data section, which has 4 bytes"});
  require_refused(bad("offsets_huge"), {"[0, 18446744073709551615] end beyond the data section"});
  require_refused(bad("size_mismatch"),
                  {"data_offsets [0, 8] span 8 bytes, but the shape [3] of F32 needs 12"});
  require_refused(bad("sub_byte"), {"the shape [3] of F4 has 12 bits, not a whole number"});
}

TEST_CASE("safetensors: tensors must tile the data section (no overlap, hole or tail)",
          "[safetensors]") {
  require_refused(bad("overlap"), {"tensors 'a' (data_offsets [0, 8]) and 'b' (data_offsets "
                                   "[4, 12]) overlap"});
  require_refused(bad("hole"), {"bytes [4, 8) of the data section belong to no tensor (a hole "
                                "between 'a' and 'b'"});
  require_refused(bad("hole_at_start"), {"bytes [0, 4)", "a hole before 'a'"});
  require_refused(bad("trailing_bytes"),
                  {"bytes [4, 8) at the end of the data section belong to no tensor"});
}

TEST_CASE("safetensors: files that are not regular files, and the index's errors",
          "[safetensors]") {
  REQUIRE_THROWS_WITH(st::File(path("absent.safetensors")),
                      Contains(path("absent.safetensors") + ": cannot open ("));
  REQUIRE_THROWS_WITH(st::File(path("sharded")), Contains(path("sharded") + ": is a directory"));
  REQUIRE_THROWS_WITH(st::File("/dev/null"), Contains("/dev/null: is not a regular file"));

  require_index_refused(bad_index("no_weight_map"),
                        {bad_index("no_weight_map") + ": the index has no \"weight_map\""});
  require_index_refused(bad_index("weight_map_not_object"),
                        {"\"weight_map\" is an array, not an object"});
  require_index_refused(bad_index("value_not_string"),
                        {"\"weight_map\" 'w' is an integer, not a shard file name"});
  require_index_refused(bad_index("missing_shard"),
                        {"\"weight_map\" 'v': the shard 'absent.safetensors' does not exist"});
  require_index_refused(bad_index("absent_tensor"), {"\"weight_map\" puts tensor 'w2' in",
                                                     "shard.safetensors, which has no "
                                                     "tensor of that name",
                                                     "close names: 'w'"});
  require_index_refused(bad_index("shard_escapes"), {"is not a file name relative to the index"});
  require_index_refused(bad_index("shard_absolute"), {"'/etc/passwd' is not a file name relative"});
  require_index_refused(bad_index("not_json"), {"the index is not valid JSON"});
  require_index_refused(bad_index("duplicate"), {"the index has the key 'w' twice in one object"});
  // A shard that is itself malformed: its own error, naming the shard.
  TempDir tmp;
  tmp.write("broken.safetensors", "xx");
  const std::string index =
      tmp.write("model.safetensors.index.json", R"({"weight_map": {"w": "broken.safetensors"}})");
  require_index_refused(index, {(tmp.p / "broken.safetensors").string() + ": not a safetensors"});
  require_index_refused(tmp.write("ctl.index.json", R"({"weight_map": {"w": "a\u0001b"}})"),
                        {"the shard 'a\\x01b' has a control character in its name"});
}

TEST_CASE("safetensors: header lengths and offsets near 2^64 never wrap", "[safetensors]") {
  TempDir tmp;
  require_refused(tmp.write("max.safetensors", le64(~std::uint64_t{0}) + "{}"),
                  {"header length 18446744073709551615 is larger than safetensors' limit"});
  // The header padded with spaces, as the reference writer pads it, and no tensors at all.
  const st::File empty(tmp.write("none.safetensors", le64(8) + "{}      "));
  CHECK(empty.tensors().empty());
  REQUIRE_THROWS_WITH(empty.info("w"), Contains("no tensor 'w' (there are no tensors)"));
  const std::string h =
      R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[18446744073709551615,1]}})";
  require_refused(tmp.write("wrap.safetensors", le64(h.size()) + h + "xx"), {"has begin > end"});
  const std::string z =
      R"({"a":{"dtype":"F32","shape":[0,9223372036854775807,2],"data_offsets":[0,0]}})";
  require_refused(tmp.write("zero.safetensors", le64(z.size()) + z), {"is too large"});
}
