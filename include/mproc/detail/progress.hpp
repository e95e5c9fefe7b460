// detail/progress.hpp: the opt-in progress line of map-style calls
// (PoolOptions::progress), like tqdm over imap.
//
//   [mproc] 6200/10000  62.0%  1843.2 it/s  ETA 0:02
//
// Written to stderr, redrawn at most every 100 ms and once at the end, and
// only when stderr is a terminal: in a pipe or a log file it stays silent.
// For inputs of unknown length (imap over a lazy range) it shows the count
// and the rate only.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>

namespace mproc::detail {

class Progress {
 public:
  // `enabled` false, or stderr not a terminal: every call does nothing.
  Progress(bool enabled, std::optional<std::size_t> total, std::string label = "mproc");
  ~Progress();
  void advance(std::size_t n = 1);
  // Draws the final state and ends the line (once).
  void finish();
  bool active() const noexcept { return active_; }

  // The text of one progress line (exposed for tests).
  static std::string render(std::size_t done, std::optional<std::size_t> total, double elapsed_s,
                            const std::string& label);

 private:
  void draw(bool final);
  bool active_;
  std::optional<std::size_t> total_;
  std::string label_;
  std::mutex mu_;
  std::size_t done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool finished_ = false;
};

}  // namespace mproc::detail
