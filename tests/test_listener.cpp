// test_listener.cpp: tests of listener.hpp (API.md section 5): Listener
// and Client over Unix sockets and TCP on 127.0.0.1, the authkey
// handshake (right key, wrong key on both sides, garbage and silent peers),
// and what a listener does with a misbehaving peer after the handshake.

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <exception>
#include <ostream>
#include <utility>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "helpers/test_support.hpp"
#include "mproc/detail/frame.hpp"
#include "mproc/errors.hpp"
#include "mproc/listener.hpp"
#include "mproc/process.hpp"
#include "mproc/queue.hpp"

namespace {

using mproc::StartMethod;
using mproc_test::kGuard;
using namespace std::chrono_literals;

const std::string kKey = "the right key";

// A plain socket connected to `address` (no handshake): a foreign peer.
int raw_connect(const std::string& address) {
  const auto a = mproc::detail::parse_address(address);
  if (a.tcp) {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(a.port)));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(s);
      return -1;
    }
    return s;
  }
  const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, a.path.c_str(), sizeof sa.sun_path - 1);
  if (::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(s);
    return -1;
  }
  return s;
}

// Connects a client (from a thread: its handshake needs the accepting
// side running) and accepts it. Returns {client end, server end}.
template <class T>
std::pair<mproc::Connection<T>, mproc::Connection<T>> connect_pair(mproc::Listener<T>& l, const std::string& key,
                                                                   mproc::ClientOptions co = {}) {
  std::optional<mproc::Connection<T>> client;
  std::exception_ptr err;
  const std::string where = l.address();
  std::thread t([&] {
    try {
      client = mproc::Client<T>(where, key, co);
    } catch (...) {
      err = std::current_exception();
    }
  });
  auto server = l.accept();
  t.join();
  if (err) std::rethrow_exception(err);
  return {*client, server};
}

// The addresses the tests run on: a Unix path and TCP on the loopback.
struct Endpoint {
  std::string name;
  bool tcp;
  friend std::ostream& operator<<(std::ostream& os, const Endpoint& e) { return os << e.name; }
};

class Listener : public ::testing::TestWithParam<Endpoint> {
 protected:
  std::string address() const { return GetParam().tcp ? "127.0.0.1:0" : dir.file("sock"); }
  mproc_test::TempDir dir;
};

INSTANTIATE_TEST_SUITE_P(Transport, Listener, ::testing::Values(Endpoint{"unix", false}, Endpoint{"tcp", true}),
                         [](const auto& info) { return info.param.name; });

TEST_P(Listener, RoundTripWithTheRightKey) {
  mproc::Listener<std::string> l(address(), kKey);
  const std::string where = l.address();
  if (GetParam().tcp) {
    EXPECT_EQ(where.rfind("127.0.0.1:", 0), 0u) << where;
  }
  std::thread client([where] {
    auto c = mproc::Client<std::string>(where, kKey);
    c.send("hello");
    c.send(c.recv() + "!");
  });
  auto conn = l.accept();
  EXPECT_EQ(conn.recv(), "hello");
  conn.send("world");
  EXPECT_EQ(conn.recv(), "world!");
  client.join();
  EXPECT_THROW(conn.recv(), mproc::EOFError);
}

TEST_P(Listener, WrongKeyFailsOnBothSides) {
  mproc::Listener<int> l(address(), kKey);
  const std::string where = l.address();
  std::atomic<int> client_result{0};  // 1: AuthenticationError, 2: anything else
  std::thread client([&] {
    try {
      auto c = mproc::Client<int>(where, "a wrong key");
      client_result = 2;
    } catch (const mproc::AuthenticationError&) {
      client_result = 1;
    } catch (...) {
      client_result = 2;
    }
  });
  EXPECT_THROW(l.accept(), mproc::AuthenticationError);
  client.join();
  EXPECT_EQ(client_result.load(), 1) << "the client did not get AuthenticationError";
}

