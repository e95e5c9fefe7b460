// progress.cpp: the progress line of map-style calls (detail/progress.hpp).

#include "mproc/detail/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace mproc::detail {

Progress::Progress(bool enabled, std::optional<std::size_t> total, std::string label)
    : active_(enabled && ::isatty(STDERR_FILENO) == 1),
      total_(total),
      label_(std::move(label)),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {
  if (active_) draw(false);
}

Progress::~Progress() { finish(); }

void Progress::advance(std::size_t n) {
  if (!active_) return;
  std::lock_guard lock(mu_);
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ >= std::chrono::milliseconds(100)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  if (!active_) return;
  std::lock_guard lock(mu_);
  if (finished_) return;
  finished_ = true;
  draw(true);
}

std::string Progress::render(std::size_t done, std::optional<std::size_t> total, double elapsed_s,
                             const std::string& label) {
  char buf[160];
  const double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0.0;
  if (total && *total > 0) {
    const double pct = 100.0 * static_cast<double>(done) / static_cast<double>(*total);
    const std::size_t left = *total > done ? *total - done : 0;
    std::string eta = "?";
    if (rate > 0) {
      const auto secs = static_cast<long long>(static_cast<double>(left) / rate + 0.5);
      char e[32];
      std::snprintf(e, sizeof e, "%lld:%02lld", secs / 60, secs % 60);
      eta = e;
    }
    std::snprintf(buf, sizeof buf, "[%s] %zu/%zu %5.1f%%  %.1f it/s  ETA %s", label.c_str(), done, *total, pct, rate,
                  eta.c_str());
  } else {
    std::snprintf(buf, sizeof buf, "[%s] %zu  %.1f it/s", label.c_str(), done, rate);
  }
  return buf;
}

void Progress::draw(bool final) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  // \r returns to the start of the line; \x1b[K clears what a longer
  // previous line left behind.
  const std::string line = "\r" + render(done_, total_, elapsed, label_) + "\x1b[K" + (final ? "\n" : "");
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace mproc::detail
