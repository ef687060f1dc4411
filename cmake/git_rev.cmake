# Run at every build (cmake -P): writes OUT = `#define SINKLAB_GIT_REV "<rev>"`, the source tree's commit with
# "-dirty" when tracked files differ from it, and touches OUT only when that changes, so that a run log's git_rev
# names the code that wrote it without rebuilding anything else. Inputs: -DSRC=<source dir> -DOUT=<header>.
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY "${SRC}"
                OUTPUT_VARIABLE rev OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE failed)
if(failed OR NOT rev)
  set(rev unknown)
else()
  execute_process(COMMAND git diff --quiet HEAD -- WORKING_DIRECTORY "${SRC}" RESULT_VARIABLE dirty ERROR_QUIET)
  if(dirty)
    string(APPEND rev "-dirty")
  endif()
endif()
file(WRITE "${OUT}.tmp" "#define SINKLAB_GIT_REV \"${rev}\"\n")
execute_process(COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
