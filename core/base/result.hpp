// Errors as values. Every fallible operation that the environment can make fail
// (disk, network, bad input, a peer) returns Result<T>; exceptions never cross a
// module boundary. An Error carries a category and a message written for the
// user: what was wrong, with the offending value.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace drover {

enum class Errc {
  invalid_argument,  // the caller's input is malformed or out of range
  not_found,         // a named thing does not exist
  already_exists,    // a thing that must be new exists already
  io,                // the operating system refused or failed an operation
  corrupt,           // stored or received bytes do not match their hash or format
  refused,           // input is well-formed but unsafe or not allowed
  crypto,            // a signature, key or certificate does not verify
  unsupported,       // a version or feature this build does not know
  timeout,           // a deadline passed before the thing waited for happened
  exhausted,         // a bound was reached: storage full, a cap, a budget
  internal,          // a bug: an invariant did not hold
};

const char* errc_name(Errc code);

struct Error {
  Errc code = Errc::internal;
  std::string message;

  // Prefixes the message with where it happened: "push /srv/app: <message>".
  Error context(const std::string& where) const& { return {code, where + ": " + message}; }
  Error context(const std::string& where) && { return {code, where + ": " + std::move(message)}; }
};

inline Error make_error(Errc code, std::string message) {
  return {code, std::move(message)};
}

// Result<T> holds either a T or an Error. Accessing the wrong side is a bug
// and aborts the process loudly.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return check_value(), std::get<0>(v_); }
  const T& value() const& { return check_value(), std::get<0>(v_); }
  T&& value() && { return check_value(), std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const& { return check_error(), std::get<1>(v_); }
  Error&& error() && { return check_error(), std::get<1>(std::move(v_)); }

 private:
  void check_value() const {
    if (!ok()) {
      std::fprintf(stderr, "drover: Result::value() on error: %s\n",
                   std::get<1>(v_).message.c_str());
      std::abort();
    }
  }
  void check_error() const {
    if (ok()) {
      std::fputs("drover: Result::error() on a value\n", stderr);
      std::abort();
    }
  }
  std::variant<T, Error> v_;
};

struct Ok {};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Ok) {}                                                  // NOLINT
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const& {
    if (ok_) {
      std::fputs("drover: Result::error() on a value\n", stderr);
      std::abort();
    }
    return error_;
  }
  Error&& error() && {
    if (ok_) {
      std::fputs("drover: Result::error() on a value\n", stderr);
      std::abort();
    }
    return std::move(error_);
  }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

// Stops the process when an invariant is broken: a bug, not an environment fault.
[[noreturn]] void fatal(const char* what, const char* file, int line);

}  // namespace drover

#define DROVER_ASSERT(cond) \
  ((cond) ? static_cast<void>(0) : ::drover::fatal("assertion failed: " #cond, __FILE__, __LINE__))

// Propagates an error out of the enclosing function returning Result<...>.
#define DROVER_TRY(expr)                            \
  do {                                              \
    auto drover_try_result_ = (expr);               \
    if (!drover_try_result_.ok()) {                 \
      return std::move(drover_try_result_).error(); \
    }                                               \
  } while (0)

#define DROVER_CONCAT_INNER(a, b) a##b
#define DROVER_CONCAT(a, b) DROVER_CONCAT_INNER(a, b)

// DROVER_ASSIGN(auto x, expr): binds the value of expr or returns its error.
#define DROVER_ASSIGN(decl, expr) DROVER_ASSIGN_IMPL(DROVER_CONCAT(drover_r_, __LINE__), decl, expr)
#define DROVER_ASSIGN_IMPL(tmp, decl, expr)     \
  auto tmp = (expr);                            \
  if (!tmp.ok()) return std::move(tmp).error(); \
  decl = std::move(tmp).value()
