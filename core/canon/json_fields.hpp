// Reading a JSON object from outside (an API body, a config file, a signed
// plan, a protocol message) with errors that name the field:
// "strategy.batch_size must be a whole number from 1 to 100000". drover's one
// field reader: every decoder of JSON input reads through it.
//
// A field is absent, or present with a value that must have the right type and
// range: a present value is never silently ignored. Unknown fields are
// refused where the reader calls only(), so a typo is not silently ignored
// either.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.hpp"

namespace drover::canon {

// How a JSON null reads. In API bodies a null field is as if absent; in
// signed formats, protocol messages and config files, where each field has
// one spelling, a null is a value of the wrong type.
enum class Nulls { absent, refused };
// Whether a required string may be "": a name may not, an error text may.
enum class Empty { refused, allowed };

class Fields {
 public:
  // where: the object's path ("" for the top, "strategy" for a nested one).
  Fields(const nlohmann::json& object, std::string where, Nulls nulls = Nulls::absent);
  // Refuses a value that is not an object.
  static Result<Fields> of(const nlohmann::json& value, const std::string& where,
                           Nulls nulls = Nulls::absent);

  // Refuses any field not in known.
  Status only(std::initializer_list<std::string_view> known) const;
  // Refuses the absence of any of names: "<path> is required".
  Status require(std::initializer_list<std::string_view> names) const;
  bool has(const std::string& name) const;

  // Each refuses a present value of the wrong type or range; the ones without
  // opt_ refuse absence too. Strings are bounded to max_size bytes.
  Result<std::string> str(const std::string& name, std::size_t max_size = 256,
                          Empty empty = Empty::refused) const;
  Result<std::optional<std::string>> opt_str(const std::string& name,
                                             std::size_t max_size = 256) const;
  Result<std::int64_t> integer(const std::string& name, std::int64_t min, std::int64_t max) const;
  Result<std::optional<std::int64_t>> opt_int(const std::string& name, std::int64_t min,
                                              std::int64_t max) const;
  // Whole numbers from 0 to max, the full unsigned 64-bit range by default.
  Result<std::uint64_t> u64(const std::string& name,
                            std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) const;
  // A finite number; with the default bounds, any finite number.
  Result<double> num(const std::string& name, double min = std::numeric_limits<double>::lowest(),
                     double max = std::numeric_limits<double>::max()) const;
  Result<std::optional<double>> opt_num(const std::string& name, double min, double max) const;
  Result<bool> boolean(const std::string& name) const;
  Result<std::optional<bool>> opt_bool(const std::string& name) const;
  // An array of strings, each at most max_size bytes, at most max_items; empty
  // when absent.
  Result<std::vector<std::string>> str_list(const std::string& name, std::size_t max_items,
                                            std::size_t max_size = 256,
                                            Empty empty = Empty::refused) const;
  // A nested object.
  Result<Fields> object(const std::string& name) const;
  Result<std::optional<Fields>> opt_object(const std::string& name) const;
  // An array of at most max_items objects, read as "<name>[i]".
  Result<std::vector<Fields>> objects(const std::string& name, std::size_t max_items) const;
  // The present value (a null too, with Nulls::refused), or nullptr.
  const nlohmann::json* raw(const std::string& name) const;

  std::string path(const std::string& name) const;
  const nlohmann::json& value() const { return *object_; }

 private:
  Error missing(const std::string& name) const;

  const nlohmann::json* object_;
  std::string where_;
  Nulls nulls_;
};

}  // namespace drover::canon
