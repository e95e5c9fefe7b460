// late_module.cpp: a shared library that mproc_tests loads with dlopen
// after start (test_fork_safety.cpp): a module the function-id cache did
// not learn before main.

extern "C" int mproc_test_late_function(int x) { return x + 1; }