TEST_P(Listener, KeepsServingAfterAFailedHandshake) {
  mproc::Listener<int> l(address(), kKey);
  const std::string where = l.address();
  std::thread bad([where] { EXPECT_THROW(mproc::Client<int>(where, "nope"), mproc::AuthenticationError); });
  EXPECT_THROW(l.accept(), mproc::AuthenticationError);
  bad.join();
  std::thread good([where] { mproc::Client<int>(where, kKey).send(7); });
  auto c = l.accept();
  EXPECT_EQ(c.recv(), 7);
  good.join();
}

TEST_P(Listener, GarbageDuringTheHandshakeIsRejected) {
  mproc::Listener<int> l(address(), kKey);
  const int s = raw_connect(l.address());
  ASSERT_GE(s, 0);
  const char junk[] = "GET / HTTP/1.0\r\n\r\n and then some more bytes that are no frame";
  ASSERT_GT(::write(s, junk, sizeof junk), 0);
  EXPECT_THROW(l.accept(), mproc::AuthenticationError);
  ::close(s);
  // A well-formed frame that is not a handshake message, too large.
  const int s2 = raw_connect(l.address());
  ASSERT_GE(s2, 0);
  mproc::detail::FrameHeader h{mproc::detail::kFrameMagic, 0, std::uint64_t{1} << 40};
  ASSERT_EQ(::write(s2, &h, sizeof h), static_cast<ssize_t>(sizeof h));
  EXPECT_THROW(l.accept(), mproc::AuthenticationError);
  ::close(s2);
}

TEST_P(Listener, SilentPeerTimesOutTheHandshake) {
  mproc::ListenerOptions o;
  o.handshake_timeout = 100ms;
  mproc::Listener<int> l(address(), kKey, o);
  const int s = raw_connect(l.address());
  ASSERT_GE(s, 0);
  try {
    l.accept();
    FAIL() << "accept returned for a peer that never answered";
  } catch (const mproc::AuthenticationError& e) {
    EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
  }
  ::close(s);
}

TEST_P(Listener, GarbageAfterTheHandshakeClosesOnlyThatConnection) {
  mproc::Listener<std::string> l(address(), kKey);
  auto [bad_client, bad] = connect_pair(l, kKey);
  const char junk[] = "raw bytes that break the framing";
  ASSERT_GT(::write(bad_client.fileno(), junk, sizeof junk), 0);
  EXPECT_THROW(bad.recv(), mproc::SerializationError);
  EXPECT_TRUE(bad.closed());

  auto [good_client, good] = connect_pair(l, kKey);
  good_client.send("fine");
  EXPECT_EQ(good.recv(), "fine");
  EXPECT_THROW(bad_client.recv(), mproc::EOFError);  // the server closed its end
}

TEST_P(Listener, MessageAboveTheSizeLimitIsRefused) {
  mproc::ListenerOptions o;
  o.max_message_size = 1024;
  mproc::Listener<std::string> l(address(), kKey, o);
  auto [c, s] = connect_pair(l, kKey);
  c.send(std::string(100, 'a'));
  EXPECT_EQ(s.recv(), std::string(100, 'a'));
  c.send(std::string(4096, 'b'));
  EXPECT_THROW(s.recv(), mproc::SerializationError);
  EXPECT_TRUE(s.closed());
  // The limit holds for what the server sends, too.
  mproc::ClientOptions co;
  co.max_message_size = 1024;
  auto [c2, s2] = connect_pair(l, kKey, co);
  EXPECT_THROW(c2.send(std::string(4096, 'c')), mproc::Error);
  s2.send("small");
  EXPECT_EQ(c2.recv(), "small");
}

TEST_P(Listener, WithoutAKeyNoHandshake) {
  mproc::Listener<int> l(address());
  auto c = mproc::Client<int>(l.address());  // no handshake: connect completes by itself
  auto s = l.accept();
  c.send(3);
  EXPECT_EQ(s.recv(), 3);
}

