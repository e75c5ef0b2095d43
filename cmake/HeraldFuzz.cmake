# HERALD_FUZZ=ON: every Herald object gets libFuzzer's coverage instrumentation (not
# its main), so the fuzzers see the library's edges, not only the target file's.
if(HERALD_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "HERALD_FUZZ=ON requires clang (CC=clang)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
