# Runs one compile-fail test: the source must fail to compile, and the
# compiler's output must match the regex written in the source as
#     // expect-error: <regex>
# (the first such line; CMake regex syntax, matched anywhere in the output).
#
# cmake -DCXX=<compiler> -DSRC=<file.cpp> -DMPROC_INCLUDE=<dir>
#       [-DCEREAL_INCLUDE=<dir>] -P check.cmake
foreach(var CXX SRC MPROC_INCLUDE)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check.cmake: -D${var}=... is required")
  endif()
endforeach()

# file(READ) rather than file(STRINGS): a regex may contain ';', which a
# CMake list would split.
file(READ "${SRC}" source)
string(REGEX MATCH "(^|\n)[ \t]*//[ \t]*expect-error:[^\n]*" expect_line "${source}")
if(expect_line STREQUAL "")
  message(FATAL_ERROR "${SRC}: no '// expect-error: <regex>' line; "
                      "a compile-fail test must say which error it expects")
endif()
string(REGEX REPLACE "^\n?[ \t]*//[ \t]*expect-error:[ \t]*" "" expect_regex "${expect_line}")
string(REPLACE "\r" "" expect_regex "${expect_regex}")
string(STRIP "${expect_regex}" expect_regex)
if(expect_regex STREQUAL "")
  message(FATAL_ERROR "${SRC}: the expect-error regex is empty")
endif()

set(cmd "${CXX}" -std=c++20 -fsyntax-only -fdiagnostics-color=never
        "-I${MPROC_INCLUDE}")
if(DEFINED CEREAL_INCLUDE AND NOT CEREAL_INCLUDE STREQUAL "")
  list(APPEND cmd "-I${CEREAL_INCLUDE}")
endif()
list(APPEND cmd "${SRC}")

# LC_ALL=C keeps gcc's quotes ASCII ('x', not ‘x’) so regexes stay simple.
execute_process(
  COMMAND "${CMAKE_COMMAND}" -E env LC_ALL=C LANG=C ${cmd}
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE out)

list(JOIN cmd " " cmd_text)
# The compiler's output goes out verbatim (message(NOTICE) does not re-wrap
# lines the way FATAL_ERROR does).
if(rc EQUAL 0)
  message(NOTICE "command: ${cmd_text}\nexpected error (regex): ${expect_regex}\n"
                 "--- compiler output ---\n${out}")
  message(FATAL_ERROR "${SRC} compiled, but it must not.")
endif()
if(NOT out MATCHES "${expect_regex}")
  message(NOTICE "command: ${cmd_text}\nexpected error (regex): ${expect_regex}\n"
                 "--- compiler output ---\n${out}")
  message(FATAL_ERROR "${SRC} failed to compile, but its output does not match "
                      "the expected error (regex above).")
endif()
message(STATUS "compile-fail OK: ${SRC} fails with /${expect_regex}/")
