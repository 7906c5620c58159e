# Helpers for posenc's own targets (tests, examples, benchmarks). None of these touch the
# INTERFACE library `posenc`, so consumers never inherit warnings, sanitizers or OpenMP.

# -Wall -Wextra -Wpedantic (and -Werror with POSENC_WERROR), and strict ISO C++ (-std=c++17
# rather than gnu++17) so that extensions do not slip into the headers unnoticed.
function(posenc_target_warnings tgt)
  set_target_properties(${tgt} PROPERTIES CXX_EXTENSIONS OFF)
  if(MSVC)
    target_compile_options(${tgt} PRIVATE /W4 $<$<BOOL:${POSENC_WERROR}>:/WX>)
  else()
    target_compile_options(${tgt} PRIVATE -Wall -Wextra -Wpedantic
                                          $<$<BOOL:${POSENC_WERROR}>:-Werror>)
  endif()
endfunction()

# ASan + UBSan when POSENC_SANITIZE is ON; ThreadSanitizer when POSENC_SANITIZE_THREAD is ON.
function(posenc_target_sanitize tgt)
  set(flags)
  if(POSENC_SANITIZE)
    set(flags -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  elseif(POSENC_SANITIZE_THREAD)
    set(flags -fsanitize=thread -fno-omit-frame-pointer)
  endif()
  if(flags)
    target_compile_options(${tgt} PRIVATE ${flags})
    get_target_property(type ${tgt} TYPE)
    if(NOT type STREQUAL "OBJECT_LIBRARY")
      target_link_options(${tgt} PRIVATE ${flags})
    endif()
  endif()
endfunction()

# OpenMP when found (POSENC_USE_OPENMP); the library itself works without it.
function(posenc_target_openmp tgt)
  if(POSENC_USE_OPENMP AND TARGET OpenMP::OpenMP_CXX)
    target_link_libraries(${tgt} PRIVATE OpenMP::OpenMP_CXX)
  endif()
endfunction()

# Everything a test or example target gets: the library, warnings, sanitizers, OpenMP.
function(posenc_setup_target tgt)
  target_link_libraries(${tgt} PRIVATE posenc::posenc)
  posenc_target_warnings(${tgt})
  posenc_target_sanitize(${tgt})
  posenc_target_openmp(${tgt})
endfunction()
