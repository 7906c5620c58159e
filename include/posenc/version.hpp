// posenc's version. GENERATED from include/posenc/version.hpp.in by CMake (configure_file) with
// the version of project(posenc VERSION ...) in CMakeLists.txt, the one place it is set. The copy
// in include/posenc/ serves builds that only put include/ on the path; ctest's
// version_header_in_sync fails when it differs from the configured one (copy it over then:
// cp build/include/posenc/version.hpp include/posenc/).
#pragma once

/// posenc's major version (0).
#define POSENC_VERSION_MAJOR 0
/// posenc's minor version (1).
#define POSENC_VERSION_MINOR 1
/// posenc's patch version (0).
#define POSENC_VERSION_PATCH 0
/// The version as one number for preprocessor comparisons: major * 10000 + minor * 100 + patch
/// (0.1.0 is 100).
#define POSENC_VERSION \
  (POSENC_VERSION_MAJOR * 10000 + POSENC_VERSION_MINOR * 100 + POSENC_VERSION_PATCH)
/// The version as a string, "major.minor.patch".
#define POSENC_VERSION_STRING "0.1.0"
