// libFuzzer target: the .safetensors reader (posenc/safetensors.hpp) on arbitrary bytes.
//
// Each input is written to a file and opened with safetensors::File. A refusal must be a
// posenc::error whose message starts with the file's path and has no control characters; any
// other exception escapes, and libFuzzer reports it. An accepted file must be consistent: every
// tensor's bytes inside the data section, the tensors tiling it exactly, find() and info()
// agreeing with tensors(). Every tensor is then read as float and as double (a matrix, a vector,
// transposed), which may again only throw posenc::error; a missing name's error lists close
// names. The same bytes are also opened as a model.safetensors.index.json beside a fixed valid
// shard (safetensors::Checkpoint), and the checkpoint's tensors read. ASan and UBSan report memory
// and arithmetic errors on the way.
#include <posenc/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

#include "scratch_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace st = posenc::safetensors;

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_safetensors: %s\n", what.c_str());
  std::abort();
}

void write(const std::string& file, const char* data, std::size_t size) {
  std::FILE* fp = std::fopen(file.c_str(), "wb");
  if (!fp || (size > 0 && std::fwrite(data, 1, size, fp) != size) || std::fclose(fp) != 0)
    finding("cannot write " + file);
}

/// The private directory of the inputs (scratch_dir.hpp), with the shard an index may name.
const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::error_code ec;
    const fs::path base =
        fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
    const std::string d = posenc_fuzz::make_scratch_dir(base, "posenc_fuzz_safetensors");
    if (d.empty()) finding("cannot create a temporary directory in " + base.string());
    // The shard an index input may name: "w" F32 [2, 2] and "b" BF16 [2].
    const std::string header = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                               R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]}})";
    std::string bytes;
    for (int i = 0; i < 8; ++i)
      bytes += static_cast<char>((header.size() >> (8 * i)) & 0xff);
    bytes += header;
    bytes += std::string("\0\0\x80\x3f\0\0\0\x40\0\0\x40\x40\0\0\x80\x40\x80\x3f\0\x40", 20);
    write(d + "/shard.safetensors", bytes.data(), bytes.size());
    return d;
  }();
  return dir;
}

/// The message of a posenc::error must start with `prefix` and be free of control characters.
void check_message(const posenc::error& e, const std::string& prefix) {
  const std::string msg = e.what();
  if (msg.compare(0, prefix.size(), prefix) != 0)
    finding("the message does not start with '" + prefix + "': " + msg);
  for (char c : msg)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      finding("the message has a control character: " + msg);
}

/// Runs f; a posenc::error is checked and swallowed.
template <class F>
void attempt(const std::string& prefix, F&& f) {
  try {
    f();
  } catch (const posenc::error& e) {
    check_message(e, prefix);
  }
}

template <class Source>
void read_all(const Source& src, const st::TensorInfo& t, const std::string& prefix) {
  volatile double sink = 0;
  const auto rank = t.shape.size();
  attempt(prefix, [&] { sink = sink + src.template matrix<float>(t.name).sum(); });
  attempt(prefix, [&] { sink = sink + src.template matrix<double>(t.name).sum(); });
  attempt(prefix, [&] { sink = sink + src.template vector<float>(t.name).sum(); });
  attempt(prefix, [&] { sink = sink + src.template vector<double>(t.name).sum(); });
  if (rank == 2) {
    attempt(prefix, [&] {
      sink = sink + src.template transposed<float>(t.name, t.shape[0], t.shape[1]).sum();
    });
    attempt(prefix, [&] {
      sink = sink + src.template matrix<double>(t.name, t.shape[0], t.shape[1]).sum();
    });
  }
  if (rank == 1)
    attempt(prefix, [&] { sink = sink + src.template vector<float>(t.name, 1).sum(); });
}

void check_file(const st::File& f, std::uint64_t file_size) {
  const std::string prefix = f.path() + ": ";
  std::uint64_t covered = 0;
  for (const auto& t : f.tensors()) {
    if (t.begin > t.end) finding("begin > end accepted");
    covered += t.end - t.begin;
    if (f.find(t.name) != &t || &f.info(t.name) != &t) finding("find/info disagree");
    if (t.name.empty()) finding("an empty name accepted");
    if (t.dtype != posenc::from_name<st::Dtype>(posenc::name_of(t.dtype), "dtype"))
      finding("dtype table");
    const unsigned char* p = f.bytes(t);
    (void)p;
    read_all(f, t, prefix);
  }
  if (covered > file_size) finding("the tensors cover more bytes than the file has");
  attempt(prefix, [&] { (void)f.info("model.layers.0.self_attn.q_proj.weight"); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const char* bytes = reinterpret_cast<const char*>(data);
  const std::string& dir = scratch_dir();
  const std::string file = dir + "/input.safetensors";
  write(file, bytes, size);
  try {
    const st::File f(file);
    check_file(f, size);
  } catch (const posenc::error& e) {
    check_message(e, file + ": ");
  }

  // The same bytes as an index beside shard.safetensors.
  if (size > 0 && bytes[0] == '{') {
    const std::string index = dir + "/model.safetensors.index.json";
    write(index, bytes, size);
    try {
      const st::Checkpoint c(index);
      for (const auto& name : c.names()) {
        if (!c.contains(name)) finding("Checkpoint::contains disagrees with names()");
        const st::TensorInfo& t = c.info(name);
        read_all(c, t, c.file(name).path() + ": ");
      }
      attempt(index + ": ", [&] { (void)c.info("q_proj.weight"); });
    } catch (const posenc::error& e) {
      // Errors name the index, or the shard they are about (inside the scratch directory).
      check_message(e, dir + "/");
    }
  }
  return 0;
}
