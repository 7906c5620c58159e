# Checks that README.md shows examples/readme_example.cpp verbatim: the first ```cpp block after
# the line containing `<!-- readme_example.cpp -->` must equal the file (trailing whitespace at
# the end of either is ignored). Run with cmake -DREADME=... -DEXAMPLE=... -P check_readme.cmake
cmake_minimum_required(VERSION 3.21)

set(marker "<!-- readme_example.cpp -->")
foreach(f README EXAMPLE)
  if(NOT EXISTS "${${f}}")
    message(FATAL_ERROR "missing ${${f}}")
  endif()
endforeach()
file(READ "${README}" readme)
file(READ "${EXAMPLE}" example)
string(REPLACE "\r" "" readme "${readme}")
string(REPLACE "\r" "" example "${example}")

string(FIND "${readme}" "${marker}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "${README} has no line containing '${marker}'")
endif()
string(SUBSTRING "${readme}" ${pos} -1 rest)

# The opening fence: a line starting with ```cpp (after the marker's own line).
string(FIND "${rest}" "\n```cpp" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "no ```cpp block after '${marker}' in ${README}")
endif()
math(EXPR pos "${pos} + 1")
string(SUBSTRING "${rest}" ${pos} -1 rest)
string(FIND "${rest}" "\n" pos)
math(EXPR pos "${pos} + 1")
string(SUBSTRING "${rest}" ${pos} -1 rest)

# The closing fence: the next line starting with ```.
if(rest MATCHES "^```")
  set(block "")
else()
  string(FIND "${rest}" "\n```" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "unterminated ```cpp block after '${marker}' in ${README}")
  endif()
  string(SUBSTRING "${rest}" 0 ${pos} block)
endif()

string(REGEX REPLACE "[ \t\n]+$" "" block "${block}")
string(REGEX REPLACE "[ \t\n]+$" "" example "${example}")
if(NOT block STREQUAL example)
  if(NOT OUT_DIR)
    set(OUT_DIR "${CMAKE_CURRENT_BINARY_DIR}")
  endif()
  file(WRITE "${OUT_DIR}/readme_block.cpp" "${block}\n")
  file(WRITE "${OUT_DIR}/readme_example.cpp" "${example}\n")
  execute_process(COMMAND diff -u "${OUT_DIR}/readme_example.cpp" "${OUT_DIR}/readme_block.cpp")
  message(FATAL_ERROR "the ```cpp block after '${marker}' in ${README} differs from ${EXAMPLE} "
                      "(diff above: - example file, + README block)")
endif()
message(STATUS "README block matches ${EXAMPLE}")