TEST_P(Listener, CloseStopsListening) {
  mproc::Listener<int> l(address(), kKey);
  const std::string where = l.address();
  l.close();
  EXPECT_TRUE(l.closed());
  EXPECT_THROW(l.accept(), mproc::Error);
  EXPECT_THROW(mproc::Client<int>(where, kKey), mproc::Error);
}

TEST(ListenerUnix, SocketFileIsRemovedOnClose) {
  mproc_test::TempDir dir;
  const std::string path = dir.file("s");
  struct stat st {};
  {
    mproc::Listener<int> l(path, kKey);
    EXPECT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_THROW(mproc::Listener<int>(path, kKey), mproc::Error);  // in use
  }
  EXPECT_NE(::stat(path.c_str(), &st), 0);
}

TEST(ListenerUnix, HandlesTravelOverUnixConnectionsOnly) {
  mproc_test::TempDir dir;
  mproc::Listener<mproc::Queue<int>> u(dir.file("s"), kKey);
  auto [uc, us] = connect_pair(u, kKey);
  mproc::Queue<int> q;
  uc.send(q);
  us.recv().put(12);
  EXPECT_EQ(q.get(kGuard), 12);

  mproc::Listener<mproc::Queue<int>> t("127.0.0.1:0", kKey);
  auto [tc, ts] = connect_pair(t, kKey);
  EXPECT_THROW(tc.send(q), mproc::Error);
}

TEST(ListenerAddress, ParsesPathsAndHostPorts) {
  auto a = mproc::detail::parse_address("127.0.0.1:6000");
  EXPECT_TRUE(a.tcp);
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, "6000");
  a = mproc::detail::parse_address("[::1]:7");
  EXPECT_TRUE(a.tcp);
  EXPECT_EQ(a.host, "::1");
  a = mproc::detail::parse_address("/tmp/x:1");
  EXPECT_FALSE(a.tcp);
  a = mproc::detail::parse_address("sock");
  EXPECT_FALSE(a.tcp);
  EXPECT_THROW(mproc::detail::parse_address(""), mproc::Error);
  EXPECT_THROW(mproc::detail::parse_address(std::string(200, 'p')), mproc::Error);
}

// ---------------------------------------------------- client in a child ---

void client_child(std::string address, std::string key, int value) {
  auto c = mproc::Client<int>(address, key);
  c.send(value);
  c.send(c.recv() * 10);
}

void wrong_key_child(std::string address) {
  try {
    mproc::Client<int>(address, "wrong");
  } catch (const mproc::AuthenticationError&) {
    ::_exit(42);
  }
  ::_exit(1);
}

class ListenerProcess : public ::testing::TestWithParam<StartMethod> {
 protected:
  mproc::ProcessOptions opts() const {
    mproc::ProcessOptions o;
    o.start_method = GetParam();
    return o;
  }
};

INSTANTIATE_TEST_SUITE_P(StartMethod, ListenerProcess, mproc_test::all_start_methods(), mproc_test::start_method_name);

TEST_P(ListenerProcess, ClientInAChildProcess) {
  mproc::Listener<int> l("127.0.0.1:0", kKey);
  mproc::Process p(opts(), client_child, l.address(), kKey, 5);
  p.start();
  auto c = l.accept();
  EXPECT_EQ(c.recv(), 5);
  c.send(6);
  EXPECT_EQ(c.recv(), 60);
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(ListenerProcess, WrongKeyInAChildFailsOnBothSides) {
  mproc_test::TempDir dir;
  mproc::Listener<int> l(dir.file("s"), kKey);
  mproc::Process p(opts(), wrong_key_child, l.address());
  p.start();
  EXPECT_THROW(l.accept(), mproc::AuthenticationError);
  ASSERT_TRUE(p.join(kGuard));
  EXPECT_EQ(p.exitcode(), 42) << "the child did not get AuthenticationError";
}

}  // namespace
