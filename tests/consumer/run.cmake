# Driver for the consumer tests; run with cmake -P.
#   -DSTEP=install          -DPOSENC_BINARY_DIR=... -DPREFIX=... [-DCONFIG=...]
#   -DSTEP=find_package     -DPREFIX=...            -DWORK_DIR=... -DCONSUMER_DIR=...
#   -DSTEP=add_subdirectory -DPOSENC_SOURCE_DIR=... -DWORK_DIR=... -DCONSUMER_DIR=...
#   -DSTEP=pkg_config       -DPREFIX=... -DPC_DIR=<share/pkgconfig> -DPKG_CONFIG=... [-DEXPECT_HF=ON]
# plus -DGENERATOR=... -DCXX_COMPILER=... -DBUILD_TYPE=... for the consumer build.
cmake_minimum_required(VERSION 3.21)

function(run)
  string(REPLACE ";" " " pretty "${ARGN}")
  message(STATUS "+ ${pretty}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${pretty}")
  endif()
endfunction()

if(STEP STREQUAL "install")
  file(REMOVE_RECURSE "${PREFIX}")
  set(config_args)
  if(CONFIG)
    set(config_args --config "${CONFIG}")
  endif()
  run("${CMAKE_COMMAND}" --install "${POSENC_BINARY_DIR}" --prefix "${PREFIX}" ${config_args})
  return()
endif()

# pkg-config: compile main_version.cpp with `pkg-config --cflags posenc` (and posenc-hf when
# expected) against the installed prefix, the compiler alone, and run it.
function(pkg_config out)
  execute_process(COMMAND "${PKG_CONFIG}" ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE text
                  ERROR_VARIABLE err OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config ${ARGN} failed (${rc}): ${err}")
  endif()
  string(REPLACE ";" " " pretty "${ARGN}")
  message(STATUS "pkg-config ${pretty}: ${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()
if(STEP STREQUAL "pkg_config")
  set(ENV{PKG_CONFIG_PATH} "${PREFIX}/${PC_DIR}")
  set(bin "${WORK_DIR}/pkg_config")
  file(REMOVE_RECURSE "${bin}")
  file(MAKE_DIRECTORY "${bin}")
  pkg_config(version --modversion posenc)
  set(programs "consumer" "posenc")
  if(EXPECT_HF)
    list(APPEND programs "consumer_hf" "posenc-hf")
  endif()
  while(programs)
    list(POP_FRONT programs name package)
    pkg_config(cflags --cflags ${package})
    separate_arguments(cflags UNIX_COMMAND "${cflags}")
    set(defs "-DPOSENC_CONSUMER_EXPECT_VERSION=\"${version}\"")
    if(package STREQUAL "posenc-hf")
      list(APPEND defs -DPOSENC_CONSUMER_HF=1)
    endif()
    run("${CXX_COMPILER}" -std=c++17 ${cflags} ${defs} "${CONSUMER_DIR}/main_version.cpp"
        -o "${bin}/${name}")
    run("${bin}/${name}")
  endwhile()
  return()
endif()

if(NOT BUILD_TYPE)
  set(BUILD_TYPE Release)
endif()
set(bin "${WORK_DIR}/${STEP}")
file(REMOVE_RECURSE "${bin}")
set(args -S "${CONSUMER_DIR}" -B "${bin}" -G "${GENERATOR}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}"
         "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DPOSENC_CONSUMER_MODE=${STEP}")
if(STEP STREQUAL "find_package")
  list(APPEND args "-DCMAKE_PREFIX_PATH=${PREFIX}" "-DPOSENC_CONSUMER_EXPECT_HF=${EXPECT_HF}")
elseif(STEP STREQUAL "add_subdirectory")
  list(APPEND args "-DPOSENC_SOURCE_DIR=${POSENC_SOURCE_DIR}")
else()
  message(FATAL_ERROR "unknown STEP '${STEP}'")
endif()
run("${CMAKE_COMMAND}" ${args})
run("${CMAKE_COMMAND}" --build "${bin}" --config "${BUILD_TYPE}")

# Single-config generators put the binary in ${bin}, multi-config ones in ${bin}/<config>.
# consumer must exist; consumer_instances exists when the installed posenc has posenc::instances,
# which the find_package step requires of an install from a build that made it.
foreach(name consumer consumer_hf consumer_instances)
  set(found OFF)
  foreach(exe "${bin}/${name}" "${bin}/${BUILD_TYPE}/${name}" "${bin}/${name}.exe"
              "${bin}/${BUILD_TYPE}/${name}.exe")
    if(NOT found AND EXISTS "${exe}")
      run("${exe}")
      set(found ON)
    endif()
  endforeach()
  if(NOT found AND name STREQUAL "consumer")
    message(FATAL_ERROR "consumer binary not found under ${bin}")
  endif()
  if(NOT found AND name STREQUAL "consumer_instances" AND STEP STREQUAL "find_package"
     AND EXPECT_INSTANCES)
    message(FATAL_ERROR "consumer_instances not built: the installed posenc lacks posenc::instances")
  endif()
endforeach()
