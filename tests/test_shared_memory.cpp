// test_shared_memory.cpp: tests of shared_memory.hpp: anonymous and named
// blocks, attach by name, close and unlink, errors, data seen across
// processes under every start method, named blocks that outlive their
// creator exactly until unlink(), and nothing left in /dev/shm after a
// SIGKILL of the process that created an anonymous block.
//
// Every named block gets a name from mproc_test::unique_shm_name and is
// unlinked by its test (the leak check watches /dev/shm).

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "helpers/leak_check.hpp"
#include "helpers/test_support.hpp"
#include "mproc/errors.hpp"
#include "mproc/event.hpp"
#include "mproc/process.hpp"
#include "mproc/shared_memory.hpp"
#include "mproc/shared_value.hpp"
#include "sync_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using mproc_sync_test::start;
using mproc_test::kGuard;

bool shm_exists(const std::string& name) {
  struct stat st {};
  return ::stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

// Unlinks a named block when the test ends, whatever happens.
struct Unlinker {
  std::string name;
  ~Unlinker() { ::shm_unlink(("/" + name).c_str()); }
};

TEST(SharedMemory, AnonymousBlockIsZeroedWritableAndNamedByItsDescriptor) {
  auto shm = mproc::SharedMemory::create(4096);
  ASSERT_TRUE(shm);
  EXPECT_FALSE(shm.named());
  ASSERT_GE(shm.size(), 4096u);
  auto bytes = shm.buf();
  EXPECT_TRUE(std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; }));
  std::memcpy(shm.data(), "hello", 6);
  EXPECT_EQ(shm.name().rfind("/proc/", 0), 0u) << shm.name();
  shm.unlink();  // nothing to do for an anonymous block
  auto again = mproc::SharedMemory::attach(shm.name());
  EXPECT_STREQ(static_cast<const char*>(again.data()), "hello");
  static_cast<char*>(again.data())[0] = 'j';
  EXPECT_EQ(static_cast<const char*>(shm.data())[0], 'j');
}

TEST(SharedMemory, NamedBlockAttachWithOrWithoutSlashAndUnlink) {
  const std::string name = mproc_test::unique_shm_name("named");
  Unlinker cleanup{name};
  auto shm = mproc::SharedMemory::create(name, 100);
  EXPECT_TRUE(shm.named());
  EXPECT_EQ(shm.name(), name);
  EXPECT_EQ(shm.size(), 100u);
  EXPECT_TRUE(shm_exists(name));
  std::memcpy(shm.data(), "shared", 7);
  auto a = mproc::SharedMemory::attach(name);
  auto b = mproc::SharedMemory::attach("/" + name);
  EXPECT_EQ(a.size(), 100u);
  EXPECT_STREQ(static_cast<const char*>(a.data()), "shared");
  EXPECT_STREQ(static_cast<const char*>(b.data()), "shared");
  EXPECT_THROW(mproc::SharedMemory::create(name, 10), mproc::Error);
  EXPECT_THROW(mproc::SharedMemory::create("/" + name, 10), mproc::Error);
  shm.unlink();
  EXPECT_FALSE(shm_exists(name));
  EXPECT_THROW(mproc::SharedMemory::attach(name), mproc::Error);
  EXPECT_THROW(shm.unlink(), mproc::Error);
  // The mappings stay valid after unlink.
  EXPECT_STREQ(static_cast<const char*>(a.data()), "shared");
}

TEST(SharedMemory, BadArgumentsThrow) {
  EXPECT_THROW(mproc::SharedMemory::create(0), mproc::Error);
  const std::string name = mproc_test::unique_shm_name("zero");
  EXPECT_THROW(mproc::SharedMemory::create(name, 0), mproc::Error);
  EXPECT_FALSE(shm_exists(name));
  EXPECT_THROW(mproc::SharedMemory::create("", 10), mproc::Error);
  EXPECT_THROW(mproc::SharedMemory::create("/", 10), mproc::Error);
  EXPECT_THROW(mproc::SharedMemory::create("a/b", 10), mproc::Error);
  EXPECT_THROW(mproc::SharedMemory::attach(mproc_test::unique_shm_name("missing")), mproc::Error);
  EXPECT_THROW(mproc::SharedMemory::attach("/proc/1/fd/999999"), mproc::Error);
}

