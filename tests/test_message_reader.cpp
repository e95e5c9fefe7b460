// test_message_reader.cpp: reading a pool socket's messages several per
// system call (detail::MessageReader, detail/wire.hpp): order, descriptors,
// big bodies, bulk frames, and every way a stream can end or lie.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "mproc/detail/wire.hpp"
#include "mproc/errors.hpp"

namespace {

using mproc::detail::BulkRing;
using mproc::detail::Message;
using mproc::detail::MessageReader;
using mproc::detail::UniqueFd;

struct SocketPair {
  UniqueFd a, b;
  SocketPair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair");
    a = UniqueFd(sv[0]);
    b = UniqueFd(sv[1]);
    const int buf = 4 << 20;
    ::setsockopt(a.get(), SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    ::setsockopt(b.get(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  }
};

std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}
std::string text_of(const Message& m) { return {reinterpret_cast<const char*>(m.bytes.data()), m.bytes.size()}; }

// The inode of what `fd` refers to: tells which file a received descriptor is.
ino_t inode(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

TEST(MessageReader, HandsOutABatchInOrderWithTheirDescriptors) {
  SocketPair p;
  UniqueFd file(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  UniqueFd pipe_r, pipe_w;
  int pf[2];
  ASSERT_EQ(::pipe2(pf, O_CLOEXEC), 0);
  pipe_r = UniqueFd(pf[0]);
  pipe_w = UniqueFd(pf[1]);
  const std::string big((200 << 10) + 3, 'b');  // bigger than the reader's 64 KiB buffer
  mproc::detail::send_message(p.a.get(), bytes_of("one"));
  const int two_fds[] = {file.get(), pipe_r.get()};
  mproc::detail::send_message(p.a.get(), bytes_of("two"), two_fds);
  mproc::detail::send_message(p.a.get(), {});
  mproc::detail::send_message(p.a.get(), bytes_of(big));
  const int one_fd[] = {pipe_w.get()};
  mproc::detail::send_message(p.a.get(), bytes_of("after big"), one_fd);
  p.a.reset();

  MessageReader reader(p.b.get());
  Message m;
  reader.next(m);
  EXPECT_EQ(text_of(m), "one");
  EXPECT_TRUE(m.fds.empty());
  EXPECT_TRUE(reader.has_message()) << "the next small message came with the first read";
  reader.next(m);
  EXPECT_EQ(text_of(m), "two");
  ASSERT_EQ(m.fds.size(), 2u);
  EXPECT_EQ(inode(m.fds[0].get()), inode(file.get()));
  EXPECT_EQ(inode(m.fds[1].get()), inode(pipe_r.get()));
  reader.next(m);
  EXPECT_EQ(m.bytes.size(), 0u);
  reader.next(m);
  EXPECT_TRUE(text_of(m) == big);
  reader.next(m);
  EXPECT_EQ(text_of(m), "after big");
  ASSERT_EQ(m.fds.size(), 1u);
  EXPECT_EQ(inode(m.fds[0].get()), inode(pipe_w.get()));
  EXPECT_FALSE(reader.has_message());
  EXPECT_THROW(reader.next(m), mproc::EOFError);
}

TEST(MessageReader, TakesBulkFramesFromTheRing) {
  SocketPair p;
  std::vector<std::byte> memory(BulkRing::kHeaderBytes + (1 << 20));
  BulkRing writer(memory.data(), 1 << 20), reader_ring(memory.data(), 1 << 20);
  const std::string body(100 << 10, 'r');
  mproc::detail::send_message(p.a.get(), bytes_of(body), {}, writer);  // through the ring
  mproc::detail::send_message(p.a.get(), bytes_of("small"), {}, writer);  // too small for it
  MessageReader reader(p.b.get());
  Message m;
  reader.next(m, &reader_ring);
  EXPECT_TRUE(text_of(m) == body);
  reader.next(m, &reader_ring);
  EXPECT_EQ(text_of(m), "small");
  // Borrowed: the body is read in place until the next message.
  mproc::detail::send_message(p.a.get(), bytes_of(body), {}, writer);
  mproc::detail::send_message(p.a.get(), bytes_of("last"), {}, writer);
  reader.next(m, &reader_ring, std::size_t{1} << 40, /*borrow=*/true);
  EXPECT_EQ(m.bytes.size(), 0u);
  ASSERT_EQ(m.body().size(), body.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.body().data()), m.body().size()), body);
  reader.next(m, &reader_ring, std::size_t{1} << 40, /*borrow=*/true);
  EXPECT_EQ(text_of(m), "last");
  EXPECT_TRUE(m.borrowed.empty());
  // A bulk frame where no ring is expected is malformed.
  mproc::detail::send_message(p.a.get(), bytes_of(body), {}, writer);
  EXPECT_THROW(reader.next(m), mproc::SerializationError);
}

void send_raw(int fd, const void* p, std::size_t n) { ASSERT_EQ(::send(fd, p, n, MSG_NOSIGNAL), static_cast<ssize_t>(n)); }

struct Header {
  std::uint64_t length;
  std::uint32_t nfds;
} __attribute__((packed));

TEST(MessageReader, StreamsThatEndOrLieThrowTheRightError) {
  Message m;
  {  // A clean end between messages.
    SocketPair p;
    p.a.reset();
    MessageReader reader(p.b.get());
    EXPECT_THROW(reader.next(m), mproc::EOFError);
  }
  {  // Inside a header.
    SocketPair p;
    send_raw(p.a.get(), "abc", 3);
    p.a.reset();
    MessageReader reader(p.b.get());
    EXPECT_THROW(reader.next(m), mproc::SerializationError);
  }
  {  // Inside a small body, and inside a big one.
    for (std::uint64_t length : {std::uint64_t{100}, std::uint64_t{1} << 20}) {
      SocketPair p;
      const Header h{length, 0};
      send_raw(p.a.get(), &h, sizeof h);
      send_raw(p.a.get(), "xyz", 3);
      p.a.reset();
      MessageReader reader(p.b.get());
      EXPECT_FALSE(reader.has_message());
      EXPECT_THROW(reader.next(m), mproc::EOFError) << length;
    }
  }
  {  // Announces descriptors that never came.
    SocketPair p;
    const Header h{2, 1};
    send_raw(p.a.get(), &h, sizeof h);
    send_raw(p.a.get(), "hi", 2);
    MessageReader reader(p.b.get());
    EXPECT_THROW(reader.next(m), mproc::SerializationError);
  }
  {  // A length over the caller's limit.
    SocketPair p;
    const Header big{1000, 0};
    send_raw(p.a.get(), &big, sizeof big);
    MessageReader reader(p.b.get());
    EXPECT_THROW(reader.next(m, nullptr, 999), mproc::SerializationError);
  }
}

}  // namespace
