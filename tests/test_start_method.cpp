// test_start_method.cpp: tests of start_method.hpp (set/get the process-wide
// start method, the list of methods, their names, and init()).

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "mproc/errors.hpp"
#include "mproc/start_method.hpp"

namespace {

using mproc::StartMethod;

// Puts the default start method back to fork when a test ends, so that a
// test that changes it cannot change the tests after it when the whole
// binary runs in one process.
struct RestoreStartMethod {
  ~RestoreStartMethod() { mproc::set_start_method(StartMethod::fork, true); }
};

TEST(StartMethod, SecondSetWithoutForceThrows) {
  RestoreStartMethod restore;
  // The first call of the process may already have happened in an earlier
  // test of this process; force makes this one "set" in any case.
  mproc::set_start_method(StartMethod::spawn, true);
  EXPECT_THROW(mproc::set_start_method(StartMethod::forkserver), mproc::Error);
  EXPECT_EQ(mproc::get_start_method(), StartMethod::spawn);
}

TEST(StartMethod, ForceReplacesTheMethod) {
  RestoreStartMethod restore;
  mproc::set_start_method(StartMethod::spawn, true);
  mproc::set_start_method(StartMethod::forkserver, true);
  EXPECT_EQ(mproc::get_start_method(), StartMethod::forkserver);
  mproc::set_start_method(StartMethod::fork, true);
  EXPECT_EQ(mproc::get_start_method(), StartMethod::fork);
}

TEST(StartMethod, AllStartMethodsListsThree) {
  const auto all = mproc::get_all_start_methods();
  ASSERT_EQ(all.size(), 3u);
  for (StartMethod m : {StartMethod::fork, StartMethod::spawn, StartMethod::forkserver}) {
    EXPECT_NE(std::find(all.begin(), all.end(), m), all.end()) << mproc::to_string(m);
  }
}

TEST(StartMethod, ToStringNamesEachMethod) {
  EXPECT_EQ(mproc::to_string(StartMethod::fork), "fork");
  EXPECT_EQ(mproc::to_string(StartMethod::spawn), "spawn");
  EXPECT_EQ(mproc::to_string(StartMethod::forkserver), "forkserver");
}

// Spawn without init() cannot be tried here: test_main.cpp called init()
// (it has to, for the spawn children of the other tests). What can be
// checked is that it did.
TEST(StartMethod, InitHasRunInTheTestBinary) { EXPECT_TRUE(mproc::initialized()); }

}  // namespace