TEST(SharedMemory, CloseUnmapsForEveryCopyInThisProcess) {
  auto shm = mproc::SharedMemory::create(64);
  auto copy = shm;
  const std::string name = shm.name();
  copy.close();
  EXPECT_EQ(shm.data(), nullptr);
  EXPECT_EQ(shm.size(), 0u);
  EXPECT_TRUE(shm.buf().empty());
  shm.close();  // idempotent
  EXPECT_THROW(mproc::SharedMemory::attach(name), mproc::Error);
}

TEST(SharedMemory, EmptyHandle) {
  mproc::SharedMemory shm;
  EXPECT_FALSE(shm);
  EXPECT_EQ(shm.data(), nullptr);
  EXPECT_EQ(shm.size(), 0u);
  EXPECT_EQ(shm.name(), "");
  shm.close();
  shm.unlink();
}

TEST(SharedMemory, HandleCrossesAsDescriptorAndName) {
  const std::string name = mproc_test::unique_shm_name("cross");
  Unlinker cleanup{name};
  auto anon = mproc::SharedMemory::create(32);
  auto named = mproc::SharedMemory::create(name, 32);
  mproc::detail::Writer w;
  mproc::detail::encode_value(w, anon);
  mproc::detail::encode_value(w, named);
  mproc::detail::Reader r(w.bytes(), w.fds());
  auto anon2 = mproc::detail::decode_value<mproc::SharedMemory>(r);
  auto named2 = mproc::detail::decode_value<mproc::SharedMemory>(r);
  EXPECT_FALSE(anon2.named());
  EXPECT_TRUE(named2.named());
  EXPECT_EQ(named2.name(), name);
  static_cast<char*>(anon2.data())[3] = 'a';
  static_cast<char*>(named2.data())[3] = 'n';
  EXPECT_EQ(static_cast<char*>(anon.data())[3], 'a');
  EXPECT_EQ(static_cast<char*>(named.data())[3], 'n');
  named2.unlink();
  EXPECT_FALSE(shm_exists(name));
}

// ------------------------------------------------------ across processes ---

class SharedMemoryAcrossProcesses : public ::testing::TestWithParam<mproc::StartMethod> {};

void double_each_byte(mproc::SharedMemory shm) {
  auto* p = static_cast<unsigned char*>(shm.data());
  for (std::size_t i = 0; i < shm.size(); ++i) p[i] = static_cast<unsigned char>(p[i] * 2);
}

TEST_P(SharedMemoryAcrossProcesses, ChildSeesAndChangesAnAnonymousBlock) {
  auto shm = mproc::SharedMemory::create(1 << 16);
  auto* p = static_cast<unsigned char*>(shm.data());
  for (std::size_t i = 0; i < shm.size(); ++i) p[i] = static_cast<unsigned char>(i % 100);
  auto child = start(GetParam(), double_each_byte, shm);
  ASSERT_TRUE(child.join(kGuard));
  EXPECT_EQ(child.exitcode(), 0);
  for (std::size_t i = 0; i < shm.size(); ++i) ASSERT_EQ(p[i], (i % 100) * 2) << "at " << i;
}

void write_into_named(std::string name) {
  auto shm = mproc::SharedMemory::attach(name);
  std::memcpy(shm.data(), "from the child", 15);
}

