// libFuzzer target: the .npy reader (tools/npy/npy.hpp) on arbitrary bytes.
//
// Each input is parsed in memory (parse_npy) and, written to a file, by read_npy; the two must
// agree. A refusal must be a posenc::error whose message names the file and is one line of
// printable ASCII; any other exception escapes, and libFuzzer reports it. An accepted array
// must be consistent (data size = element count x item size, every element readable) and must
// survive a round trip through the writer's header (npy_header_bytes), which must parse back to
// the same dtype and shape. ASan and UBSan report memory and arithmetic errors on the way.
#include <npy.hpp>

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

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_npy: %s\n", what.c_str());
  std::abort();
}

/// The file read_npy reads, in a private directory (scratch_dir.hpp).
const std::string& scratch_file() {
  static const std::string file = [] {
    std::error_code ec;
    const fs::path base =
        fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
    const std::string dir = posenc_fuzz::make_scratch_dir(base, "posenc_fuzz_npy");
    if (dir.empty()) finding("cannot create a temporary directory in " + base.string());
    return dir + "/input.npy";
  }();
  return file;
}

/// The outcome of one reader: the array, or the message with the file name replaced by "<file>".
struct Outcome {
  bool ok = false;
  posenc_npy::NpyArray array;
  std::string message;
};

template <class Read>
Outcome outcome(const std::string& name, Read&& read) {
  Outcome o;
  try {
    o.array = read();
    o.ok = true;
  } catch (const posenc::error& e) {
    o.message = e.what();
    if (o.message.compare(0, name.size() + 2, name + ": ") != 0)
      finding("the message does not start with the file name: " + o.message);
    for (char c : o.message)
      if (c < 0x20 || c > 0x7e) finding("the message is not printable ASCII: " + o.message);
    o.message.replace(0, name.size(), "<file>");
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using posenc_npy::NpyArray;
  const char* bytes = reinterpret_cast<const char*>(data);
  const std::string mem_name = "fuzz.npy";
  const Outcome mem =
      outcome(mem_name, [&] { return posenc_npy::parse_npy(bytes, size, mem_name); });

  const std::string& file = scratch_file();
  {
    std::FILE* fp = std::fopen(file.c_str(), "wb");
    if (!fp || (size > 0 && std::fwrite(bytes, 1, size, fp) != size) || std::fclose(fp) != 0)
      finding("cannot write " + file);
  }
  const Outcome disk = outcome(file, [&] { return posenc_npy::read_npy(file); });
  if (mem.ok != disk.ok || mem.message != disk.message)
    finding("parse_npy and read_npy disagree: '" + (mem.ok ? "accepted" : mem.message) + "' vs '" +
            (disk.ok ? "accepted" : disk.message) + "'");
  if (!mem.ok) return 0;

  const NpyArray& a = mem.array;
  if (disk.array.dtype != a.dtype || disk.array.shape != a.shape || disk.array.data != a.data)
    finding("parse_npy and read_npy read different arrays");
  if (a.dtype != "<f4" && a.dtype != "<f8" && a.dtype != "<f2" && a.dtype != "<u2" &&
      a.dtype != "<i8")
    finding("accepted dtype '" + a.dtype + "'");
  const std::int64_t n = a.size();
  if (n < 0 || a.data.size() != static_cast<std::size_t>(n) * a.item_size())
    finding("the data size does not match the shape");
  volatile double sink = 0;
  for (std::int64_t i = 0; i < n; ++i)
    sink = sink + a.as_double(i);
  if (a.dtype == "<i8" && n > 0) (void)a.as_int(n - 1);

  // The writer's header for the same array, followed by the data, parses back to it.
  const std::string again =
      posenc_npy::npy_header_bytes(a.dtype, a.shape) + std::string(a.data.begin(), a.data.end());
  const NpyArray b = posenc_npy::parse_npy(again.data(), again.size(), "again.npy");
  if (b.dtype != a.dtype || b.shape != a.shape || b.data != a.data)
    finding("the array does not survive npy_header_bytes and parse_npy");
  return 0;
}
