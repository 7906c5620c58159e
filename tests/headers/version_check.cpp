// The version macros (posenc/version.hpp, the checked-in copy that include/ on the path finds)
// against project(posenc VERSION ...) (POSENC_EXPECT_VERSION_*, from tests/CMakeLists.txt), and
// the inline ABI namespace (detail/config.hpp) against them: abi_v<major>_<minor>...
#include <posenc/detail/config.hpp>
#include <posenc/version.hpp>

#include <cstdio>
#include <string>

#define POSENC_CHECK_STR2(x) #x
#define POSENC_CHECK_STR(x) POSENC_CHECK_STR2(x)

static_assert(POSENC_VERSION_MAJOR == POSENC_EXPECT_VERSION_MAJOR, "major version drifted");
static_assert(POSENC_VERSION_MINOR == POSENC_EXPECT_VERSION_MINOR, "minor version drifted");
static_assert(POSENC_VERSION_PATCH == POSENC_EXPECT_VERSION_PATCH, "patch version drifted");
static_assert(POSENC_VERSION ==
                  POSENC_VERSION_MAJOR * 10000 + POSENC_VERSION_MINOR * 100 + POSENC_VERSION_PATCH,
              "POSENC_VERSION is major * 10000 + minor * 100 + patch");

int main() {
  int failures = 0;
  if (std::string(POSENC_VERSION_STRING) != POSENC_EXPECT_VERSION_STRING) {
    std::fprintf(stderr, "POSENC_VERSION_STRING is %s, project() says %s\n", POSENC_VERSION_STRING,
                 POSENC_EXPECT_VERSION_STRING);
    ++failures;
  }
  const std::string ns = POSENC_CHECK_STR(POSENC_ABI_NAMESPACE);
  const std::string want =
      "abi_v" + std::to_string(POSENC_VERSION_MAJOR) + "_" + std::to_string(POSENC_VERSION_MINOR);
  // Exactly the version part, or followed by a configuration tag (_omp, _bq.., _bk..).
  if (ns.compare(0, want.size(), want) != 0 ||
      (ns.size() > want.size() && ns[want.size()] != '_')) {
    std::fprintf(stderr, "the ABI namespace is %s, the version says %s\n", ns.c_str(),
                 want.c_str());
    ++failures;
  }
  std::printf("posenc %s, inline namespace posenc::%s\n", POSENC_VERSION_STRING, ns.c_str());
  return failures == 0 ? 0 : 1;
}