TEST_P(SharedMemoryAcrossProcesses, ChildAttachesANamedBlockByName) {
  const std::string name = mproc_test::unique_shm_name("byname");
  Unlinker cleanup{name};
  auto shm = mproc::SharedMemory::create(name, 64);
  auto child = start(GetParam(), write_into_named, name);
  ASSERT_TRUE(child.join(kGuard));
  EXPECT_EQ(child.exitcode(), 0);
  EXPECT_STREQ(static_cast<const char*>(shm.data()), "from the child");
  shm.unlink();
}

void create_named_and_exit(std::string name) {
  auto shm = mproc::SharedMemory::create(name, 128);
  std::memcpy(shm.data(), "left behind", 12);
}

TEST_P(SharedMemoryAcrossProcesses, NamedBlockOutlivesItsCreatorUntilUnlink) {
  const std::string name = mproc_test::unique_shm_name("outlive");
  Unlinker cleanup{name};
  auto child = start(GetParam(), create_named_and_exit, name);
  ASSERT_TRUE(child.join(kGuard));
  ASSERT_EQ(child.exitcode(), 0);
  ASSERT_TRUE(shm_exists(name));
  {
    auto shm = mproc::SharedMemory::attach(name);
    EXPECT_EQ(shm.size(), 128u);
    EXPECT_STREQ(static_cast<const char*>(shm.data()), "left behind");
    shm.close();
    EXPECT_TRUE(shm_exists(name));  // close() does not unlink
    mproc::SharedMemory::attach(name).unlink();
  }
  EXPECT_FALSE(shm_exists(name));
}

// Creates an anonymous block, hands it to a grandchild, says so, and waits
// to be killed.
void hold_anonymous_block(mproc::Event ready, mproc::RawValue<int> grandchild_pid) {
  auto shm = mproc::SharedMemory::create(1 << 20);
  std::memset(shm.data(), 1, shm.size());
  mproc::Process g(double_each_byte, shm);  // the default start method: fork
  g.start();
  grandchild_pid.store(g.pid());
  ready.set();
  ::pause();
}

TEST_P(SharedMemoryAcrossProcesses, NothingAnonymousRemainsAfterItsCreatorIsKilled) {
  const auto before = mproc_test::take_snapshot().shm;
  mproc::Event ready;
  mproc::RawValue<int> grandchild(0);
  auto child = start(GetParam(), hold_anonymous_block, ready, grandchild);
  ASSERT_TRUE(ready.wait(kGuard));
  child.kill();
  ASSERT_TRUE(child.join(kGuard));
  EXPECT_EQ(child.exitcode(), -SIGKILL);
  ASSERT_NE(grandchild.load(), 0);
  ASSERT_TRUE(mproc_test::wait_until([&] { return mproc_test::pid_gone(grandchild.load()); }));
  const auto after = mproc_test::take_snapshot().shm;
  std::vector<std::string> added;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(), std::back_inserter(added));
  // Names of other test processes running in parallel are not ours.
  std::erase_if(added, [](const std::string& n) { return n.rfind("mproctest-", 0) == 0; });
  EXPECT_TRUE(added.empty()) << "left in /dev/shm: " << added.front();
}

void write_through_handle(mproc::SharedMemory shm) { std::memcpy(shm.data(), "named via handle", 17); }

TEST_P(SharedMemoryAcrossProcesses, NamedBlockCrossesAsAHandleToo) {
  const std::string name = mproc_test::unique_shm_name("handle");
  Unlinker cleanup{name};
  auto shm = mproc::SharedMemory::create(name, 64);
  auto child = start(GetParam(), write_through_handle, shm);
  ASSERT_TRUE(child.join(kGuard));
  EXPECT_EQ(child.exitcode(), 0);
  EXPECT_STREQ(static_cast<const char*>(shm.data()), "named via handle");
  shm.unlink();
}

INSTANTIATE_TEST_SUITE_P(StartMethod, SharedMemoryAcrossProcesses, mproc_test::all_start_methods(),
                         mproc_test::start_method_name);

}  // namespace
