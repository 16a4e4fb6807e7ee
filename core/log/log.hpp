// Structured logging: one line per event, "key=value" fields (or one JSON
// object per line), with levels. The event name says what happened in
// dotted form ("store.push.done"); fields carry the values.
//
//   log.info("store.push.done", {{"artifact", id.str()}, {"new_bytes", n}});
//   -> ts=2026-11-27T13:27:08.123Z level=info event=store.push.done artifact=sha256:...
//   new_bytes=42
#pragma once

#include <chrono>
#include <concepts>
#include <exception>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/base/result.hpp"
#include "core/world/clock.hpp"

namespace drover {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };
const char* log_level_name(LogLevel level);
// Parses "debug", "info", "warn" or "error".
bool parse_log_level(std::string_view text, LogLevel& out);

enum class LogFormat { key_value, json };

struct LogField {
  std::string key;
  std::string value;
  bool quoted_in_json = true;  // false for numbers and booleans

  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(v) {}
  LogField(std::string_view k, bool v)
      : key(k), value(v ? "true" : "false"), quoted_in_json(false) {}
  template <std::integral T>
  LogField(std::string_view k, T v) : key(k), value(std::to_string(v)), quoted_in_json(false) {}
  LogField(std::string_view k, double v);
};

// Receives finished lines (without the trailing newline).
class LogSink {
 public:
  virtual ~LogSink() = default;
  virtual void write(std::string_view line) = 0;
};

class StderrSink final : public LogSink {
 public:
  void write(std::string_view line) override;
};

// Keeps lines in memory, for tests.
class MemorySink final : public LogSink {
 public:
  void write(std::string_view line) override;
  std::vector<std::string> lines() const;

 private:
  mutable std::mutex mu_;  // guards lines_
  std::vector<std::string> lines_;
};

// Thread-safe: lines from several threads never interleave.
class Logger {
 public:
  Logger(LogSink& sink, const Clock& clock, LogLevel min_level = LogLevel::info,
         LogFormat format = LogFormat::key_value)
      : sink_(sink), clock_(clock), min_level_(min_level), format_(format) {}

  void log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields);
  void log(LogLevel level, std::string_view event, const std::vector<LogField>& fields);
  void debug(std::string_view event, std::initializer_list<LogField> f = {}) {
    log(LogLevel::debug, event, f);
  }
  void info(std::string_view event, std::initializer_list<LogField> f = {}) {
    log(LogLevel::info, event, f);
  }
  void warn(std::string_view event, std::initializer_list<LogField> f = {}) {
    log(LogLevel::warn, event, f);
  }
  void error(std::string_view event, std::initializer_list<LogField> f = {}) {
    log(LogLevel::error, event, f);
  }

  bool enabled(LogLevel level) const { return level >= min_level_; }

  // A logger that drops everything.
  static Logger& discard();

 private:
  template <class Fields>
  void emit(LogLevel level, std::string_view event, const Fields& fields);

  LogSink& sink_;
  const Clock& clock_;
  LogLevel min_level_;
  LogFormat format_;
  std::mutex mu_;  // serializes writes to sink_
};

// RFC 3339 UTC with milliseconds: 2026-11-27T13:27:08.123Z
std::string format_time(SystemTime t);

// Runs fn (returning Status or nothing) and turns an exception escaping it
// into an error line `event` and an internal error: for thread bodies and
// callbacks that handle what arrives from outside, where an exception would
// end the whole daemon. The caller decides what a failed pass means.
template <class F>
Status run_guarded(Logger& log, std::string_view event, F&& fn) noexcept {
  try {
    if constexpr (std::is_same_v<decltype(fn()), Status>) {
      return fn();
    } else {
      fn();
      return Ok{};
    }
  } catch (const std::exception& e) {
    log.error(event, {{"error", e.what()}});
    return make_error(Errc::internal, std::string(event) + ": " + e.what());
  } catch (...) {
    log.error(event, {{"error", "unknown exception"}});
    return make_error(Errc::internal, std::string(event) + ": unknown exception");
  }
}

// A daemon thread's body that must outlive what it handles: runs body until
// it returns; when it throws, logs event and runs it again `pause` later
// (polling stopping() meanwhile, so an owner going away is not held up).
template <class Body, class Stopping>
void keep_running(Logger& log, std::string_view event, Stopping&& stopping, Body&& body,
                  std::chrono::milliseconds pause = std::chrono::milliseconds(1000)) noexcept {
  for (;;) {
    bool threw = true;
    (void)run_guarded(log, event, [&] {
      body();
      threw = false;
    });
    if (!threw) return;
    for (auto waited = std::chrono::milliseconds(0); waited < pause;
         waited += std::chrono::milliseconds(50)) {
      if (stopping()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

}  // namespace drover
