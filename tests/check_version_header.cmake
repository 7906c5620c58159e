# include/posenc/version.hpp (checked in, for builds that only put include/ on the path) must equal
# the one CMake configured from version.hpp.in with project(posenc VERSION ...).
#   cmake -DCHECKED_IN=... -DCONFIGURED=... -P check_version_header.cmake
file(READ "${CHECKED_IN}" checked_in)
file(READ "${CONFIGURED}" configured)
if(NOT checked_in STREQUAL configured)
  message(FATAL_ERROR "${CHECKED_IN} differs from ${CONFIGURED} (configured from version.hpp.in "
                      "with project()'s version): after changing either, copy the configured "
                      "one over the checked-in one")
endif()
message(STATUS "version.hpp in sync with project()'s version")
