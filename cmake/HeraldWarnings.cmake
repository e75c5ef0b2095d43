# Warning flags for every Herald target; HERALD_WERROR turns them into errors (CI).
set(HERALD_WARNING_FLAGS -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wno-unused-parameter -Wformat=2 -Wvla)
if(HERALD_WERROR)
  list(APPEND HERALD_WARNING_FLAGS -Werror)
endif()
function(herald_target_defaults target)
  target_compile_options(${target} PRIVATE ${HERALD_WARNING_FLAGS})
  target_compile_definitions(${target} PRIVATE _GNU_SOURCE)
endfunction()
