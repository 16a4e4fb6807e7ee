#include "core/log/log.hpp"

#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace drover {

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "info";
}

bool parse_log_level(std::string_view text, LogLevel& out) {
  for (auto level : {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error}) {
    if (text == log_level_name(level)) {
      out = level;
      return true;
    }
  }
  return false;
}

LogField::LogField(std::string_view k, double v) : key(k), quoted_in_json(false) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  value = buf;
}

void StderrSink::write(std::string_view line) {
  std::string out(line);
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stderr);
}

void MemorySink::write(std::string_view line) {
  std::lock_guard lock(mu_);
  lines_.emplace_back(line);
}

std::vector<std::string> MemorySink::lines() const {
  std::lock_guard lock(mu_);
  return lines_;
}

std::string format_time(SystemTime t) {
  auto ms = unix_ms(t);
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

namespace {

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

void append_kv_value(std::string& out, std::string_view v) {
  if (!needs_quotes(v)) {
    out += v;
    return;
  }
  out += '"';
  for (unsigned char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

}  // namespace

template <class Fields>
void Logger::emit(LogLevel level, std::string_view event, const Fields& fields) {
  if (!enabled(level)) return;
  std::string line;
  const std::string ts = format_time(clock_.now());
  if (format_ == LogFormat::json) {
    nlohmann::json j;
    j["ts"] = ts;
    j["level"] = log_level_name(level);
    j["event"] = std::string(event);
    for (const auto& f : fields) {
      if (f.quoted_in_json) {
        j[f.key] = f.value;
      } else {
        j[f.key] = nlohmann::json::parse(f.value, nullptr, false);
      }
    }
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = "ts=" + ts + " level=" + log_level_name(level) + " event=";
    append_kv_value(line, event);
    for (const auto& f : fields) {
      line += ' ';
      line += f.key;
      line += '=';
      append_kv_value(line, f.value);
    }
  }
  std::lock_guard lock(mu_);
  sink_.write(line);
}

void Logger::log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
  emit(level, event, fields);
}

void Logger::log(LogLevel level, std::string_view event, const std::vector<LogField>& fields) {
  emit(level, event, fields);
}

namespace {
class NullSink final : public LogSink {
 public:
  void write(std::string_view) override {}
};
}  // namespace

Logger& Logger::discard() {
  static NullSink sink;
  static SystemClock clock;
  static Logger logger(sink, clock, LogLevel::error);
  return logger;
}

}  // namespace drover
