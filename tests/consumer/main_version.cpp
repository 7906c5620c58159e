// A downstream program that checks the version macros against the version its build system
// found (POSENC_CONSUMER_EXPECT_VERSION: pkg-config --modversion, or find_package's posenc_VERSION)
// and, with POSENC_CONSUMER_HF, that nlohmann/json and posenc's Hugging Face headers compile
// with the flags it was given (pkg-config --cflags posenc-hf, or posenc::hf).
#include <posenc/posenc.hpp>

#include <cstdio>
#include <cstring>

#if POSENC_CONSUMER_HF
#include <nlohmann/json.hpp>
#if __has_include(<posenc/hf.hpp>)
#include <posenc/hf.hpp>
#endif
#if __has_include(<posenc/safetensors.hpp>)
#include <posenc/safetensors.hpp>
#endif
#endif

static_assert(POSENC_VERSION ==
                  POSENC_VERSION_MAJOR * 10000 + POSENC_VERSION_MINOR * 100 + POSENC_VERSION_PATCH,
              "POSENC_VERSION is major * 10000 + minor * 100 + patch");

int main() {
  if (std::strcmp(POSENC_VERSION_STRING, POSENC_CONSUMER_EXPECT_VERSION) != 0) {
    std::fprintf(stderr, "posenc/version.hpp says %s, the build system found %s\n",
                 POSENC_VERSION_STRING, POSENC_CONSUMER_EXPECT_VERSION);
    return 1;
  }
  posenc::SinusoidalEncoding<float> enc(16);
  (void)enc;
#if POSENC_CONSUMER_HF
  const nlohmann::json j = nlohmann::json::parse(R"({"rope_theta": 10000.0})");
  if (j.at("rope_theta").get<double>() != 10000.0) return 1;
#endif
  std::printf("posenc %s\n", POSENC_VERSION_STRING);
  return 0;
}
