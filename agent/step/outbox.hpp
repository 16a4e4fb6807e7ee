// Reports waiting for the coordinator: a bounded queue of report items. When
// full, the oldest health sample goes first (events are kept longer: they
// say what happened), and drops are counted. A report taken for sending keeps
// its seq and items until acknowledged, so a retry repeats it exactly and the
// coordinator ingests it once.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>

#include "core/proto/messages.hpp"

namespace drover::agent {

class Outbox {
 public:
  explicit Outbox(std::size_t capacity) : capacity_(capacity) {}

  void push(proto::ReportItem item);
  // Called after each push, outside the outbox's lock (set once, before any
  // push): how the report thread learns there is something to send.
  void on_push(std::function<void()> f) { on_push_ = std::move(f); }
  // The report to send next: the one in flight, or up to max_items new items
  // under the seq that next_seq() hands out. nullopt when there is nothing.
  template <class NextSeq>
  std::optional<proto::ReportBody> take(std::size_t max_items, NextSeq next_seq) {
    std::lock_guard lock(mu_);
    if (in_flight_) return in_flight_;
    if (items_.empty()) return std::nullopt;
    proto::ReportBody b;
    b.seq = next_seq();
    // Items up to max_items and proto::kMaxReportBytesV2 (always one), so the
    // coordinator never refuses a report for its size (a version-2 listener
    // takes 64 KiB).
    std::size_t bytes = 0;
    while (!items_.empty() && b.items.size() < max_items) {
      const std::size_t size = proto::encoded_size(items_.front());
      if (!b.items.empty() && bytes + size > proto::kMaxReportBytesV2) break;
      bytes += size;
      b.items.push_back(std::move(items_.front()));
      items_.pop_front();
    }
    in_flight_ = std::move(b);
    return in_flight_;
  }
  // The report with this seq was acknowledged.
  void acknowledged(std::uint64_t seq);

  std::size_t size() const;
  std::uint64_t dropped() const;

 private:
  std::size_t capacity_;
  mutable std::mutex mu_;  // guards items_, in_flight_, dropped_
  std::deque<proto::ReportItem> items_;
  std::optional<proto::ReportBody> in_flight_;
  std::uint64_t dropped_ = 0;
  std::function<void()> on_push_;
};

}  // namespace drover::agent
